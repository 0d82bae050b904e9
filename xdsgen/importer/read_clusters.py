"""Clusters -> what an upstream can say: endpoints (from the cluster, v2 hosts, or a
file-based EDS), connect timeout, TLS to the upstream. Everything else is a difference."""

from __future__ import annotations

import ipaddress
from typing import Any, Optional

from xdsgen.importer import read_resilience
from xdsgen.importer.carrying import carry
from xdsgen.importer.inputs import Context, Item
from xdsgen.importer.read_access import read_proxy_protocol
from xdsgen.importer.semantics import DEFAULT_CONNECT_TIMEOUT, Cluster, UpstreamTls
from xdsgen.importer.shapes import (
    as_list,
    as_map,
    duration_ns,
    enum,
    extension,
    integer,
    maps,
    port,
    text,
    texts,
)
from xdsgen.importer.topics import CLUSTER_READ, CLUSTER_TOPICS

LB_CONFIGS = {
    "ring_hash_lb_config",
    "maglev_lb_config",
    "least_request_lb_config",
    "round_robin_lb_config",
}
NOT_CARRIED = {"lb_subset_config", "transport_socket_matches"}
ENDPOINTS = "load_assignment.endpoints"


def read_clusters(ctx: Context) -> dict[str, Cluster]:
    clusters: dict[str, Cluster] = {}
    for item in ctx.inputs.clusters:
        cluster = _cluster(ctx, item)
        if cluster is not None and cluster.name not in clusters:
            clusters[cluster.name] = cluster
    return clusters


def _cluster(ctx: Context, item: Item) -> Optional[Cluster]:
    data = item.data
    name = text(data.get("name"))
    if not name:
        ctx.report.note(item.source, "a cluster without a name (Envoy refuses it); skipped")
        return None
    where = f"{item.source}: cluster {name!r}"
    cluster = Cluster(name, (), where=where, raw=data)
    kind = enum(data.get("type"), "STATIC")
    if "cluster_type" in data:
        return _unusable(cluster, "a custom cluster type (cluster_type): no fixed endpoints")
    if kind in ("ORIGINAL_DST", "4"):
        return _unusable(cluster, "ORIGINAL_DST has no endpoints of its own")
    if kind in ("EDS", "3"):
        found, why = _eds(ctx, item, name, where)
        if found is None:
            return _unusable(cluster, why)
        assignment = found
    else:
        assignment = as_map(data.get("load_assignment"))
    endpoints = _endpoints(ctx, cluster, assignment, as_list(data.get("hosts")))
    cluster.endpoints = tuple(dict.fromkeys(endpoints))
    if not cluster.endpoints and not cluster.problem:
        cluster.problem = "no endpoints"
    cluster.connect_timeout = duration_ns(data.get("connect_timeout")) or DEFAULT_CONNECT_TIMEOUT
    dns = any(not _is_ip(e.rsplit(":", 1)[0].strip("[]")) for e in cluster.endpoints)
    if kind in ("LOGICAL_DNS", "2") and dns:
        ctx.report.note(
            where, "LOGICAL_DNS: the draft resolves the name STRICT_DNS (every address)"
        )
    family = enum(data.get("dns_lookup_family"), "AUTO")
    if dns and family in ("V6_ONLY", "ALL", "2", "5"):
        # AUTO and V4_ONLY reach the same host as V4_PREFERRED whenever the name resolves.
        ctx.report.note(where, f"dns_lookup_family {family}: the draft resolves V4_PREFERRED")
    policy = enum(data.get("lb_policy"), "ROUND_ROBIN")
    if policy not in ("ROUND_ROBIN", "0") and len(cluster.endpoints) > 1:
        # The policy with its own settings (ring_hash_lb_config, ...), which the draft's
        # round robin ignores.
        merge = {k: v for k, v in data.items() if k == "lb_policy" or k in LB_CONFIGS}
        carry(
            ctx,
            cluster,
            "routing",
            where,
            f"lb_policy {policy}: the draft balances round robin",
            "cluster",
            "lb_policy",
            merge,
            {"lb_policy": data.get("lb_policy")},
            data,
        )
    cluster.tls = _upstream_tls(ctx, cluster, data)
    read = read_resilience.read_cluster(ctx, cluster, data)
    for key in sorted(set(data) - CLUSTER_READ - read):
        topic, message = CLUSTER_TOPICS.get(key, ("other", f"{key} is not carried over"))
        if key == "typed_extension_protocol_options":
            topic, message = _protocol_options(data[key])
        value = read_resilience.unread_part(key, data[key])
        # Subsets and per-endpoint sockets match endpoint metadata the draft's endpoints
        # do not have: carried alone they would match nothing.
        offer = None if key in NOT_CARRIED else {key: value}
        fragment = {key: value}
        carry(ctx, cluster, topic, where, message, "cluster", key, offer, fragment, data)
    return cluster


