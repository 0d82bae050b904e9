"""Listeners and filter chains -> semantics: which socket, which chain for which server
name, whether it terminates TLS and with which certificate, and what runs behind it."""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Optional

from xdsgen.importer.carrying import carry, filter_list
from xdsgen.importer.inputs import Context, Item
from xdsgen.importer.read_access import cidrs, read_network_rbac, read_udp_matcher
from xdsgen.importer.read_http import read_access_log, read_hcm
from xdsgen.importer.semantics import Certificate, Chain, Listener
from xdsgen.importer.shapes import (
    as_list,
    as_map,
    enum,
    extension,
    flag,
    integer,
    label,
    maps,
    port,
    text,
    texts,
)
from xdsgen.importer.topics import (
    CHAIN_READ,
    COMMON_QUIET,
    LISTENER_FILTER_TOPICS,
    LISTENER_FILTERS_QUIET,
    LISTENER_QUIET,
    LISTENER_TOPICS,
    MATCH_READ,
    NETWORK_FILTERS,
    TLS_QUIET,
    TLS_TOPICS,
)

LISTENER_NOT_CARRIED = {"additional_addresses", "api_listener", "internal_listener"}


def read_listeners(ctx: Context) -> list[Listener]:
    listeners = []
    for item in ctx.inputs.listeners:
        listener = _listener(ctx, item)
        if listener is not None:
            listeners.append(listener)
    return listeners


def _listener(ctx: Context, item: Item) -> Optional[Listener]:
    data = item.data
    address = as_map(data.get("address"))
    sock = as_map(address.get("socket_address"))
    host, number = text(sock.get("address")), port(sock.get("port_value"))
    name = text(data.get("name")) or ""
    where = f"{item.source}: " + (f"listener {name!r}" if name else f"listener on {host}:{number}")
    if not sock:
        kind = "a Unix socket" if "pipe" in address else "an address xdsgen cannot read"
        ctx.report.differ("ports", where, f"listens on {kind}: not in the draft", address, None)
        return None
    try:
        ip = ipaddress.ip_address((host or "").strip())
    except ValueError:
        ctx.report.differ(
            "ports", where, f"address {host!r} is not an IP address: not in the draft"
        )
        return None
    if not number:
        ctx.report.differ("ports", where, "no port_value: not in the draft", address)
        return None
    families: tuple[str, ...] = ("ipv4",) if ip.version == 4 else ("ipv6",)
    if ip.version == 6 and flag(sock.get("ipv4_compat")):
        if ip.is_unspecified:
            families = ("ipv6", "ipv4")  # dual stack: IPv4 clients too
        else:
            ctx.report.differ(
                "ports", where, f"ipv4_compat on {ip}: the draft serves IPv6 clients only", sock
            )
    protocol = "udp" if enum(sock.get("protocol"), "TCP") in ("UDP", "1") else "tcp"
    if "udp_listener_config" in data:
        protocol = "udp"
    listener = Listener(name, families, str(ip), number, protocol, where=where, raw=data)
    if data.get("bind_to_port") is False:
        ctx.report.differ(
            "ports", where, "bind_to_port false: the draft binds the port", None, listener
        )
    for key in sorted(set(data) - LISTENER_QUIET):
        topic = LISTENER_TOPICS.get(key, "other")
        if key in ("api_listener", "internal_listener"):
            listener.opaque = True
            topic = "ports"
        # Other addresses, or no socket at all, are not a setting of the draft's listener.
        merge = None if key in LISTENER_NOT_CARRIED else {key: data[key]}
        message = f"{key} is not carried over"
        fragment = {key: data[key]}
        carry(ctx, listener, topic, where, message, "listener", key, merge, fragment, data)
    if "access_log" in data:
        ctx.report.note(where, "listener access_log is not carried over")
    udp_filters = _listener_filters(ctx, listener, data)
    if protocol == "udp":
        listener.udp_cluster = _udp_cluster(ctx, listener, udp_filters)
        return listener
    for index, chain_data in enumerate(as_list(data.get("filter_chains"))):
        chain = _chain(ctx, listener, chain_data, f"{where} filter_chains[{index}]", item.source)
        if chain is not None:
            listener.chains.append(chain)
    _source_groups(ctx, listener)
    if "default_filter_chain" in data:
        listener.default_chain = _chain(
            ctx,
            listener,
            data["default_filter_chain"],
            f"{where} default_filter_chain",
            item.source,
        )
    return listener


