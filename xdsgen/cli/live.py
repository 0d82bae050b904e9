"""Commands about the running Envoy: apply (and --watch), rollback, status."""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, TypeVar

import click

from xdsgen.cli.base import (
    EXIT_CODES_HELP,
    format_option,
    get_console,
    handle_errors,
    inventory_argument,
    main,
    output_options,
    reporter,
)

F = TypeVar("F", bound=Callable[..., Any])


def _timing_options(func: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--admin",
                metavar="ADDRESS",
                help="Envoy's admin for confirmation: unix:PATH (or PATH) or HOST:PORT "
                "(default: the inventory's envoy.admin).",
            ),
            click.option(
                "--timeout",
                type=float,
                default=10.0,
                show_default=True,
                metavar="SECONDS",
                help="How long to wait for Envoy to confirm each step "
                "before restoring the previous files.",
            ),
            click.option(
                "--settle",
                type=float,
                default=1.0,
                show_default=True,
                metavar="SECONDS",
                help="With --no-confirm: the wait between steps (nothing is confirmed).",
            ),
            click.option(
                "--lock-timeout",
                type=float,
                default=60.0,
                show_default=True,
                metavar="SECONDS",
                help="How long to wait for another apply on the same directory (then exit 4).",
            ),
            click.option(
                "--no-confirm",
                is_flag=True,
                help="Write even when Envoy's admin does not answer (nothing is confirmed; "
                "steps are --settle seconds apart). Without it, a silent admin is exit 6 "
                "and nothing is written.",
            ),
        ]
    ):
        func = decorator(func)
    return func


@main.command(epilog=EXIT_CODES_HELP, short_help="Apply INVENTORY to a running Envoy, confirmed.")
@inventory_argument
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="Apply into this directory instead of envoy.config_dir.",
)
@_timing_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only show the plan: exit 0 if nothing would change, 5 if something would.",
)
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Also print a unified diff of the files (with --dry-run, a terminal or --verbose).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Keep running: re-apply whenever the inventory, its certificates or templates change.",
)
@click.option(
    "--debounce",
    type=float,
    default=0.01,  # watch.DEFAULT_DEBOUNCE: an editor's save is over within ~3 ms
    show_default=True,
    metavar="SECONDS",
    help="--watch: wait this long after the last change before applying.",
)
@click.option(
    "--recheck",
    type=float,
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="--watch: also apply this often without a change (puts back what another apply or "
    "an Envoy restart undid; a no-op writes nothing); 0: never.",
)
@click.option(
    "--envoy-check",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[PATH]",
    help="Check every change with `envoy --mode validate` before writing (PATH: that binary). "
    "Default: when an Envoy binary is found and the change touches clusters, listeners or "
    "secrets (Envoy takes those in part; a route file whole or not at all).",
)
@click.option("--no-envoy-check", is_flag=True, help="Skip the `envoy --mode validate` check.")
@format_option("the result (plan, applied, confirmed, notes, warnings)")
@output_options
@handle_errors
def apply(
    inventory: str,
    config_dir: Optional[str],
    admin: Optional[str],
    timeout: float,
    settle: float,
    lock_timeout: float,
    no_confirm: bool,
    dry_run: bool,
    show_diff: bool,
    watch: bool,
    debounce: float,
    recheck: float,
    envoy_check: Optional[str],
    no_envoy_check: bool,
    output_format: str,
) -> None:
    """Apply INVENTORY to a running Envoy: atomic, ordered, confirmed, rolled back on refusal.

    Validates and renders in memory, shows the plan (+ add, ~ change, - remove), then
    replaces the files by rename in make-before-break order (clusters, secrets, routes,
    listeners, then removed clusters), waiting after each step until Envoy's admin reports
    it (envoy.layout: directory swaps whole sets instead, kubelet's way: new clusters, then
    listeners, routes and secrets, then the pruning). If Envoy refuses a step or does not
    confirm it within --timeout, the last config Envoy confirmed is put back the same way
    (exit 3). Renewed certificates are handed to Envoy too, and acme: certificates that
    are missing or due are obtained or renewed first (exit 8 when the CA does not issue;
    nothing is applied then). Only one apply runs per config directory at a time. Without
    a TTY it prints nothing on success unless --verbose (for cron); errors go to stderr.
    An inventory of 1 000 vhosts or more reuses its last full render when only routes
    changed (README: Big inventories; XDSGEN_REUSE=off renders in full).
    """
    from xdsgen.errors import UsageProblem
    from xdsgen.live.orchestrate import Options
    from xdsgen.report.apply import run_apply

    options = Options(
        config_dir=config_dir,
        admin=admin,
        timeout=timeout,
        settle=settle,
        lock_timeout=lock_timeout,
        dry_run=dry_run,
        diff=show_diff,
        envoy_check="" if no_envoy_check else envoy_check,
        no_confirm=no_confirm,
    )
    if watch:
        if output_format == "json":
            raise UsageProblem("--watch prints a line per apply; it does not go with --format json")
        from xdsgen.watch import watch_and_apply

        sys.exit(watch_and_apply(inventory, options, get_console(), debounce, recheck))
    from xdsgen.cli.leave import allow_fast_exit

    allow_fast_exit()
    sys.exit(run_apply(inventory, options, get_console(), reporter()))


