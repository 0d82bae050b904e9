"""HTTP connection managers, route configurations, vhosts and routes -> semantics.

What an inventory route can say is a prefix or exact path, proxied to one upstream with
an optional prefix rewrite, timeout and websocket upgrade; a whole vhost can redirect to
https. Redirects and direct responses are read too (the comparer needs to know what the
original answers); everything else is a difference, as loud as the route's own action
(a left-out deny route is an access difference).
"""

from __future__ import annotations

from typing import Any, Optional, Union

from xdsgen.importer import read_resilience
from xdsgen.importer.carry_headers import offer_headers
from xdsgen.importer.carrying import carry, filter_list
from xdsgen.importer.inputs import Context
from xdsgen.importer.read_access import (
    HEADER_LISTS,
    read_http_filter,
    read_route_access,
    read_trusted,
)
from xdsgen.importer.semantics import (
    DEFAULT_ROUTE_TIMEOUT,
    Action,
    Hcm,
    Proxy,
    Redirect,
    Respond,
    Route,
    Vhost,
)
from xdsgen.importer.shapes import (
    as_list,
    as_map,
    duration_ns,
    enum,
    extension,
    flag,
    integer,
    label,
    maps,
    package_name,
    port,
    text,
    texts,
    type_url,
    unwrap,
)
from xdsgen.importer.topics import (
    HCM_QUIET,
    HCM_TOPICS,
    HEADER_KEYS,
    HTTP_FILTER_PACKAGES,
    HTTP_FILTERS,
    ROUTE_ACTION_READ,
    ROUTE_ACTION_TOPICS,
)


def read_hcm(ctx: Context, config: dict[str, Any], where: str, referrer: str, tls: bool) -> Hcm:
    """An HTTP connection manager; its route table is None when it cannot be read."""
    hcm = Hcm(None, where=where)
    hcm.strip_port = flag(config.get("strip_any_host_port")) or flag(
        config.get("strip_matching_host_port")
    )
    trusted = {"original_ip_detection_extensions"} if read_trusted(config, hcm) else set()
    for key in sorted(set(config) - HCM_QUIET - trusted):
        carry(
            ctx,
            hcm,
            HCM_TOPICS.get(key, "other"),
            where,
            f"http_connection_manager.{key} is not carried over",
            "connection_manager",
            key,
            None if key == "scoped_routes" else {key: config[key]},
            {key: config[key]},
            config,
        )
    codec = enum(config.get("codec_type"), "AUTO")
    if codec not in ("AUTO", "0"):
        message = f"codec_type {codec}: the draft accepts HTTP/1 and 2"
        merge = {"codec_type": config["codec_type"]}
        kind = "connection_manager"
        carry(ctx, hcm, "tuning", where, message, kind, "codec_type", merge, None, config)
    _http_filters(ctx, config, where, hcm)
    read_access_log(ctx, config, where)
    websocket = False
    upgrades = {"upgrade_configs": as_list(config.get("upgrade_configs"))}  # the whole list
    for upgrade in maps(config.get("upgrade_configs")):
        kind = (text(upgrade.get("upgrade_type")) or "").lower()
        if kind == "websocket":
            websocket = upgrade.get("enabled") is not False
        else:
            message = f"{kind or 'an'} upgrade is not carried over"
            key = "upgrade_configs"
            kind = "connection_manager"
            carry(ctx, hcm, "other", where, message, kind, key, upgrades, upgrade, config)
    route_config = _route_config(ctx, config, where, referrer, hcm)
    if route_config is not None:
        data, source = route_config
        hcm.route_config = text(data.get("name")) or ""
        # An inline route table is shown where its listener is; an RDS one by its file.
        rc_where = (
            f"{where} route_config"
            if source is None
            else (f"{source}: route configuration {hcm.route_config!r}")
        )
        hcm.vhosts = read_route_config(ctx, data, rc_where, websocket, tls, hcm)
        read_resilience.offer_compressors(ctx, config, where, hcm)
        read_route_access(ctx, hcm)
        offer_headers(ctx, hcm)
    return hcm


