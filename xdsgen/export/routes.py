"""HTTPRoute, TLSRoute, TCPRoute and UDPRoute for the Gateway (see xdsgen.export.gateway).

Envoy's routes are first-match in order; Gateway API orders rules by how specific the
match is (exact path, then the longest prefix) and its PathPrefix matches whole path
segments (Envoy Gateway: path_separated_prefix). Both are listed where they change which
route a request takes.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, Optional

from xdsgen.errors import ExportError
from xdsgen.export.context import GATEWAY_API, Rule
from xdsgen.export.source import Passthrough, Route, VirtualHost

if TYPE_CHECKING:
    from xdsgen.export.context import Context

MAX_PARENT_REFS = 32
MAX_HOSTNAMES = 16
MAX_RULES = 16
_SIDE_ORDER = {"http": 0, "https": 1}
_INDEX = re.compile(r"\[([0-9]+)\]")
# HTTPRoute's CEL rules for Exact and PathPrefix values (gateway-api v1.6.1 CRD).
_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")


def route_objects(ctx: Context) -> list[dict[str, Any]]:
    objects = http_routes(ctx)
    objects += tls_routes(ctx)
    for kind in ("tcp", "udp"):
        objects += l4_routes(ctx, kind)
    return objects


def _index(path: str) -> int:
    found = _INDEX.search(path)
    return int(found.group(1)) if found else -1


def _parent_refs(ctx: Context, section_names: set[str], what: str) -> list[dict[str, Any]]:
    if len(section_names) > MAX_PARENT_REFS:
        raise ExportError(
            f"{what} would attach to {len(section_names)} Gateway listeners and a route takes "
            f"at most {MAX_PARENT_REFS}: give it fewer names or ports"
        )
    return [{"name": ctx.gateway, "sectionName": name} for name in sorted(section_names)]


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


# --------------------------------------------------------------------------- HTTP


def http_routes(ctx: Context) -> list[dict[str, Any]]:
    by_vhost: dict[tuple[str, str], list[tuple[str, int, VirtualHost]]] = {}
    for item in ctx.source.listeners:
        if item.kind in ("http", "https"):
            for vh in item.vhosts:
                by_vhost.setdefault((item.kind, vh.key), []).append((item.family, item.port, vh))
    objects: list[dict[str, Any]] = []
    names = ctx.object_names
    lacks_websocket = []
    for (side, _), entries in sorted(
        by_vhost.items(), key=lambda kv: (_SIDE_ORDER[kv[0][0]], _index(kv[1][0][2].path), kv[0])
    ):
        entries.sort(key=lambda e: (e[0], e[1]))
        vh = entries[0][2]
        _family_differences(ctx, side, entries)
        sections = set()
        for _, port, _ in entries:
            if side == "http":
                sections.add(ctx.listener("HTTP", port, None).name)
            else:
                sections.update(
                    ctx.listener("HTTPS", port, domain.lower()).name for domain in vh.domains
                )
        route_name = names(f"{ctx.gateway}-{side}-{vh.key.replace('_', '-')}")
        rules = _http_rules(ctx, vh, route_name)
        ctx.carried.add(f"{vh.path}.")  # allow, auth, headers: on the rules and policies
        lacks_websocket += [r.path for r in vh.routes if r.upstream and not r.websocket]
        if not rules:
            continue  # every route left out (maintenance): an HTTPRoute needs a rule
        hostnames = (
            [] if "*" in vh.domains else sorted({d.lower() for d in vh.domains}, key=_host_order)
        )
        parents = _parent_refs(ctx, sections, f"{vh.path} ({side})")
        pieces = [
            (h, r) for h in _chunks(hostnames, MAX_HOSTNAMES) for r in _chunks(rules, MAX_RULES)
        ]
        for number, (hosts, chunk) in enumerate(pieces):
            name = route_name if len(pieces) == 1 else f"{route_name}-{number}"
            spec: dict[str, Any] = {"parentRefs": parents}
            if hosts:
                spec["hostnames"] = hosts
            spec["rules"] = [copy.deepcopy(rule) for rule, _ in chunk]
            objects.append(
                {
                    "apiVersion": GATEWAY_API,
                    "kind": "HTTPRoute",
                    "metadata": ctx.meta(name),
                    "spec": spec,
                }
            )
            for rule, route in chunk:
                ctx.rules.append(
                    Rule("HTTPRoute", name, rule["name"], route.upstream, route.path, route, vh)
                )
    if lacks_websocket:
        ctx.report.note(
            "http",
            f"Envoy Gateway accepts WebSocket upgrades on every HTTP route; the inventory allows "
            f"them only where websocket: true ({len(set(lacks_websocket))} "
            f"route{'s' if len(set(lacks_websocket)) != 1 else ''} without it)",
        )
    return objects


def _host_order(host: str) -> tuple[int, str]:
    return (host.startswith("*."), host)


def _family_differences(
    ctx: Context, side: str, entries: list[tuple[str, int, VirtualHost]]
) -> None:
    family, _, vh = entries[0]
    others = sorted({f for f, _, other in entries if other != vh})
    if others:
        redirects = {
            f: other.routes[0].redirect_port or 443
            for f, _, other in entries
            if other.routes and other.routes[0].https_redirect
        }
        if len(redirects) == len(entries) and len(set(redirects.values())) > 1:
            ports = ", ".join(f"{port} on {f}" for f, port in sorted(redirects.items()))
            message = (
                f"redirects to https port {ports}; the HTTPRoute sends every family to "
                f"{redirects[family]}"
            )
        else:
            message = (
                f"its {side} routes differ between {family} and {', '.join(others)}; the "
                f"HTTPRoute has {family}'s"
            )
        ctx.report.behaviour(vh.path, message)
    if side != "http":  # an https listener per name: the Gateway listener check reports it
        return
    for port in sorted({p for _, p, _ in entries}):
        on_port = {f for f, p, _ in entries if p == port}
        listener_families = ctx.listener("HTTP", port, None).families
        if on_port < listener_families:
            ctx.report.access(
                vh.path,
                f"{', '.join(vh.domains)} is served only on {' and '.join(sorted(on_port))} on "
                f"HTTP port {port}; the HTTPRoute serves it on every family",
            )


def _http_rules(
    ctx: Context, vh: VirtualHost, route_name: str
) -> list[tuple[dict[str, Any], Route]]:
    """(rule, the route it says) per route, in the inventory's order."""
    from xdsgen.export.headers import header_filters

    rules = []
    for position, route in enumerate(vh.routes):
        rule = _http_rule(ctx, route, route_name, vh)
        if rule is None:
            continue
        _precedence_difference(ctx, list(vh.routes[:position]), route)
        filters = header_filters(ctx, route, f"HTTPRoute/{route_name}")
        if filters:
            rule["filters"] = rule.get("filters", []) + filters
            if "backendRefs" in rule:  # keep backendRefs (and timeouts) after the filters
                rule.update(
                    {key: rule.pop(key) for key in ("backendRefs", "timeouts") if key in rule}
                )
        rules.append((rule, route))
    return rules


