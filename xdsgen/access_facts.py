"""render.verify for access (issue 14): what the rendered files say about who may reach
what, read back and compared with the model. Kept apart from render.py so that the facts of
one feature stay together.

Each `expected_*` reads the model, each `parsed_*` the parsed file, into the same shape.
"""

from __future__ import annotations

from typing import Any

from xdsgen.model import Model
from xdsgen.model.ir import Cidr, HeaderRules

_PER_FILTER_KINDS = {
    "RBACPerRoute": "allow",
    "BasicAuthPerRoute": "basic",
    "ExtAuthzPerRoute": "forward",
    "HeaderMutationPerRoute": "strip",
}
_FILTER_KINDS = {
    "RBAC": "rbac",
    "HeaderMutation": "strip",
    "BasicAuth": "basic",
    "ExtAuthz": "forward",
}


def _cidrs(cidrs: tuple[Cidr, ...]) -> list[tuple[str, int]]:
    return [(c.address, c.prefix_len) for c in cidrs]


def _parsed_cidrs(items: Any) -> list[tuple[str, int]]:
    return [(c["address_prefix"], c["prefix_len"]) for c in items or []]


def _type(config: dict[str, Any]) -> str:
    return str(config.get("@type", "")).rsplit(".", 1)[-1]


# --------------------------------------------------------------------------- clusters


def expected_clusters(model: Model) -> list[Any]:
    return [(c.name, c.proxy_protocol) for c in model.clusters]


def parsed_clusters(doc: dict[str, Any]) -> list[Any]:
    facts = []
    for cluster in doc["resources"]:
        socket = cluster.get("transport_socket") or {}
        version = None
        if socket.get("name") == "envoy.transport_sockets.upstream_proxy_protocol":
            version = socket["typed_config"]["config"]["version"]
        facts.append((cluster["name"], version))
    return facts


# --------------------------------------------------------------------------- listeners


def _filter_facts(f: Any) -> tuple[Any, ...]:
    forward = f.forward
    return (
        f.name,
        f.kind,
        f.kind in ("basic", "forward"),
        None
        if forward is None
        else (
            forward.uri,
            forward.cluster,
            forward.path_prefix,
            forward.timeout,
            list(forward.headers_to_upstream),
            f.scheme,
        ),
    )


def expected_listeners(model: Model) -> list[Any]:
    facts = []
    for listener in model.listeners:
        chains = []
        for chain in listener.filter_chains:
            manager = chain.http
            chains.append(
                (
                    list(chain.server_names),
                    _cidrs(chain.sources),
                    chain.tcp.cluster if chain.tcp else None,
                    None
                    if manager is None
                    else (
                        dict(manager.settings).get("use_remote_address"),
                        _cidrs(manager.trusted_proxies),
                        [_filter_facts(f) for f in manager.filters],
                    ),
                )
            )
        facts.append((listener.name, _cidrs(listener.udp_sources), chains))
    return facts


def _parsed_filter(entry: dict[str, Any], manager: dict[str, Any]) -> tuple[Any, ...]:
    config = entry["typed_config"]
    kind = _FILTER_KINDS.get(_type(config), _type(config))
    forward: Any = None
    if kind == "forward":
        service = config["http_service"]
        request = {h["key"]: h["value"] for h in service["authorization_request"]["headers_to_add"]}
        upstream = service["authorization_response"].get("allowed_upstream_headers", {})
        forward = (
            service["server_uri"]["uri"],
            service["server_uri"]["cluster"],
            service.get("path_prefix", ""),
            service["server_uri"]["timeout"],
            [p["exact"] for p in upstream.get("patterns", [])],
            request["x-forwarded-proto"],
        )
        if config.get("failure_mode_allow") is not False:
            forward = ("fails open",)
    return (entry["name"], kind, entry.get("disabled", False), forward)


