"""`xdsgen export gateway-api`: the inventory as Gateway API objects for Envoy Gateway.

One Gateway with a listener per port and protocol (HTTPS and TLS passthrough: one per
port and SNI name, so that an unknown name still matches nothing, as on the router);
HTTPRoute, TLSRoute, TCPRoute and UDPRoute attached to them by sectionName; an Envoy
Gateway `Backend` per upstream (the upstreams are outside the cluster), BackendTLSPolicy
for upstream TLS, kubernetes.io/tls Secrets for certificates, and Envoy Gateway policies:
ClientTrafficPolicy (the client's own X-Forwarded-For dropped, trusted proxies, the
connection limit, HTTP/3), BackendTrafficPolicy (round robin, timeouts, health checks,
ejection, retries, compression, error pages, the PROXY protocol) and SecurityPolicy (allow
lists, basic and forward auth); header changes are HTTPRoute filters, maintenance an
Envoy Gateway HTTPRouteFilter with the page from a ConfigMap.

Gateway API listeners have no address family: where the inventory serves something on one
family only, or differently per family, the Gateway serves the first family's version on
both, and the difference is listed.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional

from xdsgen.errors import ExportError
from xdsgen.export.context import (
    GATEWAY_API,
    GATEWAY_GROUP,
    MAX_LISTENERS,
    Context,
    GatewayListener,
    GatewayOptions,
)
from xdsgen.export.differences import Report
from xdsgen.export.k8s import Export
from xdsgen.export.manifests import Names, dns_name, dump_documents
from xdsgen.export.source import Listener, Source

__all__ = ["GATEWAY_API", "GATEWAY_GROUP", "GatewayOptions", "export_gateway_api"]


def export_gateway_api(source: Source, options: GatewayOptions) -> Export:
    from xdsgen.export.backends import backend_objects, envoy_differences
    from xdsgen.export.pages import page_objects
    from xdsgen.export.policies_backend import backend_policies
    from xdsgen.export.policies_client import client_policies
    from xdsgen.export.policies_security import security_objects
    from xdsgen.export.routes import route_objects

    gateway = dns_name(options.name or source.envoy.node_id, 63)
    ctx = Context(
        source=source,
        options=options,
        gateway=gateway,
        labels={"app.kubernetes.io/managed-by": "xdsgen", "xdsgen/gateway": gateway},
        report=Report(),
    )
    for key in source.unknown_keys:
        ctx.report.access(
            key, "not exported: this xdsgen does not know how to carry it to Gateway API"
        )
    for index, patch in enumerate(source.model.patches):
        # A patch's Envoy config may decide who reaches what: loud, like an unknown key.
        ctx.report.access(
            f"patches[{index}]",
            f"the patch on {patch.kind.replace('_', ' ')} {patch.target} is Envoy config "
            "Gateway API has no place for",
            "carry it with an Envoy Gateway EnvoyPatchPolicy",
        )
    collect_listeners(ctx)
    envoy_differences(ctx)
    routes = route_objects(ctx)
    gateway_object, secrets = gateway_objects(ctx)
    backends = backend_objects(ctx)
    security, user_secrets = security_objects(ctx)
    policies = client_policies(ctx) + backend_policies(ctx) + security
    pages = page_objects(ctx)
    _not_carried(ctx)
    documents = [gateway_object, *routes, *backends, *policies, *pages, *secrets, *user_secrets]
    return Export(
        dump_documents(documents), ctx.report, has_private_keys=bool(secrets or user_secrets)
    )


def _not_carried(ctx: Context) -> None:
    """Every access key (issue 14) no part wrote or reported itself: never dropped silently."""
    carried_always = ("networks.", "auth.")  # their uses (allow, auth) are carried or said
    for key in ctx.source.access_keys:
        if key.startswith(carried_always) or ctx.is_carried(key):
            continue
        ctx.report.access(
            key,
            "not exported: Gateway API and Envoy Gateway's policies have no place for it here",
        )


# --------------------------------------------------------------------------- listeners


def collect_listeners(ctx: Context) -> None:
    names = Names(253, dots=True)

    def add(item: Listener, protocol: str, hostname: Optional[str], variant: Any) -> None:
        key = (protocol, item.port, hostname)
        if key not in ctx.listeners:
            wish = f"{protocol.lower()}-{item.port}"
            if hostname:
                wish += "-" + hostname.replace("*", "wildcard")
            ctx.listeners[key] = GatewayListener(names(wish), protocol, item.port, hostname)
        found = ctx.listeners[key]
        found.families.add(item.family)
        found.paths.add(item.path)
        found.variants.setdefault(item.family, variant)

    for item in ctx.source.listeners:
        if item.kind == "http":
            add(item, "HTTP", None, None)
        elif item.kind == "http3":
            continue  # a ClientTrafficPolicy turns HTTP/3 on for the HTTPS listeners
        elif item.kind == "https":
            for chain in item.tls_chains:
                for name in chain.server_names:
                    add(item, "HTTPS", name.lower(), chain.certificate)
            for passthrough in item.passthrough:
                for name in passthrough.server_names:
                    add(item, "TLS", name.lower(), passthrough.upstream)
        else:
            add(item, item.kind.upper(), None, item.upstream)
    if len(ctx.listeners) > MAX_LISTENERS:
        raise ExportError(
            f"the inventory needs {len(ctx.listeners)} Gateway listeners (one per port, and per "
            f"TLS name on the https ports) and a Gateway holds at most {MAX_LISTENERS}: split "
            "the inventory into several, or export it for Kubernetes (`xdsgen export k8s`)"
        )
    all_families = set(ctx.source.families)
    # One line per port, protocol and family set: an https port lists its names together.
    narrow: dict[tuple[str, int, tuple[str, ...]], list[GatewayListener]] = {}
    for gl in sorted(ctx.listeners.values(), key=_listener_order):
        if gl.families != all_families:
            narrow.setdefault((gl.protocol, gl.port, tuple(sorted(gl.families))), []).append(gl)
        what = f"{gl.protocol} port {gl.port}" + (f" for {gl.hostname}" if gl.hostname else "")
        if len({repr(v) for v in gl.variants.values()}) > 1:
            shown = ", ".join(f"{f}: {gl.variants[f]}" for f in sorted(gl.variants))
            ctx.report.behaviour(
                ", ".join(sorted(gl.paths)),
                f"{what} differs by family ({shown}); the Gateway serves "
                f"{sorted(gl.variants)[0]}'s on every family",
                resource=f"Gateway/{ctx.gateway}",
            )
    for (protocol, port, families), group in narrow.items():
        hosts = [gl.hostname for gl in group if gl.hostname]
        what = f"{protocol} port {port}" + (f" ({', '.join(hosts)})" if hosts else "")
        others = " and ".join(sorted(all_families - set(families)))
        ctx.report.access(
            ", ".join(sorted({p for gl in group for p in gl.paths})),
            f"{what} is served only on {' and '.join(families)}; a Gateway listener has no "
            f"address family, so {others} clients reach it too",
            resource=f"Gateway/{ctx.gateway}",
        )
    for family, address in sorted(ctx.source.addresses.items()):
        if not ipaddress.ip_address(address).is_unspecified:
            ctx.report.access(
                f"listen.{family}.address",
                f"the Gateway's addresses come from the cluster (its Service), not {address}",
                "set spec.addresses or the EnvoyProxy's Service to pin an address",
                resource=f"Gateway/{ctx.gateway}",
            )


def certificate_secret_name(ctx: Context, certificate: str) -> str:
    return ctx.object_names(f"{ctx.gateway}-tls-{certificate}")


def gateway_objects(ctx: Context) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from xdsgen.export.secrets import tls_secret

    listeners = []
    used_certificates: set[str] = set()
    for gl in sorted(ctx.listeners.values(), key=_listener_order):
        entry: dict[str, Any] = {"name": gl.name}
        if gl.hostname:
            entry["hostname"] = gl.hostname
        entry["port"] = gl.port
        entry["protocol"] = gl.protocol
        if gl.protocol == "HTTPS":
            certificate = gl.chosen()
            used_certificates.add(certificate)
            entry["tls"] = {
                "mode": "Terminate",
                "certificateRefs": [
                    {"kind": "Secret", "name": certificate_secret_name(ctx, certificate)}
                ],
            }
        elif gl.protocol == "TLS":
            entry["tls"] = {"mode": "Passthrough"}
        listeners.append(entry)
    gateway = {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": ctx.meta(ctx.gateway),
        "spec": {"gatewayClassName": ctx.options.gateway_class, "listeners": listeners},
    }
    secrets = []
    for name in sorted(used_certificates):
        secret = tls_secret(
            ctx.source.certificates[name],
            certificate_secret_name(ctx, name),
            ctx.namespace,
            ctx.labels,
            ctx.report,
            used_by=f"Gateway {ctx.gateway}",
        )
        if secret is not None:
            secrets.append(secret)
    return gateway, secrets


_PROTOCOL_ORDER = {"HTTP": 0, "HTTPS": 1, "TLS": 2, "TCP": 3, "UDP": 4}


def _listener_order(gl: GatewayListener) -> tuple[int, int, str]:
    return (_PROTOCOL_ORDER[gl.protocol], gl.port, gl.hostname or "")