def _rule_name(route: Route) -> str:
    if route.https_redirect:
        return "redirect-to-https"
    if route.direct_status is not None:
        return "maintenance"
    return f"route-{_last_index(route.path)}"


def _last_index(path: str) -> int:
    found = _INDEX.findall(path)
    return int(found[-1]) if found else 0


def path_problem(value: str) -> Optional[str]:
    """Why an Exact/PathPrefix value is refused by the HTTPRoute CRD, or None."""
    for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if bad in value:
            return f"contains {bad!r}"
    if value.endswith("/..") or value.endswith("/."):
        return "ends with a dot segment"
    if not _PATH_CHARS.match(value):
        return "has characters a Gateway API path may not contain"
    return None


def _http_rule(
    ctx: Context, route: Route, route_name: str, vh: VirtualHost
) -> Optional[dict[str, Any]]:
    rule: dict[str, Any] = {"name": _rule_name(route)}
    if route.https_redirect:
        redirect: dict[str, Any] = {"scheme": "https"}
        if route.redirect_port:
            redirect["port"] = route.redirect_port
        redirect["statusCode"] = 301  # Envoy's https_redirect; Gateway API defaults to 302
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
        rule["filters"] = [{"type": "RequestRedirect", "requestRedirect": redirect}]
        return rule
    if route.upstream is None:
        if route.direct_status is None:
            return None
        from xdsgen.export.pages import maintenance_filter

        # A vhost in maintenance answers itself: Envoy Gateway's HTTPRouteFilter.
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": route.value}}]
        rule["filters"] = [maintenance_filter(ctx, vh, route)]
        return rule
    problem = path_problem(route.value)
    if problem:
        ctx.report.access(
            route.path,
            f"{route.match} {route.value} {problem}: the route is left out, so these requests "
            "go to the next matching route",
            resource=f"HTTPRoute/{route_name}",
        )
        return None
    path_type = "PathPrefix" if route.match == "prefix" else "Exact"
    rule["matches"] = [{"path": {"type": path_type, "value": route.value}}]
    if path_type == "PathPrefix" and route.value != "/":
        trimmed = route.value.rstrip("/")
        if route.value.endswith("/"):
            effect = f"{trimmed} itself (without the slash) now comes here too"
            hint = f"add an exact route for {trimmed} above it if that matters"
        else:
            effect = f"{route.value}x… no longer comes here"
            hint = "end the prefix with / if only its subpaths are meant"
        ctx.report.behaviour(
            route.path,
            f"prefix {route.value}: Gateway API prefixes match whole path segments: {effect}",
            hint,
            resource=f"HTTPRoute/{route_name}",
        )
    if route.rewrite is not None:
        if path_type == "PathPrefix":
            path = {"type": "ReplacePrefixMatch", "replacePrefixMatch": route.rewrite}
        else:
            path = {"type": "ReplaceFullPath", "replaceFullPath": route.rewrite}
        rule["filters"] = [{"type": "URLRewrite", "urlRewrite": {"path": path}}]
    assert route.upstream is not None
    rule["backendRefs"] = ctx.backend_refs(route.upstream)
    if route.timeout is not None:
        duration, exact = gateway_duration(route.timeout)
        if not exact:
            ctx.report.behaviour(
                route.path,
                f"timeout {route.timeout} becomes {duration}: Gateway API durations count whole "
                "milliseconds",
            )
        rule["timeouts"] = {"request": duration}
    return rule


