"""ClientTrafficPolicy (gateway.envoyproxy.io/v1alpha1): how Envoy Gateway takes clients.

- The client's own X-Forwarded-For is removed before Envoy's own handling, which then sets
  it to the client's address (as xdsgen's route configs do); with `trusted_proxies` the
  header is kept and clientIPDetection.xForwardedFor.trustedCIDRs says whom to believe.
- Headers a forward authenticator hands to the backend (`headers_to_upstream`) are removed
  from every request first, so that no client can send them itself.
- The connection limit; `http3`: HTTP/3 on the HTTPS listeners (alt-svc follows).

One policy on the Gateway; when only some HTTPS ports serve HTTP/3, their listeners get a
policy of their own (by sectionName), repeating the rest (a listener's policy replaces the
Gateway's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xdsgen.export.context import GATEWAY_GROUP
from xdsgen.export.pages import EG_API

if TYPE_CHECKING:
    from xdsgen.export.context import Context

XFF = "X-Forwarded-For"


def client_policies(ctx: Context) -> list[dict[str, Any]]:
    if not ctx.listeners:
        return []
    spec = _base(ctx)
    gateway_ref = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": ctx.gateway}
    https = sorted(
        (gl for gl in ctx.listeners.values() if gl.protocol == "HTTPS"), key=lambda gl: gl.name
    )
    http3_ports = _http3_ports(ctx, {gl.port for gl in https})
    with_http3 = [gl for gl in https if gl.port in http3_ports]
    objects = []
    if with_http3 and len(with_http3) == len(https):
        spec["http3"] = {}
    objects.append(_policy(ctx, f"{ctx.gateway}-clients", [gateway_ref], spec))
    if with_http3 and len(with_http3) < len(https):
        refs = [{**gateway_ref, "sectionName": gl.name} for gl in with_http3]
        objects.append(_policy(ctx, f"{ctx.gateway}-clients-http3", refs, {**spec, "http3": {}}))
    return objects


def _policy(
    ctx: Context, wish: str, refs: list[dict[str, Any]], spec: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": EG_API,
        "kind": "ClientTrafficPolicy",
        "metadata": ctx.meta(ctx.object_names(wish)),
        "spec": {"targetRefs": refs, **spec},
    }


def _base(ctx: Context) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    source = ctx.source
    if any(gl.protocol in ("HTTP", "HTTPS") for gl in ctx.listeners.values()):
        removed = [] if source.trusted_proxies else [XFF]
        removed += _forward_headers(ctx)
        if removed:
            spec["headers"] = {"earlyRequestHeaders": {"remove": removed}}
        if source.trusted_proxies:
            spec["clientIPDetection"] = {
                "xForwardedFor": {"trustedCIDRs": list(source.trusted_proxies)}
            }
            ctx.report.access(
                "trusted_proxies",
                "backends receive X-Forwarded-For as it came, with the connection's address "
                "appended: a client that connects directly can put any address first; xdsgen "
                "replaces the header with the client's address alone",
                "let backends believe only the last address of X-Forwarded-For",
                resource=f"ClientTrafficPolicy/{ctx.object_names(f'{ctx.gateway}-clients')}",
            )
    ctx.carried.add("trusted_proxies")
    spec["connection"] = {"connectionLimit": {"value": source.envoy.max_connections}}
    return spec


def _forward_headers(ctx: Context) -> list[str]:
    """The headers_to_upstream of the forward authenticators the routes use, and a
    difference where a vhost without that authenticator loses them too."""
    used: dict[str, set[str]] = {}  # authenticator -> vhost paths that use it
    vhosts = set()
    for rule in ctx.rules:
        if rule.http is not None and rule.vhost is not None:
            vhosts.add(rule.vhost.path)
            if rule.http.auth is not None:
                used.setdefault(rule.http.auth, set()).add(rule.vhost.path)
    removed: list[str] = []
    for name, paths in sorted(used.items()):
        auth = ctx.source.authenticators.get(name)
        if auth is None or auth.kind != "forward" or not auth.headers_to_upstream:
            continue
        removed += [h for h in auth.headers_to_upstream if h not in removed]
        others = sorted(vhosts - paths)
        if others:
            ctx.report.behaviour(
                f"{auth.path}.forward.headers_to_upstream",
                f"{', '.join(auth.headers_to_upstream)} "
                f"{'is' if len(auth.headers_to_upstream) == 1 else 'are'} removed from the "
                "requests of every "
                f"vhost (also {', '.join(others)}), not only where {name} is asked: Envoy "
                "Gateway removes them for the whole Gateway, before the routes are known",
            )
    return removed


def _http3_ports(ctx: Context, https_ports: set[int]) -> set[int]:
    """The HTTPS ports that serve HTTP/3, and the differences of a Gateway without
    address families."""
    found = set()
    for family, (port, advertised) in sorted(ctx.source.http3.items()):
        ctx.carried.add(f"listen.{family}.http3")
        if port not in https_ports:
            continue
        found.add(port)
        if advertised != port:
            ctx.report.behaviour(
                f"listen.{family}.http3.advertised_port",
                f"alt-svc advertises the listener's port {port}, not {advertised}: Envoy "
                "Gateway names the Gateway listener's port",
            )
    for item in ctx.source.listeners:
        if item.kind == "https" and item.port in found and item.family not in ctx.source.http3:
            ctx.report.behaviour(
                f"listen.{item.family}.https",
                f"HTTP/3 is served on port {item.port} for {item.family} clients too: a "
                "Gateway listener has no address family",
            )
    return found
