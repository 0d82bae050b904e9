"""What verify compares, file by file: the facts of the model and the same facts read
from the parsed file (render.verify_file compares them). The facts of the edge features
are in verify_features.py, who may reach what in access_facts.py."""

from __future__ import annotations

from typing import Any, Callable

from xdsgen import verify_features as features
from xdsgen.conventions import CDS_FILE, LDS_FILE
from xdsgen.errors import RenderError
from xdsgen.model import Model


def cluster_facts(model: Model) -> list[tuple[Any, ...]]:
    return [
        (
            c.name,
            c.discovery,
            c.connect_timeout,
            tuple((e.host, e.port) for e in c.endpoints),
            c.tls.sni if c.tls else None,
            c.tls.ca if c.tls else None,
            *features.cluster(c),
        )
        for c in model.clusters
    ]


def parsed_cluster_facts(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    facts = []
    for c in doc["resources"]:
        tls = (c.get("transport_socket") or {}).get("typed_config", {})
        ca = tls.get("common_tls_context", {}).get("validation_context", {}).get("trusted_ca", {})
        endpoints = tuple(
            (
                e["endpoint"]["address"]["socket_address"]["address"],
                e["endpoint"]["address"]["socket_address"]["port_value"],
            )
            for group in c["load_assignment"]["endpoints"]
            if group.get("priority", 0) == 0
            for e in group["lb_endpoints"]
        )
        facts.append(
            (
                c["name"],
                c["type"],
                c["connect_timeout"],
                endpoints,
                tls.get("sni"),
                ca.get("filename"),
                *features.parsed_cluster(c),
            )
        )
    return facts


def listener_facts(model: Model) -> list[tuple[Any, ...]]:
    facts = []
    for listener in model.listeners:
        chains = tuple(
            [(p.server_names, "tcp", p.cluster) for p in listener.passthrough]
            + [(h.server_names, "http", h.secret) for h in listener.http_chains]
        )
        facts.append(
            (
                listener.name,
                listener.protocol,
                listener.address,
                listener.port,
                listener.cluster,
                listener.route_config,
                chains,
                tuple(features.chain(c, c.http) for c in listener.filter_chains),
            )
        )
    return facts


def parsed_listener_facts(doc: dict[str, Any], model: Model) -> list[tuple[Any, ...]]:
    facts = []
    for listener in doc["resources"]:
        sock = listener["address"]["socket_address"]
        cluster = route_config = None
        chains = []
        extras = []
        for lf in listener.get("listener_filters", []):
            if lf["name"] == "envoy.filters.udp_listener.udp_proxy":
                matcher = lf["typed_config"]["matcher"]
                if "on_no_match" in matcher:
                    action = matcher["on_no_match"]["action"]
                else:  # allow (issue 14): the route of the allowed sources
                    action = matcher["matcher_list"]["matchers"][0]["on_match"]["action"]
                cluster = action["typed_config"]["cluster"]
        for chain in listener.get("filter_chains", []):
            names = tuple((chain.get("filter_chain_match") or {}).get("server_names", ()))
            config = chain["filters"][0]["typed_config"]
            extras.append(features.parsed_chain(chain, config))
            log = config.get("access_log")
            if (log[0]["typed_config"]["path"] if log else None) != model.envoy.access_log:
                raise RenderError(f"listener {listener['name']}: access log differs from the model")
            if "rds" in config:
                route_config = config["rds"]["route_config_name"]
                if config["rds"]["config_source"]["path_config_source"]["path"] != model.route_path(
                    route_config
                ):
                    raise RenderError(
                        f"listener {listener['name']}: RDS path differs from the model"
                    )
                chains.append((names, "http", features.chain_secret(chain)))
            else:
                if not names:
                    cluster = config["cluster"]
                    continue
                chains.append((names, "tcp", config["cluster"]))
        facts.append(
            (
                listener["name"],
                sock["protocol"],
                sock["address"],
                sock["port_value"],
                cluster,
                route_config,
                tuple(chains),
                tuple(extras),
            )
        )
    return facts


def route_facts(model: Model, name: str) -> Any:
    rc = next(r for r in model.route_configs if r.file_name == name)
    return (
        rc.name,
        [
            (
                vh.name,
                vh.domains,
                [
                    (
                        r.match,
                        r.value,
                        r.cluster,
                        r.prefix_rewrite,
                        r.timeout,
                        r.websocket,
                        r.https_redirect,
                        r.redirect_port,
                        *features.route(r),
                    )
                    for r in vh.routes
                ],
                *features.vhost(vh),
            )
            for vh in rc.virtual_hosts
        ],
        *features.route_config(rc.response_headers, rc.max_direct_response_body),
    )


def parsed_route_facts(doc: dict[str, Any]) -> Any:
    (rc,) = doc["resources"]
    vhosts = []
    for vh in rc["virtual_hosts"]:
        routes = []
        for r in vh["routes"]:
            ((kind, value),) = r["match"].items()
            action = r.get("route", {})
            redirect = r.get("redirect", {})
            routes.append(
                (
                    kind,
                    value,
                    action.get("cluster"),
                    action.get("prefix_rewrite"),
                    action.get("timeout"),
                    bool(action.get("upgrade_configs")),
                    bool(redirect.get("https_redirect")),
                    redirect.get("port_redirect"),
                    *features.parsed_route(r),
                )
            )
        vhosts.append((vh["name"], tuple(vh["domains"]), routes, *features.parsed_vhost(vh)))
    return (rc["name"], vhosts, *features.parsed_route_config(rc))


Check = tuple[Callable[[Any], Any], Any]  # (what a parsed file says, what the model says)


def file_checks(model: Model, name: str) -> list[Check]:
    """What verify compares for one file; the access facts (issue 14) are in
    xdsgen/access_facts.py."""
    from xdsgen import access_facts as facts

    if name == CDS_FILE:
        return [
            (parsed_cluster_facts, cluster_facts(model)),
            (facts.parsed_clusters, facts.expected_clusters(model)),
        ]
    if name == LDS_FILE:
        return [
            (lambda d: parsed_listener_facts(d, model), listener_facts(model)),
            (facts.parsed_listeners, facts.expected_listeners(model)),
            (_watched_wrong(model), []),
        ]
    if any(rc.file_name == name for rc in model.route_configs):
        return [
            (parsed_route_facts, route_facts(model, name)),
            (facts.parsed_routes, facts.expected_routes(model, name)),
        ]
    secrets = [(s.name, s.cert, s.key) for s in model.secrets if s.file_name == name]
    if not secrets:
        raise RenderError(f"{name}: the model makes no such file")
    return [(parsed_secret_facts, secrets)]


def _watched_wrong(model: Model) -> Callable[[Any], Any]:
    """Every path_config_source of the listeners watches the directory the model says
    (envoy.layout directory, export k8s) or none: one missing would miss every swap."""
    wanted = model.envoy.watched_directory

    def wrong(doc: Any) -> list[Any]:
        found: list[Any] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                source = node.get("path_config_source")
                if isinstance(source, dict):
                    watched = (source.get("watched_directory") or {}).get("path")
                    if watched != wanted:
                        found.append((source.get("path"), watched))
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(doc)
        return found

    return wrong


def parsed_secret_facts(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r["name"],
            r["tls_certificate"]["certificate_chain"]["filename"],
            r["tls_certificate"]["private_key"]["filename"],
        )
        for r in doc["resources"]
    ]