def _precedence_difference(ctx: Context, earlier: list[Route], route: Route) -> None:
    """Report a route that Gateway API's "most specific match wins" puts before an earlier,
    overlapping one that the inventory's first-match order lets win."""
    if route.https_redirect:
        return
    for before in earlier:
        if before.https_redirect:
            continue
        if not _overlap(before, route) or _rank(route) <= _rank(before):
            continue
        if _action(before) == _action(route):
            continue
        ctx.report.behaviour(
            route.path,
            f"{before.path} ({before.match} {before.value}) matches first in the inventory, but "
            f"Gateway API picks the more specific {route.match} {route.value}: requests "
            f"{before.upstream} answered now go to {route.upstream}",
        )
        return


def _overlap(a: Route, b: Route) -> bool:
    if a.match == "prefix" and b.match == "prefix":
        return a.value.startswith(b.value) or b.value.startswith(a.value)
    if a.match == "prefix":
        return b.value.startswith(a.value)
    if b.match == "prefix":
        return a.value.startswith(b.value)
    return a.value == b.value


def _rank(route: Route) -> tuple[int, int]:
    return (1 if route.match == "path" else 0, len(route.value))


def _action(route: Route) -> tuple[Any, ...]:
    return (route.upstream, route.rewrite, route.timeout, route.websocket)


_PROTO_DURATION = re.compile(r"^([0-9]+)(?:\.([0-9]+))?s$")