def read_access_log(ctx: Context, config: dict[str, Any], where: str) -> None:
    """Record where a connection manager or TCP proxy logs (the draft has one log for all)."""
    path: Optional[str] = None
    custom: Union[bool, str] = False  # True: a format the draft cannot say
    for entry in as_list(config.get("access_log")):
        kind, log, _ = extension(entry)
        if "filter" in as_map(entry):
            ctx.report.note(where, "an access log filter is not carried over")
        if kind == "FileAccessLog":
            path = text(log.get("path")) or path
        elif kind in ("StdoutAccessLog", "StderrAccessLog"):
            path = "/dev/stdout" if kind == "StdoutAccessLog" else "/dev/stderr"
        else:
            ctx.report.note(where, f"access logger {kind} is not carried over")
            continue
        formats = {"format", "json_format", "typed_json_format", "log_format"}
        if formats & set(log):
            from xdsgen.model.logformat import recognise

            custom = recognise(log.get("log_format")) or True
    ctx.access_logs.append((where, path, custom))


def _http_filters(ctx: Context, config: dict[str, Any], where: str, hcm: Hcm) -> None:
    entries = as_list(config.get("http_filters"))
    # Carried as the whole list in its order, router included: half a chain is not the
    # original's (a patch replaces a list).
    whole = filter_list(entries)
    for index, entry in enumerate(entries):
        kind, _, v2 = extension(entry)
        ctx.v2 = ctx.v2 or v2
        if kind == "Router" or read_http_filter(ctx, entry, hcm):
            continue
        if kind in ("ExtAuthz", "RBAC", "Lua") and as_map(entry).get("disabled") is True:
            continue
        if read_resilience.read_compressor(ctx, entry, where, hcm, config):
            continue
        package = package_name(type_url(unwrap(as_map(entry).get("typed_config"))))
        topic = HTTP_FILTERS.get(kind) or HTTP_FILTER_PACKAGES.get(package, "access")
        carry(
            ctx,
            hcm,
            topic,
            where,
            f"HTTP filter {label(entry)} (http_filters[{index}]) is not carried over"
            + (": requests it refused reach the routes" if topic in ("access", "auth") else ""),
            "connection_manager",
            "http_filters",
            None if whole is None else {"http_filters": whole},
            entry,
            config,
        )


def _route_config(
    ctx: Context, config: dict[str, Any], where: str, referrer: str, hcm: Hcm
) -> Optional[tuple[dict[str, Any], Optional[str]]]:
    """The route table and the file it came from (None: inline in the listener)."""
    if isinstance(config.get("route_config"), dict):
        return config["route_config"], None
    if "scoped_routes" in config:
        ctx.report.differ(
            "ports",
            where,
            "scoped routes cannot be read: no routes in the draft",
            config.get("scoped_routes"),
            hcm,
        )
        return None
    rds = as_map(config.get("rds"))
    wanted = text(rds.get("route_config_name"))
    found, why = ctx.follow(rds.get("config_source"), "RDS", referrer)
    candidates = (found or []) + list(ctx.inputs.route_configs)
    for item in candidates:
        if "virtual_hosts" in item.data and wanted in (None, text(item.data.get("name"))):
            return item.data, item.source
    if not why:
        why = f"no route configuration {wanted!r} in the RDS file"
    ctx.report.differ("ports", where, f"{why}: the draft has none of its routes", rds, hcm)
    return None


