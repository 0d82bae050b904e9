"""Commands that move configs in and out: import (a hand-written Envoy config becomes an
inventory draft) and export (the inventory becomes Kubernetes manifests)."""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, TypeVar

import click

from xdsgen.cli.base import (
    EXIT_CODES_HELP,
    get_console,
    handle_errors,
    inventory_argument,
    main,
    output_options,
    reporter,
)

F = TypeVar("F", bound=Callable[..., Any])


@main.command("import", short_help="A hand-written Envoy config becomes an inventory draft.")
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
@click.option(
    "--no-patches",
    is_flag=True,
    help="Carry nothing over as patches: a clean inventory, every difference listed.",
)
@output_options
@handle_errors
def import_command(
    files: tuple[str, ...], output: Optional[str], force: bool, no_patches: bool
) -> None:
    """Turn a hand-written Envoy config into an inventory draft, naming every difference.

    FILE is a static bootstrap (envoy.yaml or .json), or an LDS and a CDS file in either
    order; RDS, SDS and EDS files are followed from the paths they are named by, or found
    beside the file naming them. v2 configs of older blog posts are read too. The draft is
    always a valid inventory. What it cannot say (circuit breakers, a retry policy, an HTTP
    filter chain...) is carried over verbatim as `patches:` on the generated resources
    wherever that makes the draft do what the original does, each listed as `patched:`;
    --no-patches leaves them all out. Exit 0: the draft behaves like the original. Exit 7:
    it was written, but behaves differently; every difference is listed, those that change
    who can reach what first, as DIFFERENCE (...). Exit 1: a file could not be read (why is
    said).
    """
    from xdsgen.errors import EXIT_DIFFERS
    from xdsgen.importer import import_to

    console = get_console()
    result, text = import_to(list(files), output, force, patches=not no_patches)
    for difference in result.differences:
        console.error(difference.line())
    for patch in result.patches:
        console.note(patch.line())
    for note in result.notes:
        console.note(note.line())
    if output:
        console.note(f"wrote {output}")
    else:
        click.echo(text, nl=False)
    if result.problems:
        console.error("the draft is not a valid inventory (a bug in xdsgen import):")
        reporter().problems(result.problems)
    if not result.equivalent:
        loud = sum(1 for d in result.differences if d.loud)
        count = len(result.differences)
        console.error(
            f"the draft behaves differently from the original: {count} "
            f"difference{'s' if count != 1 else ''}, {loud} about who can reach what "
            "(DIFFERENCE)"
        )
        sys.exit(EXIT_DIFFERS)
    count = len(result.patches)
    with_patches = f" (with {count} patch{'es' if count != 1 else ''})" if count else ""
    console.note(f"the draft behaves like the original{with_patches}")


@main.group(
    "export", epilog=EXIT_CODES_HELP, short_help="Kubernetes manifests: a fleet, or Gateway API."
)
@output_options
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

    console = get_console()
    if output:
        write_output(result.text, output, result.has_private_keys)
    else:
        click.echo(result.text, nl=False)
    for line in result.report.lines():
        console.error(line)
    if output:
        console.note(f"wrote {output}")
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
@output_options
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
    reporter().problems(list(source.model.warnings))
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
@output_options
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
    kubernetes.io/tls Secrets read from their files now. Health checks, backups, retries,
    compression, error pages and maintenance become Envoy Gateway traffic policies and
    filters; allow lists and logins SecurityPolicies (htpasswd files as Secrets). What
    they cannot say (IPv4/IPv6 splits, listen addresses, first-match route order, allow
    on passthrough and UDP) is listed.
    """
    from xdsgen.export.gateway import GatewayOptions, export_gateway_api
    from xdsgen.export.source import load

    source = load(inventory)
    reporter().problems(list(source.model.warnings))
    options = GatewayOptions(name=name, namespace=namespace, gateway_class=gateway_class)
    _finish_export(export_gateway_api(source, options), output)