def _unusable(cluster: Cluster, problem: str) -> Cluster:
    cluster.problem = problem
    return cluster


def _protocol_options(options: Any) -> tuple[str, str]:
    for config in as_map(options).values():
        explicit = as_map(as_map(config).get("explicit_http_config"))
        if "http2_protocol_options" in explicit or "auto_config" in as_map(config):
            return "upstream", "it speaks HTTP/2 to the upstream; the draft HTTP/1.1"
    return "tuning", "upstream HTTP options are not carried over"


def _eds(ctx: Context, item: Item, name: str, where: str) -> tuple[Optional[dict[str, Any]], str]:
    """The ClusterLoadAssignment of an EDS cluster: from a file given or the file its
    eds_config names."""
    config = as_map(item.data.get("eds_cluster_config"))
    service = text(config.get("service_name")) or name
    candidates = list(ctx.inputs.assignments)
    why = ""
    if "eds_config" in config:
        found, why = ctx.follow(config["eds_config"], "EDS", item.source)
        candidates = (found or []) + candidates
    for candidate in candidates:
        if text(candidate.data.get("cluster_name")) == service:
            ctx.report.note(where, f"EDS endpoints read from {candidate.source} (a fixed list now)")
            return candidate.data, ""
    return None, "EDS: " + (why or f"no load assignment for {service!r}")


def _assignment_settings(ctx: Context, cluster: Cluster, assignment: dict[str, Any]) -> None:
    """A load assignment's settings beside its endpoints: the overprovisioning factor is
    read (xdsgen sets it with a backup), the rest carried as it is."""
    policy = as_map(assignment.get("policy"))
    cluster.overprovisioning = integer(policy.get("overprovisioning_factor"))
    for key in sorted(set(assignment) - {"@type", "cluster_name", "endpoints"}):
        value = assignment[key]
        if key == "policy":
            value = {k: v for k, v in policy.items() if k != "overprovisioning_factor"}
            if not value:
                continue
        carry(
            ctx,
            cluster,
            "routing",
            cluster.where,
            f"load_assignment.{key} (e.g. dropped requests) is not carried over",
            "cluster",
            f"load_assignment.{key}",
            {"load_assignment": {key: value}},
            {key: value},
            cluster.raw,
        )


def _endpoints(
    ctx: Context, cluster: Cluster, assignment: dict[str, Any], hosts: list[Any]
) -> list[str]:
    where = cluster.where
    out = []
    weights = set()
    groups = maps(assignment.get("endpoints"))
    # Weights, priorities and health settings live in the endpoint list: carried over as
    # the whole list, which a patch replaces (the draft's has the same addresses).
    listed = as_list(assignment.get("endpoints"))
    whole = None if hosts else {"load_assignment": {"endpoints": listed}}

    def endpoints_differ(topic: str, message: str, fragment: Any = None) -> None:
        kind, raw = "cluster", cluster.raw
        carry(ctx, cluster, topic, where, message, kind, ENDPOINTS, whole, fragment, raw)

    _assignment_settings(ctx, cluster, assignment)
    for group in groups:
        priority = integer(group.get("priority")) or 0
        if priority == 1:
            found = [
                _address(as_map(as_map(lb.get("endpoint")).get("address")))
                for lb in maps(group.get("lb_endpoints"))
            ]
            read_resilience.priority_group(1, cluster, [e for e in found if e is not None])
            continue
        if priority > 0:
            endpoints_differ(
                "routing",
                f"endpoints of priority {priority} only take over when the others fail; the draft "
                "balances over all endpoints",
            )
        for lb in maps(group.get("lb_endpoints")):
            status = enum(lb.get("health_status"), "UNKNOWN")
            weight = integer(lb.get("load_balancing_weight"))
            weights.add(weight or 1)
            address = as_map(as_map(lb.get("endpoint")).get("address"))
            endpoint = _address(address)
            if endpoint is None:
                ctx.report.note(where, "an endpoint that is not address + port_value; skipped")
                cluster.problem = cluster.problem or "an endpoint without address + port_value"
                continue
            if status not in ("UNKNOWN", "HEALTHY", "0", "1"):
                endpoints_differ(
                    "routing",
                    f"endpoint {endpoint} is {status}: the original sends it nothing; the draft "
                    "balances over it",
                )
            out.append(endpoint)
            if text(as_map(lb.get("endpoint")).get("hostname")):
                endpoints_differ(
                    "upstream",
                    "endpoint hostnames (for auto_host_rewrite, health checks, hashing) are not "
                    "carried over",
                )
            if "health_check_config" in as_map(lb.get("endpoint")):
                endpoints_differ(
                    "health-checks", "endpoint health check settings are not carried over", lb
                )
    for host in hosts:  # v2
        ctx.v2 = True
        endpoint = _address(as_map(host))
        if endpoint is not None:
            out.append(endpoint)
    if len(weights) > 1:
        endpoints_differ(
            "routing", "endpoint weights are not carried over: the draft balances evenly"
        )
    if len({integer(g.get("load_balancing_weight")) for g in groups}) > 1:
        # True unless a patch carries the endpoint list (and the weights with it).
        unless = (
            (cluster, ("cluster", ENDPOINTS)) if ("cluster", ENDPOINTS) in cluster.extras else None
        )
        ctx.report.note(where, "locality weights are not carried over", unless)
    return out