@main.command(epilog=EXIT_CODES_HELP, short_help="Return Envoy to the last config it accepted.")
@click.argument("inventory", required=False, type=click.Path(dir_okay=False), metavar="[INVENTORY]")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="The config directory (default: the inventory's envoy.config_dir).",
)
@_timing_options
@click.option("--dry-run", is_flag=True, help="Only show what would change.")
@format_option("the result (plan, applied, confirmed)")
@output_options
@handle_errors
def rollback(
    inventory: Optional[str],
    config_dir: Optional[str],
    admin: Optional[str],
    timeout: float,
    settle: float,
    lock_timeout: float,
    no_confirm: bool,
    dry_run: bool,
    output_format: str,
) -> None:
    """Return Envoy to the last config it accepted (kept in DIR/.xdsgen/).

    If the files on disk are that config, return to the one before it: two rollbacks in
    a row undo each other. Same ordered, confirmed steps as apply.
    """
    from xdsgen.live.orchestrate import Options
    from xdsgen.report.apply import run_rollback

    options = Options(
        admin=admin,
        timeout=timeout,
        settle=settle,
        lock_timeout=lock_timeout,
        dry_run=dry_run,
        no_confirm=no_confirm,
    )
    sys.exit(run_rollback(inventory, config_dir, options, get_console(), reporter()))


@main.command(short_help="What the running Envoy applied; how each upstream does.")
@click.argument("inventory", required=False, type=click.Path(dir_okay=False), metavar="[INVENTORY]")
@click.option(
    "--admin",
    "admin",
    metavar="ADDRESS",
    help="Envoy's admin: unix:PATH (or PATH) or HOST:PORT (default: the inventory's "
    "envoy.admin, else admin.sock in the config directory).",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="Where the files are (default: envoy.config_dir, else what Envoy's bootstrap reads).",
)
@format_option("the status")
@output_options
@handle_errors
def status(
    inventory: Optional[str], admin: Optional[str], config_dir: Optional[str], output_format: str
) -> None:
    """Ask the running Envoy what it applied and how each upstream is doing.

    One table compares the cds/lds/rds/sds versions the inventory renders, the files on
    disk and what Envoy applied, with rejected and failed update counts; another shows per
    upstream: health ("no check" without active checks), active connections, requests, 5xx,
    bytes or datagrams since Envoy started; a third each endpoint's health.
    Exit 6 when Envoy's admin interface cannot be reached.
    """
    from xdsgen.status import status as collect_status

    reporter().status(collect_status(inventory, admin, config_dir))