def read_route_config(
    ctx: Context, data: dict[str, Any], where: str, websocket: bool, tls: bool, hcm: Hcm
) -> list[Vhost]:
    hcm.route_headers = data  # its header changes apply to every route (read_access)
    for key in sorted(set(data) - {"@type", "name", "virtual_hosts", "validate_clusters"}):
        value = data[key]
        if key in HEADER_LISTS:
            continue  # per route, with xdsgen's own client headers left out (read_access)
        if key in ("most_specific_header_mutations_wins", "max_direct_response_body_size_bytes"):
            # Nothing a request sees without the fields they qualify: no difference, but
            # carried along when a patch can.
            merge = {key: value}
            carry(ctx, hcm, "other", where, "", "route_config", key, merge, None, data, quiet=True)
            continue
        topic = "headers" if key in HEADER_KEYS else "other"
        if key == "ignore_port_in_host_matching":
            hcm.strip_port = hcm.strip_port or flag(value)
            continue
        message = f"{key} is not carried over"
        merge = {key: value}
        carry(ctx, hcm, topic, where, message, "route_config", key, merge, merge, data)
    vhosts = []
    for index, entry in enumerate(as_list(data.get("virtual_hosts"))):
        if not isinstance(entry, dict):
            continue
        vhost = _vhost(ctx, entry, f"{where} virtual_hosts[{index}]", websocket, tls, hcm)
        vhost.hcm = hcm
        vhosts.append(vhost)
    return vhosts


def _vhost(
    ctx: Context, data: dict[str, Any], where: str, websocket: bool, tls: bool, hcm: Hcm
) -> Vhost:
    name = text(data.get("name")) or ""
    where = f"{where} ({name!r})" if name else where
    domains = tuple(dict.fromkeys(d.lower() for d in texts(data.get("domains"))))
    vhost = Vhost(name, domains, [], where=where, raw=data)
    vhost.compression = read_resilience.vhost_compression(hcm, vhost, data)
    # Per-filter configs and header changes are read per route (read_access), which leaves
    # the compressors (read above) to read_resilience.
    quiet = {"name", "domains", "routes", "virtual_clusters", "metadata", "require_tls"}
    quiet |= {"typed_per_filter_config", *HEADER_LISTS}
    for key in sorted(set(data) - quiet):
        topic = "headers" if key in HEADER_KEYS else "other"
        if key in ("retry_policy", "hedge_policy", "retry_policy_typed_config"):
            topic = "routing"
        elif key in ("rate_limits", "per_request_buffer_limit_bytes"):
            topic = "tuning"
        # A matcher replaces the routes: not a setting of the draft's vhost.
        merge = None if key == "matcher" else {key: data[key]}
        message = f"{key} is not carried over"
        carry(ctx, vhost, topic, where, message, "vhost", key, merge, merge, data)
    require = enum(data.get("require_tls"), "NONE")
    if require not in ("NONE", "0") and not tls:
        # Every plain-HTTP request is redirected to https, whatever the routes say.
        vhost.routes = [Route("prefix", "/", Redirect(True), where=where, vhost=vhost)]
        return vhost
    for index, entry in enumerate(as_list(data.get("routes"))):
        if isinstance(entry, dict):
            route = _route(ctx, entry, f"{where} routes[{index}]", websocket, vhost)
            if route is not None:
                vhost.routes.append(route)
    return vhost


