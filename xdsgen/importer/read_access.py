"""Who may reach what (issue 14), read from an Envoy config: allow lists (RBAC on source
addresses, source-matched filter chains, the UDP proxy's source matcher), basic and
forward auth, trusted proxies, the PROXY protocol to upstreams, and header changes.

It reads what xdsgen renders and the hand-written shapes that mean the same; anything
else stays a difference, as before. The same reader reads the original and the draft's
render, so the comparer asks both the same questions (semantics.Access per route).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen.importer import read_resilience
from xdsgen.importer.carrying import carry
from xdsgen.importer.inputs import Context
from xdsgen.importer.semantics import Access, Chain, Hcm, Header, Route
from xdsgen.importer.shapes import as_list, as_map, enum, extension, maps, text, texts, type_url

# What every xdsgen route configuration sets (the client's address, scheme and port): its
# own safe defaults, in the original or not, never reported.
CLIENT_HEADERS = {
    ("x-forwarded-for", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
    ("x-real-ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
    ("x-forwarded-proto", "http"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-port", "%DOWNSTREAM_LOCAL_PORT%"),
}
HEADER_LISTS = (
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
)
EVERYONE = ("0.0.0.0/0", "::/0")
_EXT_AUTHZ_QUIET = {
    "@type",
    "http_service",
    "failure_mode_allow",
    "transport_api_version",
    "stat_prefix",
    "allowed_headers",
    "status_on_error",
}
_SERVICE_KEYS = {"server_uri", "path_prefix", "authorization_request", "authorization_response"}
_RESPONSE_QUIET = {"allowed_client_headers", "allowed_client_headers_on_success"}


@dataclass
class Filter:
    """An HTTP filter of a connection manager, as far as an inventory can say it."""

    kind: str  # rbac, basic, forward, strip
    disabled: bool
    allow: Optional[tuple[str, ...]] = None  # rbac at the connection manager
    client: bool = False
    users: Optional[str] = None  # basic at the connection manager
    forward: Optional[tuple[str, ...]] = None  # ("forward", cluster, uri, prefix, headers)


# --------------------------------------------------------------------------- values


def cidr(data: Any) -> Optional[str]:
    """A CidrRange as text (192.168.1.0/24), None if it is not one."""
    data = as_map(data)
    address = text(data.get("address_prefix"))
    length = data.get("prefix_len", 0)
    if isinstance(length, dict):  # UInt32Value written as a message
        length = length.get("value", 0)
    try:
        network = ipaddress.ip_network(f"{address}/{int(length)}", strict=False)
    except (TypeError, ValueError):
        return None
    return str(network)


def cidrs(items: Any) -> Optional[tuple[str, ...]]:
    found = [cidr(item) for item in as_list(items)]
    if not found or None in found:
        return None
    return normal([c for c in found if c])


def normal(items: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(items), key=lambda c: (":" in c, c)))


def everyone(allow: Optional[tuple[str, ...]]) -> bool:
    return allow is None or set(EVERYONE) <= set(allow)


def rbac_allow(rules: Any) -> Optional[tuple[tuple[str, ...], bool]]:
    """(CIDRs, judged on the client behind trusted proxies) of RBAC rules that allow
    exactly some source addresses to do anything; None for any other rules."""
    rules = as_map(rules)
    if enum(rules.get("action"), "ALLOW") not in ("ALLOW", "0"):
        return None
    if set(rules) - {"action", "policies"}:
        return None
    found: list[str] = []
    kinds: set[str] = set()
    for policy in as_map(rules.get("policies")).values():
        policy = as_map(policy)
        if set(policy) - {"permissions", "principals"}:
            return None
        if not all(as_map(p).get("any") is True for p in as_list(policy.get("permissions"))):
            return None
        for principal in as_list(policy.get("principals")):
            parts = _principal_cidrs(principal, kinds)
            if parts is None:
                return None
            found.extend(parts)
    if len(kinds) > 1:
        return None
    return normal(found), kinds == {"remote_ip"}


def _principal_cidrs(principal: Any, kinds: set[str]) -> Optional[list[str]]:
    principal = as_map(principal)
    if len(principal) != 1:
        return None
    ((key, value),) = principal.items()
    if key in ("direct_remote_ip", "remote_ip", "source_ip"):
        kinds.add("remote_ip" if key == "remote_ip" else "direct_remote_ip")
        found = cidr(value)
        return [found] if found else None
    if key == "or_ids":
        out: list[str] = []
        for item in as_list(as_map(value).get("ids")):
            parts = _principal_cidrs(item, kinds)
            if parts is None:
                return None
            out.extend(parts)
        return out
    return None


# --------------------------------------------------------------------------- HTTP filters


def read_http_filter(ctx: Context, entry: Any, hcm: Hcm) -> bool:
    """Record an HTTP filter the inventory can say; False when it cannot (its difference
    is then reported as before)."""
    kind, config, _ = extension(entry)
    name = text(as_map(entry).get("name")) or kind
    disabled = as_map(entry).get("disabled") is True
    found: Optional[Filter] = None
    if kind == "RBAC" and not set(config) - {"@type", "rules", "stat_prefix"}:
        if "rules" not in config:
            found = Filter("rbac", disabled)
        else:
            allowed = rbac_allow(config["rules"])
            if allowed is not None:
                found = Filter("rbac", disabled, allow=allowed[0], client=allowed[1])
    elif kind == "BasicAuth" and not set(config) - {"@type", "users"}:
        users = _users(config.get("users"))
        if users is not None:
            found = Filter("basic", disabled, users=users or None)
    elif kind == "ExtAuthz":
        forward = _forward(ctx, config, hcm)
        if forward is not None:
            found = Filter("forward", disabled, forward=forward)
    elif kind == "HeaderMutation" and not set(config) - {"@type"}:
        found = Filter("strip", disabled)
    if found is None:
        return False
    hcm.filters[name] = found
    return True


def _users(data: Any) -> Optional[str]:
    """The htpasswd file of a DataSource ("" for inline text without users: xdsgen's own
    placeholder), None for inline users (an inventory names a file)."""
    data = as_map(data)
    if text(data.get("filename")):
        return str(data["filename"])
    inline = text(data.get("inline_string"))
    if inline is not None and all(
        not line.strip() or line.startswith("#") for line in inline.split("\n")
    ):
        return ""
    return None


def _forward(ctx: Context, config: dict[str, Any], hcm: Hcm) -> Optional[tuple[str, ...]]:
    if set(config) - _EXT_AUTHZ_QUIET or config.get("failure_mode_allow") is True:
        return None
    service = as_map(config.get("http_service"))
    if not service or set(service) - _SERVICE_KEYS:
        return None
    uri = as_map(service.get("server_uri"))
    cluster = text(uri.get("cluster"))
    if not cluster:
        return None
    response = as_map(service.get("authorization_response"))
    if set(response) - _RESPONSE_QUIET - {"allowed_upstream_headers"}:
        return None
    headers = []
    for pattern in maps(as_map(response.get("allowed_upstream_headers")).get("patterns")):
        exact = text(pattern.get("exact"))
        if exact is None:
            ctx.report.differ(
                "auth",
                hcm.where,
                f"ext_authz copies the auth service's headers matching {pattern} to the "
                "backend; the draft copies only headers named in full (headers_to_upstream)",
                pattern,
                hcm,
            )
            continue
        headers.append(exact.lower())
    prefix = text(service.get("path_prefix")) or ""
    return (
        "forward",
        cluster,
        text(uri.get("uri")) or "",
        prefix.rstrip("/"),
        ",".join(sorted(set(headers))),
    )


# --------------------------------------------------------------------------- per route


def read_route_access(ctx: Context, hcm: Hcm) -> None:
    """Every route's Access: its own per-filter configs, else its vhost's, else the
    connection manager's; and its header changes at each level, in Envoy's order."""
    rc = as_map(hcm.route_headers)
    most_specific_last = rc.get("most_specific_header_mutations_wins") is True
    reported: set[int] = set()
    for vhost in hcm.vhosts or []:
        vhost_config = _per_filter(ctx, hcm, vhost.raw, vhost.where, vhost, reported)
        for route in vhost.routes:
            route_config = _per_filter(ctx, hcm, route.raw, route.where, route, reported)
            levels = [as_map(route.raw), as_map(vhost.raw), _without_client_headers(rc)]
            if most_specific_last:
                levels.reverse()
            route.access = _access(ctx, hcm, {**vhost_config, **route_config}, route, levels)


CUSTOM_RESPONSE = "envoy.filters.http.custom_response"


def _per_filter(
    ctx: Context, hcm: Hcm, data: Any, where: str, anchor: Any, reported: set[int]
) -> dict[str, Any]:
    configs = {
        str(name): as_map(config)
        for name, config in as_map(as_map(data).get("typed_per_filter_config")).items()
    }
    # The others are carried as they are, merged with the draft's own (one patch field).
    others = read_resilience.other_filter_configs(hcm, configs)
    unread = {name: configs[name] for name in sorted(set(others) - set(hcm.filters))}
    kind = "route" if isinstance(anchor, Route) else "vhost"
    for name in unread:
        if id(data) not in reported:
            carry(
                ctx,
                anchor,
                # An error page (custom_response) changes answers; anything else may refuse.
                "responses" if name == CUSTOM_RESPONSE else "access",
                where,
                f"typed_per_filter_config {name} is not carried over",
                kind,
                "typed_per_filter_config",
                {"typed_per_filter_config": unread},
                {name: configs[name]},
                data,
            )
    reported.add(id(data))
    return {name: config for name, config in configs.items() if name in hcm.filters}


def _access(
    ctx: Context,
    hcm: Hcm,
    configs: dict[str, dict[str, Any]],
    route: Route,
    levels: list[dict[str, Any]],
) -> Access:
    allow: Optional[tuple[str, ...]] = None
    client = False
    auths: list[tuple[str, ...]] = []
    strip: tuple[str, ...] = ()
    for name, found in hcm.filters.items():
        config = configs.get(name)
        wrapped = type_url(config) == "envoy.config.route.v3.FilterConfig" if config else False
        if wrapped and config is not None:
            if config.get("disabled") is True:
                continue
            config = as_map(config.get("config")) or None
            on = True
        else:
            on = not found.disabled or config is not None
        if not on:
            continue
        kind = type_url(config).rsplit(".", 1)[-1] if config else ""
        if found.kind == "rbac":
            if config is None:
                allow, client = found.allow, found.client
            elif kind == "RBACPerRoute":
                rules = as_map(config.get("rbac")).get("rules")
                allowed = rbac_allow(rules) if rules is not None else (None, False)
                if allowed is None:
                    _cannot(ctx, route, "its RBAC rules", config)
                else:
                    allow, client = allowed
        elif found.kind == "basic":
            users = (
                _users(as_map(config).get("users")) if kind == "BasicAuthPerRoute" else found.users
            )
            if users:
                auths.append(("basic", users))
            else:
                _cannot(ctx, route, "basic auth without an htpasswd file", config)
        elif found.kind == "forward" and found.forward is not None:
            if config is not None and kind == "ExtAuthzPerRoute" and config.get("disabled"):
                continue
            auths.append(found.forward)
        elif found.kind == "strip" and config is not None:
            mutations = as_map(config.get("mutations"))
            removes = [
                text(as_map(m).get("remove")) for m in as_list(mutations.get("request_mutations"))
            ]
            if set(mutations) - {"request_mutations"} or None in removes:
                _cannot(ctx, route, "its header mutations", config)
            else:
                strip = tuple(sorted({str(r).lower() for r in removes}))
    if len(auths) > 1:
        ctx.report.differ(
            "auth",
            route.where,
            "two authenticators on one route: the draft asks only the first",
            None,
            route,
        )
    return Access(
        allow=allow,  # as written (0.0.0.0/0 too): the comparer knows it is everyone
        client=client and bool(hcm.trusted),
        auth=auths[0] if auths else None,
        strip=strip,
        request_headers=_effects(levels, "request"),
        response_headers=_effects(levels, "response"),
    )


def _cannot(ctx: Context, route: Route, what: str, fragment: Any) -> None:
    ctx.report.differ(
        "access", route.where, f"{what} cannot be said in an inventory", fragment, route
    )


def _without_client_headers(rc: dict[str, Any]) -> dict[str, Any]:
    adds = [
        entry
        for entry in as_list(rc.get("request_headers_to_add"))
        if _header(entry)[:2] not in CLIENT_HEADERS
    ]
    return {**rc, "request_headers_to_add": adds}


def _header(entry: Any) -> Header:
    entry = as_map(entry)
    header = as_map(entry.get("header"))
    action = enum(entry.get("append_action"), "")
    if not action:
        append = entry.get("append")
        action = "OVERWRITE_IF_EXISTS_OR_ADD" if append is False else "APPEND_IF_EXISTS_OR_ADD"
        if isinstance(append, dict):
            action = (
                "APPEND_IF_EXISTS_OR_ADD"
                if append.get("value") is not False
                else "OVERWRITE_IF_EXISTS_OR_ADD"
            )
        if append is None:
            action = "APPEND_IF_EXISTS_OR_ADD"
    return ((text(header.get("key")) or "").lower(), text(header.get("value")) or "", action)


def _effects(levels: list[dict[str, Any]], side: str) -> tuple[tuple[str, Any], ...]:
    """What the levels, applied in this order (each: removes, then adds), do to each header:
    ("removed"), ("set", value), ("default", value: only where absent), or ("append", value)
    / ("replace", value) that an inventory cannot say."""
    state: dict[str, tuple[str, ...]] = {}
    for level in levels:
        for name in texts(level.get(f"{side}_headers_to_remove")):
            state[name.lower()] = ("removed",)
        for entry in as_list(level.get(f"{side}_headers_to_add")):
            name, value, action = _header(entry)
            before = state.get(name)
            if action in ("OVERWRITE_IF_EXISTS_OR_ADD", "2"):
                state[name] = ("set", value)
            elif action in ("ADD_IF_ABSENT", "1"):
                if before is None:
                    state[name] = ("default", value)
                elif before == ("removed",):
                    state[name] = ("set", value)
            elif action in ("OVERWRITE_IF_EXISTS", "3"):
                if before is None:
                    state[name] = ("replace", value)
                elif before != ("removed",):
                    state[name] = ("set", value)
            else:  # APPEND_IF_EXISTS_OR_ADD
                state[name] = ("set", value) if before == ("removed",) else ("append", value)
    return tuple(sorted(state.items()))


# --------------------------------------------------------------------------- listeners


def read_trusted(config: dict[str, Any], hcm: Hcm) -> bool:
    """original_ip_detection_extensions as xdsgen writes trusted_proxies: the xff one with
    trusted CIDRs, use_remote_address off. True when read."""
    extensions = as_list(config.get("original_ip_detection_extensions"))
    if len(extensions) != 1 or config.get("use_remote_address") is True:
        return False
    kind, xff, _ = extension(extensions[0])
    if kind != "XffConfig" or set(xff) - {"@type", "xff_trusted_cidrs", "skip_xff_append"}:
        return False
    found = cidrs(as_map(xff.get("xff_trusted_cidrs")).get("cidrs"))
    if not found:
        return False
    hcm.trusted = found
    return True


def read_network_rbac(ctx: Context, entry: Any, chain: Chain) -> bool:
    """A network RBAC filter that allows some source addresses, before a TCP proxy: said as
    allow (the draft closes refused connections sooner: before the upstream is dialled)."""
    kind, config, _ = extension(entry)
    if kind != "RBAC" or set(config) - {"@type", "rules", "stat_prefix"}:
        return False
    allowed = rbac_allow(config.get("rules"))
    if allowed is None or allowed[1] or chain.sources is not None:
        return False
    chain.sources = allowed[0]
    ctx.report.note(
        chain.where,
        "its RBAC filter refuses a client at its first byte, after the upstream connection "
        "(a server that speaks first, such as SSH, answers it); the draft's allow closes the "
        "connection before any upstream is dialled",
    )
    return True


def read_udp_matcher(matcher: dict[str, Any]) -> Optional[tuple[str, tuple[str, ...]]]:
    """(cluster, CIDRs) of a udp_proxy matcher that routes some sources to one cluster."""
    if set(matcher) != {"matcher_list"}:
        return None
    (item, *more) = as_list(as_map(matcher.get("matcher_list")).get("matchers")) or [None]
    if more or not isinstance(item, dict):
        return None
    single = as_map(as_map(item.get("predicate")).get("single_predicate"))
    source = type_url(as_map(single.get("input")).get("typed_config"))
    match = as_map(as_map(single.get("custom_match")).get("typed_config"))
    if not source.endswith("SourceIPInput") or not type_url(match).endswith(
        "input_matchers.ip.v3.Ip"
    ):
        return None
    found = cidrs(match.get("cidr_ranges"))
    action = as_map(as_map(as_map(item.get("on_match")).get("action")).get("typed_config"))
    cluster = text(action.get("cluster"))
    if found is None or cluster is None:
        return None
    return cluster, found


def read_proxy_protocol(config: dict[str, Any]) -> Optional[str]:
    """v1 or v2 for an upstream_proxy_protocol transport socket over plain TCP."""
    version = enum(as_map(config.get("config")).get("version"), "V1")
    inner = config.get("transport_socket")
    if inner is not None and extension(inner)[0] != "RawBuffer":
        return None
    if set(config) - {"@type", "config", "transport_socket"}:
        return None
    return {"V1": "v1", "0": "v1", "V2": "v2", "1": "v2"}.get(version or "V1")
