"""Commands about the inventory and the files it makes: validate, render, bootstrap,
schema, explain, firewall."""

from __future__ import annotations

from typing import Optional

import click

from xdsgen.cli.base import (
    format_option,
    handle_errors,
    inventory_argument,
    main,
    output_options,
    reporter,
    says_invalid,
)


@main.command(short_help="Check INVENTORY: every problem with its line; exit 0 if valid.")
@inventory_argument
@format_option("the problems (or the summary)")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--check-files",
    is_flag=True,
    help="Missing or unreadable certificate files are errors (as for apply), not warnings.",
)
@output_options
@handle_errors
@says_invalid("invalid")
def validate(inventory: str, output_format: str, strict: bool, check_files: bool) -> None:
    """Check INVENTORY against the schema and its meaning; exit 0 if valid, 1 otherwise."""
    from xdsgen.cli.leave import allow_fast_exit
    from xdsgen.errors import InventoryError
    from xdsgen.pipeline import load_model
    from xdsgen.summary import summarize

    allow_fast_exit()

    model = load_model(inventory, check_files=check_files)
    if strict and model.warnings:
        # --strict: each warning is an error, and says so.
        raise InventoryError([w.as_error() for w in model.warnings])
    reporter().valid(inventory, summarize(model), list(model.warnings))


@main.command(short_help="Write cds.yaml, lds.yaml, rds_*.yaml and sds_*.yaml.")
@inventory_argument
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Directory to write into (default: the inventory's envoy.config_dir). The files "
    "refer to each other by this path unless envoy.container_config_dir is set.",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print every file instead of writing.")
@output_options
@handle_errors
def render(inventory: str, out_dir: Optional[str], to_stdout: bool) -> None:
    """Render cds.yaml, lds.yaml, rds_*.yaml and sds_*.yaml from INVENTORY.

    Files whose content is unchanged are not touched (envoy.layout: directory: one swap
    of ..data, the clusters and files the files on disk use kept until the next render).
    For a live Envoy use `apply`,
    which also orders the updates and waits for Envoy to accept them (render refuses a
    directory apply manages). An inventory of 1 000 vhosts or more reuses its last full
    render when only routes changed (README: Big inventories; XDSGEN_REUSE=off renders in
    full).
    """
    from xdsgen.cli.leave import allow_fast_exit
    from xdsgen.pipeline import build, render_into

    allow_fast_exit()
    model, rendered = build(inventory, config_dir=out_dir, servable=True)
    out = reporter()
    out.problems(list(model.warnings))
    if to_stdout:
        for name, text in rendered.files.items():
            click.echo(f"# --- {name}")
            click.echo(text, nl=False)
        return
    written = render_into(model.envoy.config_dir, rendered, model.envoy.layout)
    out.rendered(model.envoy.config_dir, len(written), len(rendered.files))


@main.command(short_help="Print Envoy's bootstrap for INVENTORY.")
@inventory_argument
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout."
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False),
    help="Point Envoy at this directory instead of envoy.config_dir.",
)
@output_options
@handle_errors
def bootstrap(inventory: str, output: Optional[str], config_dir: Optional[str]) -> None:
    """Print the Envoy bootstrap: node, file-based CDS/LDS, the admin (a Unix socket in
    the config directory by default), connection limit."""
    from xdsgen.pipeline import load_model
    from xdsgen.render import render_bootstrap

    model = load_model(inventory, config_dir=config_dir)
    out = reporter()
    out.problems(list(model.warnings))
    text = render_bootstrap(model)
    if output:
        from xdsgen.files import write_atomic

        write_atomic(output, text)
        out.wrote(output)
    else:
        click.echo(text, nl=False)


@main.command(short_help="Print the inventory's JSON Schema (for editors).")
@output_options
def schema() -> None:
    """Print the inventory's JSON Schema (for editors: yaml-language-server)."""
    from xdsgen import resources

    click.echo(resources.read_text("schemas", "inventory.schema.json"), nl=False)


@main.command(short_help="Which listener, vhost, route and upstream a request hits.")
@inventory_argument
@click.argument("target", metavar="HOST[/PATH]")
@click.option(
    "--from",
    "source",
    metavar="ADDRESS",
    help="The client's IP address: say whether allow lets it through (403, closed, dropped).",
)
@format_option("the answer")
@output_options
@handle_errors
def explain(inventory: str, target: str, source: Optional[str], output_format: str) -> None:
    """Show which listener, vhost, route and upstream a request would hit, per family.

    HOST[/PATH] may also be HOST:PORT/PATH or a URL (http://... or https://...) to look at
    one listener. Envoy's order is followed: exact domain, then *.suffix (longest first),
    then prefix*, then "*"; routes in order, the first match wins. Each answer names who
    may reach it (allow) and the authenticator asked first (auth).
    """
    from xdsgen.explain import explain_inventory

    parsed, hops = explain_inventory(inventory, target, source)
    reporter().explain(parsed, hops)


@main.command(short_help="Print OpenWrt fw4 rules for exactly the ports in use.")
@inventory_argument
@click.option(
    "--syntax",
    type=click.Choice(["uci", "uci-script", "nft"]),
    default="uci",
    show_default=True,
    help="uci: config rule sections; uci-script: uci commands that replace every "
    "xdsgen_* rule; nft: an include for fw4's chain-pre/input_ZONE.",
)
@click.option(
    "--format",
    "old_syntax",
    type=click.Choice(["uci", "uci-script", "nft"]),
    hidden=True,
    help="The older name of --syntax.",
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
@output_options
@handle_errors
def firewall(
    inventory: str, syntax: str, old_syntax: Optional[str], zone: str, output: Optional[str]
) -> None:
    """Print OpenWrt fw4 rules accepting exactly the ports INVENTORY's listeners use.

    One rule per listener: family (ipv4/ipv6), protocol (tcp/udp) and port, and the
    listen address when it is not 0.0.0.0 or ::. Run it after each inventory change
    so the proxy and the firewall cannot drift apart.
    """
    from xdsgen.firewall import firewall_for

    model, text = firewall_for(inventory, old_syntax or syntax, zone, output)
    out = reporter()
    out.problems(list(model.warnings))
    if output:
        out.wrote(output)
    else:
        click.echo(text, nl=False)