def _route(
    ctx: Context, data: dict[str, Any], where: str, websocket: bool, vhost: Vhost
) -> Optional[Route]:
    fields: list[_ActionField] = []
    action = _action(ctx, data, where, websocket, fields)
    if action is None:
        return None
    match = as_map(data.get("match"))
    kinds = [k for k in ("prefix", "path") if isinstance(match.get(k), str)]
    what = _action_words(action)
    topic = _topic_for(action)
    if not kinds:
        found = sorted(set(match) - {"case_sensitive"}) or ["nothing"]
        extra = f"{found[0]} {_short(match.get(found[0]))}".strip()
        ctx.report.differ(
            topic,
            where,
            f"a route matching on {extra} ({what}) cannot be said in an inventory: left out, "
            "its requests go to the next route that matches",
            data,
            vhost,
        )
        _left_out(ctx, where, fields)
        return None
    kind = kinds[0]
    conditions = sorted(
        set(match)
        - {"prefix", "path", "case_sensitive"}
        - ({"headers"} if not as_list(match.get("headers")) else set())
        - ({"query_parameters"} if not as_list(match.get("query_parameters")) else set())
    )
    if conditions:
        ctx.report.differ(
            topic,
            where,
            f"the route {kind} {match[kind]} ({what}) also matches on {', '.join(conditions)}: "
            "left out, its requests go to the next route that matches",
            data,
            vhost,
        )
        _left_out(ctx, where, fields)
        return None
    route = Route(kind, match[kind], action, where=where, raw=data, vhost=vhost)
    route.name = text(data.get("name")) or ""
    if isinstance(action, Proxy):  # read, and rendered by xdsgen too (carrying.py)
        route.extras[("route", read_resilience.RETRY)] = action.retry
        route.extras[("route", read_resilience.IDLE_TIMEOUT)] = action.idle_timeout
    for topic_of, message, key, merge, fragment in fields:
        carry(ctx, route, topic_of, where, message, "route", key, merge, fragment, data)
    if match.get("case_sensitive") is False:
        carry(
            ctx,
            route,
            topic,
            where,
            f"{kind} {match[kind]} matched in any case; the draft matches it case-sensitively",
            "route",
            "match.case_sensitive",
            {"match": {"case_sensitive": False}},
            data,
            data,
        )
    for key in sorted(
        set(data) - {"match", "route", "redirect", "direct_response", "name", "use_websocket"}
    ):
        if key in ("metadata", "typed_per_filter_config", *HEADER_LISTS):
            continue  # read per route (read_access)
        key_topic = "headers" if key in HEADER_KEYS else "other"
        if key == "typed_per_filter_config":
            key_topic = "access"
        elif key in ("decorator", "tracing"):
            key_topic = "tracing"
        message, merge = f"route {key} is not carried over", {key: data[key]}
        carry(ctx, route, key_topic, where, message, "route", key, merge, merge, data)
    return route


# A field of a route's action, reported once the route it belongs to is known:
# (topic, message, key, merge patch on the route or None, fragment).
_ActionField = tuple[str, str, str, Any, Any]


def _left_out(ctx: Context, where: str, fields: list[_ActionField]) -> None:
    """The action fields of a route the draft leaves out: no route to carry them to."""
    for topic, message, _, _, fragment in fields:
        ctx.report.differ(topic, where, message, fragment)


def _action(
    ctx: Context, data: dict[str, Any], where: str, websocket: bool, fields: list[_ActionField]
) -> Optional[Action]:
    if isinstance(data.get("route"), dict):
        return _proxy(ctx, data, where, websocket, fields)
    if isinstance(data.get("redirect"), dict):
        return _redirect(data["redirect"])
    if isinstance(data.get("direct_response"), dict):
        status = integer(data["direct_response"].get("status"))
        return Respond(status if status is not None else 0)
    ctx.report.differ(
        "access",
        where,
        "a route with an action xdsgen cannot read is left out; its requests go to the next "
        "route that matches",
        data,
    )
    return None


