"""What every command shares: the group, the output options, one reporter per run, and the
one place where xdsgen's exceptions become messages and exit codes.

Only click is imported at start-up; everything else is imported inside the command that
needs it, so `xdsgen --help` and cron runs start fast (OpenWrt's Python writes no .pyc).
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import click

from xdsgen import __version__
from xdsgen.errors import EXIT_CODES, InventoryError, XdsgenError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())
_FLAGS_KEY = "xdsgen.console"
_FORMAT_KEY = "xdsgen.format"


def _console_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # ctx.meta is shared by the group and its command: `xdsgen -q apply` = `xdsgen apply -q`.
    if value:
        ctx.meta.setdefault(_FLAGS_KEY, {})[param.name] = True


def output_options(func: F) -> F:
    """--no-color, --quiet, --verbose: on the group and on every command."""
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


def _format_flag(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value == "json" or value is True:
        ctx.meta[_FORMAT_KEY] = "json"
    return value


def format_option(what: str) -> Callable[[F], F]:
    """--format text|json (and the older --json, kept working), on every command that
    answers; with json, errors are a JSON document too."""

    def decorate(func: F) -> F:
        func = click.option(
            "--json",
            "as_json",
            is_flag=True,
            hidden=True,
            expose_value=False,
            is_eager=True,
            callback=_format_flag,
            help="The same as --format json.",
        )(func)
        return click.option(
            "--format",
            "output_format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            is_eager=True,
            callback=_format_flag,
            help=f"json: {what} as one JSON document on stdout (errors too).",
        )(func)

    return decorate


def output_format() -> str:
    ctx = click.get_current_context(silent=True)
    return str(ctx.meta.get(_FORMAT_KEY, "text")) if ctx else "text"


def get_console() -> Any:
    """The Console for this run (colour only on a TTY, with rich, without NO_COLOR)."""
    from xdsgen.report.console import Console

    ctx = click.get_current_context(silent=True)
    flags = ctx.meta.get(_FLAGS_KEY, {}) if ctx else {}
    return Console.detect(
        no_color=flags.get("no_color", False),
        quiet=flags.get("quiet", False),
        verbose=flags.get("verbose", False),
    )


def reporter() -> Any:
    """The reporter for this run: text for people, JSON with --format json."""
    from xdsgen.report import make_reporter

    return make_reporter(output_format(), get_console())


def handle_errors(func: F) -> F:
    """Turn xdsgen's exceptions into messages and exit codes; never show a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InventoryError as exc:
            reporter().invalid(exc, getattr(func, "invalid_verb", "nothing written"))
            sys.exit(exc.exit_code)
        except XdsgenError as exc:
            reporter().error(exc)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def says_invalid(verb: str) -> Callable[[F], F]:
    """What an invalid inventory's count line says the command did (validate writes
    nothing anyway: "invalid")."""

    def decorate(func: F) -> F:
        func.invalid_verb = verb  # type: ignore[attr-defined]
        return func

    return decorate


inventory_argument = click.argument(
    # No checks by click (exit 2, its wording): the loader reports every unusable file.
    "inventory",
    type=click.Path(dir_okay=True, readable=False, allow_dash=False),
    metavar="INVENTORY",
)


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