def _address(address: dict[str, Any]) -> Optional[str]:
    sock = as_map(address.get("socket_address"))
    host, number = text(sock.get("address")), port(sock.get("port_value"))
    if not host or not number:
        return None
    host = host.strip().lower()
    return f"[{host}]:{number}" if ":" in host else f"{host}:{number}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _upstream_tls(ctx: Context, cluster: Cluster, data: dict[str, Any]) -> Optional[UpstreamTls]:
    where = cluster.where
    context: Optional[dict[str, Any]] = None
    if "transport_socket" in data:
        kind, config, v2 = extension(data["transport_socket"])
        ctx.v2 = ctx.v2 or v2
        if kind == "TlsContext":
            context = config
        elif kind == "ProxyProtocolUpstreamTransport" and read_proxy_protocol(config):
            cluster.proxy_protocol = read_proxy_protocol(config)  # issue 14
        elif kind != "RawBuffer":
            ctx.report.differ(
                "upstream",
                where,
                f"transport socket {kind} is not carried over: the draft connects in plain TCP",
                fragment=data["transport_socket"],
                anchor=cluster,
            )
    elif isinstance(data.get("tls_context"), dict):  # v2
        ctx.v2 = True
        context = data["tls_context"]
    if context is None:
        return None
    common = as_map(context.get("common_tls_context"))
    validation = as_map(common.get("validation_context"))
    ca = text(as_map(validation.get("trusted_ca")).get("filename"))
    names = [
        text(as_map(m).get("exact")) for m in as_list(validation.get("match_subject_alt_names"))
    ]
    for typed in maps(validation.get("match_typed_subject_alt_names")):
        names.append(text(as_map(typed.get("matcher")).get("exact")))
    names += texts(validation.get("verify_subject_alt_name"))  # v2
    if None in names:
        ctx.report.differ(
            "upstream",
            where,
            "non-exact certificate name matchers are dropped",
            validation,
            cluster,
        )
    # Carried into the draft's own TLS socket (a merge into its typed_config); v2's
    # tls_context holds the same UpstreamTlsContext fields.

    def socket_field(topic: str, message: str, key: str, merge: dict[str, Any]) -> None:
        offer = {"transport_socket": {"typed_config": merge}}
        name = f"transport_socket.{key}"
        carry(ctx, cluster, topic, where, message, "cluster", name, offer, merge, data)

    for key in sorted(set(common) - {"validation_context", "alpn_protocols"}):
        socket_field(
            "upstream",
            f"upstream TLS common_tls_context.{key} is not carried over",
            f"common_tls_context.{key}",
            {"common_tls_context": {key: common[key]}},
        )
    if "h2" in texts(common.get("alpn_protocols")):
        socket_field(
            "upstream",
            "it offers HTTP/2 (ALPN h2); the draft HTTP/1.1",
            "common_tls_context.alpn_protocols",
            {"common_tls_context": {"alpn_protocols": common["alpn_protocols"]}},
        )
    if validation and not ca:
        ctx.report.differ(
            "upstream",
            where,
            "the upstream certificate is validated without a CA file; the draft does not verify it",
            anchor=cluster,
        )
    for key in sorted(set(context) - {"@type", "sni", "common_tls_context"}):
        socket_field(
            "upstream", f"upstream TLS {key} is not carried over", key, {key: context[key]}
        )
    return UpstreamTls(
        sni=(text(context.get("sni")) or "").lower() or None,
        ca=ca,
        names=tuple(sorted(n.lower() for n in names if n)),
    )