def _listener_filters(ctx: Context, listener: Listener, data: dict[str, Any]) -> list[Any]:
    udp = []
    for index, entry in enumerate(as_list(data.get("listener_filters"))):
        kind, config, v2 = extension(entry)
        ctx.v2 = ctx.v2 or v2
        if kind == "UdpProxyConfig":
            udp.append(config)
        elif kind == "TlsInspector":
            listener.inspector = True
        elif kind not in LISTENER_FILTERS_QUIET:
            # The whole list in its order (a patch replaces a list): only on TCP, where
            # no filter names a cluster of the original.
            tcp = listener.protocol == "tcp"
            whole = filter_list(as_list(data.get("listener_filters"))) if tcp else None
            carry(
                ctx,
                listener,
                LISTENER_FILTER_TOPICS.get(kind, "access"),
                listener.where,
                f"listener filter {label(entry)} (listener_filters[{index}]) is not carried over",
                "listener",
                "listener_filters",
                None if whole is None else {"listener_filters": whole},
                entry,
                data,
            )
    return udp


def _udp_cluster(ctx: Context, listener: Listener, configs: list[Any]) -> Optional[str]:
    if not configs:
        listener.opaque = True
        quic = "quic_options" in as_map(as_map(listener.raw).get("udp_listener_config"))
        ctx.report.differ(
            "ports",
            listener.where,
            "an HTTP/3 (QUIC) listener: not in the draft (listen.FAMILY.http3: true serves "
            "the https vhosts over QUIC)"
            if quic
            else "a UDP listener without udp_proxy: not in the draft",
        )
        return None
    config = as_map(configs[0])
    cluster = text(config.get("cluster"))
    matcher = as_map(config.get("matcher"))
    if cluster is None and not matcher.get("matcher_tree") and not matcher.get("matcher_list"):
        action = as_map(as_map(matcher.get("on_no_match")).get("action"))
        cluster = text(as_map(action.get("typed_config")).get("cluster"))
    elif cluster is None and read_udp_matcher(matcher) is not None:
        cluster, listener.udp_sources = read_udp_matcher(matcher) or (None, None)
    if cluster is None:
        listener.opaque = True
        ctx.report.differ(
            "ports", listener.where, "a UDP proxy with a matcher tree: not in the draft", config
        )
        return None
    for key in sorted(set(config) - {"@type", "stat_prefix", "cluster", "matcher"}):
        topic = "timeouts" if key == "idle_timeout" else "other"
        ctx.report.differ(
            topic, listener.where, f"udp_proxy {key} is not carried over", None, listener
        )
    return cluster