def _proxy(
    ctx: Context, data: dict[str, Any], where: str, websocket: bool, fields: list[_ActionField]
) -> Optional[Proxy]:
    action = data["route"]
    cluster = text(action.get("cluster"))
    if cluster is None and isinstance(action.get("weighted_clusters"), dict):
        weighted = maps(action["weighted_clusters"].get("clusters"))
        ranked = sorted(
            ((integer(c.get("weight")) or 0, text(c.get("name")) or "") for c in weighted),
            key=lambda pair: -pair[0],
        )
        if ranked and ranked[0][1]:
            cluster = ranked[0][1]
            ctx.report.differ(
                "routing",
                where,
                "weighted_clusters "
                + ", ".join(f"{n} ({w})" for w, n in ranked)
                + f": the draft sends everything to {cluster}",
                data,
            )
    if cluster is None:
        keys = sorted(k for k in action if k.startswith("cluster") or "specifier" in k)
        ctx.report.differ(
            "routing",
            where,
            f"a route choosing its cluster by {', '.join(keys) or 'nothing'} is left out; its "
            "requests go to the next route that matches",
            data,
        )
        return None
    upgrade: Optional[bool] = None
    if "use_websocket" in action or "use_websocket" in data:  # v2
        ctx.v2 = True
        upgrade = flag(action.get("use_websocket")) or flag(data.get("use_websocket"))
    upgrades = {"route": {"upgrade_configs": as_list(action.get("upgrade_configs"))}}
    for entry in maps(action.get("upgrade_configs")):
        if (text(entry.get("upgrade_type")) or "").lower() == "websocket":
            upgrade = entry.get("enabled") is not False
        else:
            message = f"{entry.get('upgrade_type')} upgrade not carried over"
            fields.append(("other", message, "route.upgrade_configs", upgrades, entry))
    timeout = duration_ns(action.get("timeout"))
    idle = duration_ns(action.get("idle_timeout"))
    for key in sorted(
        set(action) - ROUTE_ACTION_READ - {"weighted_clusters", "retry_policy", "idle_timeout"}
    ):
        topic = ROUTE_ACTION_TOPICS.get(key, "other")
        # Another way to choose the cluster is not a setting of the draft's route.
        merge = (
            None if key.startswith(("cluster", "inline_cluster")) else {"route": {key: action[key]}}
        )
        message = f"route.{key} is not carried over"
        fields.append((topic, message, f"route.{key}", merge, {key: action[key]}))
    rewrite = action.get("prefix_rewrite")
    return Proxy(
        cluster=cluster,
        rewrite=rewrite if isinstance(rewrite, str) else None,
        timeout=timeout if timeout is not None and timeout >= 0 else DEFAULT_ROUTE_TIMEOUT,
        websocket=websocket if upgrade is None else upgrade,
        retry=read_resilience.read_retry(action.get("retry_policy")),
        idle_timeout=idle if idle is not None and idle >= 0 else None,
    )


def _redirect(data: dict[str, Any]) -> Redirect:
    scheme = (text(data.get("scheme_redirect")) or "").lower()
    https = flag(data.get("https_redirect")) or scheme == "https"
    number = port(data.get("port_redirect")) or None
    if https and number == 443:
        number = None
    other = []
    if scheme and scheme != "https":
        other.append(f"scheme {scheme}")
    for key in ("host_redirect", "path_redirect", "prefix_rewrite"):
        if text(data.get(key)):
            other.append(f"{key.split('_')[0]} {data[key]}")
    if "regex_rewrite" in data:
        other.append("regex rewrite")
    code = enum(data.get("response_code"), "MOVED_PERMANENTLY")
    if code not in ("MOVED_PERMANENTLY", "0"):
        other.append(f"code {code}")
    if flag(data.get("strip_query")):
        other.append("query stripped")
    known = {
        "scheme_redirect",
        "https_redirect",
        "port_redirect",
        "host_redirect",
        "path_redirect",
        "prefix_rewrite",
        "regex_rewrite",
        "response_code",
        "strip_query",
    }
    other.extend(sorted(set(data) - known))
    return Redirect(https, number, ", ".join(other))


def _action_words(action: Action) -> str:
    return action.describe()


def _topic_for(action: Action) -> str:
    """A route the draft leaves out is as loud as what it did: a deny is about access."""
    if isinstance(action, Respond):
        return "access" if action.status >= 400 or action.status < 200 else "responses"
    if isinstance(action, Redirect):
        return "redirect"
    return "routing"


def _short(value: Any) -> str:
    if isinstance(value, dict):
        inner = text(value.get("regex")) or type_url(value)
        return inner[:60] if inner else ""
    found = text(value)
    return found[:60] if found else ""