def gateway_duration(text: str) -> tuple[str, bool]:
    """Protobuf seconds ("0.25s") as a Gateway API duration ("250ms"), and whether exact
    (Gateway API counts whole milliseconds: anything finer is rounded up)."""
    match = _PROTO_DURATION.match(text)
    if not match:
        raise ValueError(text)
    nanos = int(match.group(1)) * 10**9 + int((match.group(2) or "0").ljust(9, "0")[:9])
    millis, rest = divmod(nanos, 10**6)
    if rest:
        millis += 1
    if millis == 0:
        return "0s", rest == 0
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts), rest == 0


# --------------------------------------------------------------------------- TLS, TCP, UDP


def tls_routes(ctx: Context) -> list[dict[str, Any]]:
    by_entry: dict[str, list[tuple[int, tuple[str, ...], str]]] = {}
    passthroughs: dict[str, Passthrough] = {}
    for item in ctx.source.listeners:
        for passthrough in item.passthrough:
            passthroughs.setdefault(passthrough.path, passthrough)
            by_entry.setdefault(passthrough.path, []).append(
                (item.port, passthrough.server_names, passthrough.upstream)
            )
    objects = []
    for path, entries in sorted(by_entry.items(), key=lambda kv: _index(kv[0])):
        sections = {
            ctx.listener("TLS", port, name.lower()).name
            for port, names, _ in entries
            for name in names
        }
        _, names, upstream = entries[0]
        route_name = ctx.object_names(f"{ctx.gateway}-passthrough-{_index(path)}")
        parents = _parent_refs(ctx, sections, path)
        hostnames = sorted({n.lower() for n in names}, key=_host_order)
        chunks = _chunks(hostnames, MAX_HOSTNAMES)
        for number, hosts in enumerate(chunks):
            name = route_name if len(chunks) == 1 else f"{route_name}-{number}"
            objects.append(
                {
                    "apiVersion": GATEWAY_API,
                    "kind": "TLSRoute",
                    "metadata": ctx.meta(name),
                    "spec": {
                        "parentRefs": parents,
                        "hostnames": hosts,
                        "rules": [
                            {"name": "passthrough", "backendRefs": ctx.backend_refs(upstream)}
                        ],
                    },
                }
            )
            ctx.rules.append(
                Rule(
                    "TLSRoute",
                    name,
                    "passthrough",
                    upstream,
                    path,
                    allow=passthroughs[path].allow,
                    proxy_protocol=passthroughs[path].proxy_protocol,
                )
            )
    return objects


def l4_routes(ctx: Context, kind: str) -> list[dict[str, Any]]:
    protocol = kind.upper()
    objects = []
    for (listener_protocol, port, _), gl in sorted(ctx.listeners.items(), key=lambda kv: kv[0][1]):
        if listener_protocol != protocol:
            continue
        upstream = gl.chosen()
        name = ctx.object_names(f"{ctx.gateway}-{kind}-{port}")
        route_kind = "TCPRoute" if kind == "tcp" else "UDPRoute"
        items = sorted(
            (item for item in ctx.source.listeners if item.kind == kind and item.port == port),
            key=lambda item: item.family,
        )
        chosen = items[0]
        for other in items[1:]:
            if (other.allow, other.proxy_protocol) != (chosen.allow, chosen.proxy_protocol):
                add = ctx.report.access if other.allow != chosen.allow else ctx.report.behaviour
                add(
                    other.path,
                    f"{kind} port {port} allows other clients or sends another PROXY protocol "
                    f"on {other.family} than on {chosen.family}; the {route_kind} has "
                    f"{chosen.family}'s",
                    resource=f"{route_kind}/{name}",
                )
        objects.append(
            {
                "apiVersion": GATEWAY_API,
                "kind": route_kind,
                "metadata": ctx.meta(name),
                "spec": {
                    "parentRefs": _parent_refs(ctx, {gl.name}, f"{kind} port {port}"),
                    "rules": [{"name": "forward", "backendRefs": ctx.backend_refs(upstream)}],
                },
            }
        )
        ctx.rules.append(
            Rule(
                route_kind,
                name,
                "forward",
                upstream,
                chosen.path,
                allow=chosen.allow,
                proxy_protocol=chosen.proxy_protocol,
            )
        )
    return objects