def parsed_listeners(doc: dict[str, Any]) -> list[Any]:
    facts = []
    for listener in doc["resources"]:
        udp: list[tuple[str, int]] = []
        for lf in listener.get("listener_filters", []):
            matcher = (lf.get("typed_config") or {}).get("matcher") or {}
            for item in (matcher.get("matcher_list") or {}).get("matchers", []):
                match = item["predicate"]["single_predicate"]["custom_match"]["typed_config"]
                udp = _parsed_cidrs(match["cidr_ranges"])
        chains = []
        for chain in listener.get("filter_chains", []):
            match = chain.get("filter_chain_match") or {}
            config = chain["filters"][-1]["typed_config"]
            manager = None
            if "rds" in config:
                detection = config.get("original_ip_detection_extensions") or []
                trusted = (
                    detection[0]["typed_config"]["xff_trusted_cidrs"]["cidrs"] if detection else []
                )
                manager = (
                    config.get("use_remote_address"),
                    _parsed_cidrs(trusted),
                    [
                        _parsed_filter(f, config)
                        for f in config["http_filters"]
                        # The router, and the edge features' filters (verify_features).
                        if _type(f.get("typed_config") or {}) in _FILTER_KINDS
                    ],
                )
            chains.append(
                (
                    list(match.get("server_names", [])),
                    _parsed_cidrs(match.get("source_prefix_ranges")),
                    config.get("cluster"),
                    manager,
                )
            )
        facts.append((listener["name"], udp, chains))
    return facts


# --------------------------------------------------------------------------- routes


def _rules(rules: HeaderRules | None) -> Any:
    if rules is None:
        return ([], [], [], [])
    return (
        [(h.key, h.value, h.action) for h in rules.request_add],
        list(rules.request_remove),
        [(h.key, h.value, h.action) for h in rules.response_add],
        list(rules.response_remove),
    )


_NOTHING: Any = ([], [], ([], [], [], []))  # a route without access settings
_ROUTE_KEYS = (
    "typed_per_filter_config",
    "metadata",
    *(
        f"{side}_headers_to_{action}"
        for side in ("request", "response")
        for action in ("add", "remove")
    ),
)


def expected_routes(model: Model, name: str) -> Any:
    rc = next(r for r in model.route_configs if r.file_name == name)
    routes = [
        (
            [
                (
                    f.filter,
                    f.kind,
                    _cidrs(f.cidrs),
                    f.principal if f.kind == "allow" else None,
                    f.users or None,
                    list(f.headers),
                )
                for f in route.filters
            ],
            sorted({f.users_version for f in route.filters if f.users_version}),
            _rules(route.headers),
        )
        if route.filters or route.headers is not None
        else _NOTHING
        for vhost in rc.virtual_hosts
        for route in vhost.routes
    ]
    return (list(rc.request_headers), routes)


def _parsed_per_filter(name: str, config: dict[str, Any]) -> tuple[Any, ...]:
    kind = _PER_FILTER_KINDS.get(_type(config), _type(config))
    cidrs: list[tuple[str, int]] = []
    principal = None
    if kind == "allow":
        policies = config["rbac"]["rules"]["policies"]
        for item in policies["allow"]["principals"]:
            ((principal, value),) = item.items()
            cidrs.append((value["address_prefix"], value["prefix_len"]))
    users = config["users"]["filename"] if kind == "basic" else None
    strip = (
        [m["remove"] for m in config["mutations"]["request_mutations"]] if kind == "strip" else []
    )
    return (name, kind, cidrs, principal, users, strip)


def _parsed_rules(route: dict[str, Any]) -> Any:
    def adds(key: str) -> list[Any]:
        return [
            (h["header"]["key"], h["header"]["value"], h["append_action"])
            for h in route.get(key, [])
        ]

    return (
        adds("request_headers_to_add"),
        list(route.get("request_headers_to_remove", [])),
        adds("response_headers_to_add"),
        list(route.get("response_headers_to_remove", [])),
    )


def parsed_routes(doc: dict[str, Any]) -> Any:
    (rc,) = doc["resources"]
    routes = []
    for vhost in rc["virtual_hosts"]:
        for route in vhost["routes"]:
            if not any(key in route for key in _ROUTE_KEYS):
                routes.append(_NOTHING)
                continue
            per_filter = route.get("typed_per_filter_config") or {}
            metadata = ((route.get("metadata") or {}).get("filter_metadata") or {}).get("xdsgen")
            routes.append(
                (
                    [_parsed_per_filter(name, config) for name, config in per_filter.items()],
                    [metadata["users_sha256"]] if metadata else [],
                    _parsed_rules(route),
                )
            )
    headers = [(h["header"]["key"], h["header"]["value"]) for h in rc["request_headers_to_add"]]
    if rc.get("ignore_port_in_host_matching") is not True:
        headers.append(("host matching", "with the port"))
    return (headers, routes)
