"""`xdsgen certs`: list the inventory's certificates, obtain or renew the acme: ones."""

from __future__ import annotations

import sys

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


class _DefaultListGroup(click.Group):
    """`xdsgen certs INVENTORY` is `xdsgen certs list INVENTORY`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@main.group(
    cls=_DefaultListGroup,
    epilog=EXIT_CODES_HELP,
    short_help="List certificates; obtain or renew the acme: ones.",
)
@output_options
def certs() -> None:
    """List the inventory's certificates, and obtain or renew the acme: ones.

    `xdsgen certs INVENTORY` is `xdsgen certs list INVENTORY`.
    """


@certs.command("list")
@inventory_argument
@format_option("one object per certificate")
@output_options
@handle_errors
def certs_list(inventory: str, output_format: str) -> None:
    """Show each certificate: domains, issuer, expiry, source and renewal.

    One row per certificate of the inventory: name, domains, issuer, not-after (UTC), days
    left, source (acme: obtained by xdsgen; file: renewed outside xdsgen) and, for acme,
    when it renews (or why it is due, or until when it backs off after failures).
    """
    from xdsgen.certs import statuses
    from xdsgen.pipeline import load_model

    model = load_model(inventory)
    out = reporter()
    out.problems(list(model.warnings))
    out.certificates(statuses(model))


@certs.command("renew", epilog=EXIT_CODES_HELP)
@inventory_argument
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option(
    "--force",
    is_flag=True,
    help="Renew even when not due, and ignore the back-off after earlier failures.",
)
@click.option(
    "--lock-timeout",
    type=float,
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for an apply on the same directory (then exit 4).",
)
@output_options
@handle_errors
def certs_renew(inventory: str, names: tuple[str, ...], force: bool, lock_timeout: float) -> None:
    """Obtain or renew the due acme: certificates now (all, or the NAMEs).

    Due: no certificate yet, expiring within renew_before, its domains or CA changed.
    The new files are written beside the old ones and moved into place; the next `xdsgen
    apply` hands them to Envoy (apply itself also obtains and renews what is due). http-01
    challenges are answered by the running Envoy (exit 6 when its admin does not answer).
    A certificate still backing off after failures exits 8 unless --force.
    """
    from xdsgen.errors import EXIT_ACME
    from xdsgen.live.acme_step import renew_now
    from xdsgen.pipeline import load_model

    model = load_model(inventory)
    console = get_console()
    reporter().problems(list(model.warnings))
    outcomes = renew_now(
        model,
        list(names),
        force,
        lock_timeout,
        timeout=10.0,
        progress=console.info,
        warn=console.warn,
    )
    waiting = [o for o in outcomes if o.action == "waiting"]
    for outcome in outcomes:
        if outcome.action == "fresh":
            console.info(f"certificate {outcome.name}: not due ({outcome.detail})")
    for outcome in waiting:
        console.error(f"error: certificate {outcome.name}: {outcome.detail}")
    if any(o.action in ("obtained", "renewed") for o in outcomes):
        console.info(f"run `xdsgen apply {inventory}` to hand the new files to Envoy")
    if waiting:
        sys.exit(EXIT_ACME)