def _chain(ctx: Context, listener: Listener, data: Any, where: str, source: str) -> Optional[Chain]:
    if not isinstance(data, dict):
        return None
    name = text(data.get("name")) or ""
    if name:
        where = f"{where} ({name!r})"
    match = as_map(data.get("filter_chain_match"))
    server_names = tuple(
        dict.fromkeys(
            s.lower() for s in texts(match.get("server_names")) + texts(match.get("sni_domains"))
        )
    )
    transport = (text(match.get("transport_protocol")) or "").lower() or None
    chain = Chain(server_names, transport, False, None, "opaque", name=name, where=where)
    chain.listener = listener
    read = MATCH_READ
    if "source_prefix_ranges" in match and cidrs(match["source_prefix_ranges"]) is not None:
        chain.sources = cidrs(match["source_prefix_ranges"])  # allow (read_access)
        read = MATCH_READ | {"source_prefix_ranges"}
    for key in sorted(set(match) - read):
        ctx.report.differ(
            "access",
            where,
            f"filter_chain_match.{key} is not carried over: the draft serves this chain to "
            "every client",
            {key: match[key]},
            listener,
        )
    for key in sorted(set(data) - CHAIN_READ):
        topic = "access" if key == "use_proxy_proto" else "other"
        ctx.report.differ(
            topic, where, f"filter chain {key} is not carried over", {key: data[key]}, listener
        )
    _transport_socket(ctx, chain, data, source)
    filters = maps(data.get("filters"))
    if not filters:
        ctx.report.differ(
            "ports", where, "a filter chain without filters: not in the draft", data, listener
        )
        return chain
    before_tcp_proxy = extension(filters[-1])[0] == "TcpProxy"
    for index, entry in enumerate(filters[:-1]):
        kind, _, v2 = extension(entry)
        ctx.v2 = ctx.v2 or v2
        if before_tcp_proxy and read_network_rbac(ctx, entry, chain):
            continue
        ctx.report.differ(
            NETWORK_FILTERS.get(kind, "access"),
            where,
            f"network filter {label(entry)} (filters[{index}]) is not carried over",
            entry,
            listener,
        )
    kind, config, v2 = extension(filters[-1])
    ctx.v2 = ctx.v2 or v2
    if kind == "HttpConnectionManager":
        chain.kind = "http"
        chain.hcm = read_hcm(ctx, config, where, source, chain.tls)
        chain.hcm.chain = chain
    elif kind == "TcpProxy":
        chain.cluster = _tcp_cluster(ctx, config, where, listener)
        chain.kind = "tcp" if chain.cluster is not None else "opaque"
    else:
        ctx.report.differ(
            "ports",
            where,
            f"network filter {label(filters[-1])} cannot be said in an inventory",
            filters[-1],
        )
    return chain


def _tcp_cluster(
    ctx: Context, config: dict[str, Any], where: str, listener: Listener
) -> Optional[str]:
    cluster = text(config.get("cluster"))
    if cluster is None:
        weighted = maps(as_map(config.get("weighted_clusters")).get("clusters"))
        ranked = sorted(
            ((integer(c.get("weight")) or 0, text(c.get("name")) or "") for c in weighted),
            key=lambda pair: -pair[0],
        )
        if ranked and ranked[0][1]:
            cluster = ranked[0][1]
            ctx.report.differ(
                "routing",
                where,
                f"connections are split over {len(ranked)} clusters; the draft sends all to "
                f"{cluster}",
                config,
                listener,
            )
        else:
            ctx.report.differ(
                "ports", where, "tcp_proxy without a cluster: not in the draft", config
            )
            return None
    read_access_log(ctx, config, where)
    for key in sorted(
        set(config) - {"@type", "stat_prefix", "cluster", "weighted_clusters", "access_log"}
    ):
        topic = {"idle_timeout": "timeouts", "max_connect_attempts": "tuning"}.get(key, "other")
        if key == "tunneling_config":
            topic = "ports"
        ctx.report.differ(
            topic, where, f"tcp_proxy {key} is not carried over", {key: config[key]}, listener
        )
    return cluster


def _transport_socket(ctx: Context, chain: Chain, data: dict[str, Any], source: str) -> None:
    context: Optional[dict[str, Any]] = None
    if "transport_socket" in data:
        kind, config, v2 = extension(data["transport_socket"])
        ctx.v2 = ctx.v2 or v2
        if kind == "TlsContext":
            context = config
        elif kind != "RawBuffer":
            chain.tls = True  # whatever it is, it is not plain text the draft could serve
            ctx.report.differ(
                "tls",
                chain.where,
                f"transport socket {kind} cannot be said in an inventory",
                data["transport_socket"],
                chain.listener,
            )
            return
    elif isinstance(data.get("tls_context"), dict):  # v2
        ctx.v2 = True
        context = data["tls_context"]
    if context is None:
        return
    chain.tls = True
    chain.certificate = _certificate(ctx, chain, context, source)


def _certificate(
    ctx: Context, chain: Chain, context: dict[str, Any], source: str
) -> Optional[Certificate]:
    where = chain.where
    common = as_map(context.get("common_tls_context"))
    for key in sorted(set(context) - TLS_QUIET):
        if key == "require_client_certificate" and context[key] is not True:
            continue
        topic = TLS_TOPICS.get(key, "tls")
        ctx.report.differ(
            topic, where, f"TLS {key} is not carried over", {key: context[key]}, chain.listener
        )
    for key in sorted(set(common) - COMMON_QUIET):
        topic = "access" if key.startswith("validation_context") else "tls"
        what = "client certificate checks" if topic == "access" else f"TLS {key}"
        ctx.report.differ(
            topic, where, f"{what} are not carried over", {key: common[key]}, chain.listener
        )
    found: list[Certificate] = []
    for entry in maps(common.get("tls_certificates")):
        certificate = _files(entry, "")
        if certificate is None:
            ctx.report.differ(
                "certificate",
                where,
                "an inline certificate (not files) cannot be said in an inventory: write it to "
                "files and name them",
                None,
                chain.listener,
            )
            return None
        found.append(certificate)
    for entry in maps(common.get("tls_certificate_sds_secret_configs")):
        certificate = _sds(ctx, entry, where, source)
        if certificate is None:
            return None
        found.append(certificate)
    if not found:
        ctx.report.differ(
            "certificate",
            where,
            "TLS without a certificate xdsgen can read",
            context,
            chain.listener,
        )
        return None
    if len(found) > 1:
        ctx.report.differ(
            "certificate",
            where,
            f"{len(found)} certificates (e.g. RSA and ECDSA); the draft serves only the first",
            None,
            chain.listener,
        )
    return found[0]


def _files(data: dict[str, Any], name: str) -> Optional[Certificate]:
    cert = text(as_map(data.get("certificate_chain")).get("filename"))
    key = text(as_map(data.get("private_key")).get("filename"))
    if not cert or not key:
        return None
    return Certificate(cert, key, name or os.path.basename(os.path.dirname(cert)) or "cert")


def _sds(ctx: Context, entry: dict[str, Any], where: str, source: str) -> Optional[Certificate]:
    name = text(entry.get("name"))
    candidates = list(ctx.inputs.secrets)
    why = ""
    if "sds_config" in entry:
        found, why = ctx.follow(entry["sds_config"], "SDS", source)
        candidates = (found or []) + candidates
    for item in candidates:
        if name in (None, text(item.data.get("name"))):
            certificate = _files(as_map(item.data.get("tls_certificate")), name or "")
            if certificate is not None:
                return certificate
            why = f"secret {name!r} has no certificate files"
    ctx.report.differ(
        "certificate",
        where,
        f"{why or f'secret {name!r} not found'}: this chain's certificate is not in the draft",
        entry,
    )
    return None


def _source_groups(ctx: Context, listener: Listener) -> None:
    """Chains told apart only by the client's address: an inventory has one per name."""
    groups: dict[tuple[Any, ...], list[Chain]] = {}
    for chain in listener.chains:
        groups.setdefault((chain.server_names, chain.transport), []).append(chain)
    for chains in groups.values():
        if len(chains) > 1 and any(c.sources is not None for c in chains):
            for chain in chains[1:]:
                ctx.report.differ(
                    "access",
                    chain.where,
                    "a second filter chain for the same server names, chosen by the client's "
                    "address: the draft serves only the first",
                    None,
                    listener,
                )
