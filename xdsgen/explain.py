"""`xdsgen explain`: which listener, filter chain, vhost, route and upstream a request takes.

It answers from the model with Envoy's own matching rules, so the answer is what Envoy
does with the files xdsgen renders (tests send the same requests through a real Envoy):

- filter chain (https): the SNI's exact name first, then wildcards from the longest
  suffix (*.b.example.com before *.example.com); no match closes the connection;
- virtual host: exact domain, then suffix wildcards (longest first; "*.example.com"
  matches any non-empty text before ".example.com"), then prefix wildcards ("foo.*"),
  then "*"; the Host header is lower-cased and its port ignored
  (ignore_port_in_host_matching); no match answers 404;
- routes in order, first match wins; the path is normalized first (normalize_path,
  merge_slashes) and the query string takes no part; no match answers 404;
- access (issue 14): the route's (or port map's, passthrough's) allow list decides with
  `--from ADDRESS` whether a client there gets through (403, closed, dropped), and the
  route's authenticator is named.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import asdict, dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from xdsgen import timeouts
from xdsgen.errors import UsageProblem as ExplainUsage
from xdsgen.model import Cluster, Listener, Model, RouteConfig, VirtualHost


@dataclass(frozen=True)
class Target:
    host: str
    path: str  # as sent, with the query string
    scheme: Optional[str]  # http, https or None (both)
    port: Optional[int]

    @property
    def display(self) -> str:
        return (
            (f"{self.scheme}://" if self.scheme else "")
            + self.host
            + (f":{self.port}" if self.port else "")
            + self.path
        )


@dataclass
class Hop:
    """One listener's answer for the target."""

    family: str
    listener: str
    kind: str
    port: int
    outcome: str  # upstream, redirect, passthrough, not_found, closed
    chain: Optional[str] = None
    sni_match: Optional[str] = None  # 'exact "a.example.com"' / 'wildcard "*.example.com"'
    vhost: Optional[str] = None
    vhost_match: Optional[str] = None  # 'exact "a"', 'suffix "*.a"', 'prefix "a.*"', 'any "*"'
    route: Optional[str] = None  # 'routes[1] prefix "/grafana/"'
    route_index: Optional[int] = None
    upstream: Optional[str] = None
    endpoints: tuple[str, ...] = ()
    path_sent: Optional[str] = None  # after prefix_rewrite
    location: Optional[str] = None  # redirect target
    websocket: bool = False
    timeout: Optional[str] = None
    rewritten: bool = False
    patches: tuple[str, ...] = ()  # "cluster grafana", ...: the user's Envoy config on the way
    # The edge features on the way (issue 15): every timeout met, how failures are met.
    timeouts: Optional[str] = None
    retries: int = 0
    backup: tuple[str, ...] = ()
    health_check: Optional[str] = None
    error_page: Optional[str] = None  # the file whose page Envoy's own 502-504 answers get
    compressed: bool = False
    direct_status: Optional[int] = None  # maintenance
    allow: Optional[str] = None  # who may: the networks or CIDRs (None: everyone)
    allowed: Optional[bool] = None  # with --from: whether that address gets through
    auth: Optional[str] = None  # the authenticator asked first
    source: Optional[str] = None  # --from
    proxy_protocol: Optional[str] = None  # v1/v2: the client's address is sent first

    @property
    def result(self) -> str:
        if self.allowed is False:
            refused = {
                "udp": "datagrams are dropped",
                "tcp": "the connection is closed",
            }.get(
                self.kind if self.outcome != "passthrough" else "tcp", "403 (RBAC: access denied)"
            )
            return f"refused: {self.source} is not allowed here: {refused}"
        return self.routing_result

    @property
    def routing_result(self) -> str:
        proxy = (
            f", after a PROXY protocol {self.proxy_protocol} header with the client's address"
            if self.proxy_protocol
            else ""
        )
        if self.outcome == "upstream" and self.kind == "tcp":
            return (
                f"TCP port map: the connection goes to upstream {self.upstream} "
                f"({', '.join(self.endpoints)}) as it is (no HTTP routing, TLS not "
                f"terminated){proxy}"
            )
        if self.outcome == "upstream" and self.kind == "udp":
            return (
                f"UDP port map: datagrams go to upstream {self.upstream} "
                f"({', '.join(self.endpoints)}), replies come back"
            )
        if self.outcome == "upstream":
            text = f"upstream {self.upstream} ({', '.join(self.endpoints)})"
            if self.rewritten:
                text += f", path rewritten to {self.path_sent}"
            if self.websocket:
                text += ", websocket"
            if self.timeout is not None:
                text += f", timeout {self.timeout}"
            if self.retries:
                text += f", retries {self.retries}"
            if self.compressed:
                text += ", compressed"
            return text
        if self.outcome == "direct":
            return (
                f"{self.direct_status} with the maintenance page ({self.error_page}); no upstream"
            )
        if self.outcome == "passthrough":
            endpoints = ", ".join(self.endpoints)
            return (
                f"TLS passed through, not terminated, to upstream {self.upstream} "
                f"({endpoints}){proxy}"
            )
        if self.outcome == "redirect":
            return f"redirect 301 to {self.location}"
        if self.outcome == "closed":
            return "no filter chain for this SNI: Envoy closes the connection"
        return "404 (no " + ("virtual host" if self.vhost is None else "route") + " matches)"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["endpoints"] = list(self.endpoints)
        data["backup"] = list(self.backup)
        data["result"] = self.result
        return data


# --------------------------------------------------------------------------- parsing


def parse_target(text: str) -> Target:
    """HOST[/PATH], HOST:PORT/PATH, or a URL with http:// or https://."""
    if not text or any(c.isspace() for c in text):
        raise ExplainUsage(f"{text!r}: write HOST[/PATH], e.g. router.example.com/grafana/")
    scheme = None
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ExplainUsage(f"{text!r}: only http:// and https:// URLs can be explained")
    parts = urlsplit(text if scheme else f"//{text}")
    try:
        port = parts.port
    except ValueError:
        raise ExplainUsage(f"{text!r}: the port is not a number from 1 to 65535") from None
    host = (parts.hostname or "").lower()
    if parts.netloc.startswith("["):
        host = f"[{host}]"
    if not host:
        raise ExplainUsage(f"{text!r}: no host name")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(host=host, path=path, scheme=scheme, port=port)


def normalize_path(path: str) -> str:
    """The path Envoy matches routes against: query dropped, slashes merged, dot segments
    resolved (normalize_path: true, merge_slashes: true in every HCM xdsgen writes)."""
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    path = re.sub(r"/{2,}", "/", path)
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if trailing and normal != "/":
        normal += "/"
    return normal


# --------------------------------------------------------------------------- matching


def match_server_name(
    name: str, candidates: list[tuple[str, ...]]
) -> tuple[Optional[int], Optional[str]]:
    """Index of the filter chain Envoy picks for SNI `name`, and how it matched."""
    for index, names in enumerate(candidates):
        if name in names:
            return index, f'exact "{name}"'
    labels = name.split(".")
    for cut in range(1, len(labels)):
        wildcard = "*." + ".".join(labels[cut:])
        for index, names in enumerate(candidates):
            if wildcard in names:
                return index, f'wildcard "{wildcard}"'
    return None, None


def match_virtual_host(
    host: str, vhosts: tuple[VirtualHost, ...]
) -> tuple[Optional[VirtualHost], Optional[str]]:
    host = host.lower()
    if not host.startswith("[") and ":" in host:
        host = host.rsplit(":", 1)[0]  # strip_any_host_port
    elif host.startswith("[") and "]:" in host:
        host = host.rsplit(":", 1)[0]
    for vhost in vhosts:
        if host in (d.lower() for d in vhost.domains):
            return vhost, f'exact "{host}"'
    best: Optional[tuple[int, VirtualHost, str]] = None
    for vhost in vhosts:
        for domain in vhost.domains:
            d = domain.lower()
            suffix = d.startswith("*") and d != "*" and len(host) > len(d) - 1
            if suffix and host.endswith(d[1:]) and (best is None or len(d) > best[0]):
                best = (len(d), vhost, f'suffix wildcard "{domain}"')
    if best:
        return best[1], best[2]
    for vhost in vhosts:
        for domain in vhost.domains:
            d = domain.lower()
            prefix = d.endswith("*") and d != "*" and len(host) > len(d) - 1
            if prefix and host.startswith(d[:-1]) and (best is None or len(d) > best[0]):
                best = (len(d), vhost, f'prefix wildcard "{domain}"')
    if best:
        return best[1], best[2]
    for vhost in vhosts:
        if "*" in vhost.domains:
            return vhost, 'any "*"'
    return None, None


def _cluster(model: Model, name: str) -> Optional[Cluster]:
    return next((c for c in model.clusters if c.name == name), None)


def _endpoints(model: Model, cluster: str, backup: bool = False) -> tuple[str, ...]:
    found = _cluster(model, cluster)
    if found is None:
        return ()
    return tuple(
        f"[{e.host}]:{e.port}" if ":" in e.host else f"{e.host}:{e.port}"
        for e in (found.backup if backup else found.endpoints)
    )


def _failover(model: Model, hop: Hop, cluster_name: str) -> None:
    """What meets a failing upstream: backup endpoints and active health checks."""
    cluster = _cluster(model, cluster_name)
    if cluster is not None:
        hop.backup = _endpoints(model, cluster_name, backup=True)
        hop.health_check = timeouts.health_text(cluster)


def _upstream(model: Model, hop: Hop, cluster: Optional[str]) -> Optional[str]:
    """An upstream as the inventory names it (a PROXY protocol copy by its upstream)."""
    found = _cluster(model, cluster or "")
    if found is not None and found.proxy_protocol and found.derived_from:
        hop.proxy_protocol = found.proxy_protocol.lower()
        return found.derived_from
    return cluster


def _route_config(model: Model, name: Optional[str]) -> Optional[RouteConfig]:
    return next((rc for rc in model.route_configs if rc.name == name), None)


def _http_hop(model: Model, listener: Listener, target: Target, hop: Hop) -> Hop:
    rc = _route_config(model, listener.route_config)
    vhost, how = match_virtual_host(target.host, rc.virtual_hosts if rc else ())
    if vhost is None:
        hop.outcome = "not_found"
        return hop
    hop.vhost, hop.vhost_match = vhost.name, how
    path = normalize_path(target.path)
    for index, route in enumerate(vhost.routes):
        matched = path.startswith(route.value) if route.match == "prefix" else path == route.value
        if not matched:
            continue
        hop.route_index = index
        hop.route = f'routes[{index}] {route.match} "{route.value}"'
        if route.direct_status is not None:
            hop.route = "maintenance: true (every path)"
            hop.outcome = "direct"
            hop.direct_status = route.direct_status
            hop.error_page = vhost.error_page.source if vhost.error_page else "built in"
            return hop
        if route.https_redirect:
            hop.route = f'{route.match} "{route.value}" (redirect_to_https)'
            host = target.host.split(":")[0] if not target.host.startswith("[") else target.host
            port = f":{route.redirect_port}" if route.redirect_port else ""
            query = target.path.split("?", 1)[1] if "?" in target.path else None
            hop.outcome = "redirect"
            hop.location = f"https://{host}{port}{path}" + (
                f"?{query}" if query is not None else ""
            )
            _route_access(hop, route)
            return hop
        hop.outcome = "upstream"
        hop.upstream = route.cluster
        hop.endpoints = _endpoints(model, route.cluster or "")
        _route_access(hop, route)
        rest = path[len(route.value) :] if route.match == "prefix" else ""
        hop.path_sent = (route.prefix_rewrite + rest) if route.prefix_rewrite is not None else path
        hop.rewritten = route.prefix_rewrite is not None
        hop.websocket = route.websocket
        hop.timeout = route.timeout
        hop.retries = route.retries
        hop.compressed = bool(vhost.compressors)
        hop.error_page = vhost.error_page.source if vhost.error_page else None
        hop.timeouts = timeouts.route_timeouts(route, _cluster(model, route.cluster or ""))
        _failover(model, hop, route.cluster or "")
        return hop
    hop.outcome = "not_found"
    return hop


_SCHEME_PORTS = {"http": 80, "https": 443}


def _port_map_takes(listener: Listener, target: Target) -> bool:
    """A TCP port map takes every connection to its port, an HTTP request or a TLS
    handshake as much as anything else; a UDP map takes no URL. Without a port in the
    target, only HOST:PORT or a URL's default port names a port map's port."""
    if listener.kind == "udp":
        return target.scheme is None and target.port == listener.port
    port = target.port
    if port is None and target.scheme:
        port = _SCHEME_PORTS[target.scheme]
    return port == listener.port


def _route_access(hop: Hop, route: Any) -> None:
    for item in route.filters:
        if item.kind == "allow":
            hop.allow = f"{item.label} ({', '.join(str(c) for c in item.cidrs)})"
            hop.allowed = _decide(hop.source, item.cidrs)
        elif item.kind == "basic":
            hop.auth = f"{item.label}: basic auth with the users of {item.users} (401 without)"
        elif item.kind == "forward":
            hop.auth = f"{item.label}: the auth service decides (its redirect or 401/403 otherwise)"


def _source_access(hop: Hop, cidrs: tuple[Any, ...]) -> None:
    if cidrs:
        hop.allow = ", ".join(str(c) for c in cidrs)
        hop.allowed = _decide(hop.source, cidrs)


def _decide(source: Optional[str], cidrs: tuple[Any, ...]) -> Optional[bool]:
    if source is None:
        return None
    address = ipaddress.ip_address(source)
    return any(
        address.version == ipaddress.ip_address(c.address).version
        and address in ipaddress.ip_network(str(c))
        for c in cidrs
    )


def parse_source(text: Optional[str]) -> Optional[str]:
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise ExplainUsage(
            f"--from {text!r}: write the client's IP address (203.0.113.5, 2001:db8::1)"
        ) from None


def explain(model: Model, target: Target, source: Optional[str] = None) -> list[Hop]:
    """Every listener the target can reach, per family, and where each sends it; with
    `source`, whether a client at that address gets through."""
    return _explain(model, target, source)


def _explain(model: Model, target: Target, source: Optional[str]) -> list[Hop]:
    hops = []
    for listener in sorted(model.listeners, key=lambda lst: (lst.family, lst.port, lst.kind)):
        if listener.kind in ("tcp", "udp"):
            if not _port_map_takes(listener, target):
                continue
            hop = Hop(
                listener.family,
                listener.name,
                listener.kind,
                listener.port,
                "upstream",
                endpoints=_endpoints(model, listener.cluster or ""),
                timeouts=timeouts.port_map_timeouts(
                    listener.kind, _cluster(model, listener.cluster or "")
                ),
                source=source,
            )
            hop.upstream = _upstream(model, hop, listener.cluster)
            _failover(model, hop, listener.cluster or "")
            chain = listener.filter_chains[0] if listener.filter_chains else None
            _source_access(hop, listener.udp_sources or (chain.sources if chain else ()))
            hops.append(hop)
            continue
        if target.port is not None and listener.port != target.port:
            continue
        # HTTP/3 is https over QUIC: an https:// URL reaches both listeners.
        scheme_of = "https" if listener.kind == "http3" else listener.kind
        if target.scheme and scheme_of != target.scheme:
            continue
        hop = Hop(
            listener.family, listener.name, listener.kind, listener.port, "closed", source=source
        )
        if scheme_of == "https":
            sni = target.host.strip("[]")
            chains: list[Any] = [*listener.passthrough, *listener.http_chains]
            index, how = match_server_name(sni, [c.server_names for c in chains])
            if index is None:
                hops.append(hop)
                continue
            chain = chains[index]
            hop.chain, hop.sni_match = chain.name, how
            if chain.tcp is not None:
                hop.outcome = "passthrough"
                hop.upstream = _upstream(model, hop, chain.cluster)
                hop.endpoints = _endpoints(model, chain.cluster)
                _source_access(hop, chain.sources)
                hops.append(hop)
                continue
        hops.append(_http_hop(model, listener, target, hop))
    for hop in hops:
        hop.patches = _patches_on(model, hop)
    return hops


def _patches_on(model: Model, hop: Hop) -> tuple[str, ...]:
    """The patches (inventory `patches`) on what this request passes through."""
    route = None
    if hop.vhost is not None and hop.outcome == "redirect":
        route = f"{hop.vhost}/redirect_to_https"
    elif hop.vhost is not None and hop.route_index is not None:
        route = f"{hop.vhost}/{hop.route_index}"
    on_path = {
        "listener": hop.listener,
        "connection_manager": hop.listener if hop.kind in ("http", "https") else None,
        "route_config": hop.listener if hop.vhost is not None else None,
        "vhost": hop.vhost,
        "route": route,
        "cluster": hop.upstream,
    }
    order = list(on_path)  # the way the request goes
    return tuple(
        f"{p.kind.replace('_', ' ')} {p.target}"
        for p in sorted(model.patches, key=lambda p: order.index(p.kind))
        if on_path.get(p.kind) is not None and on_path[p.kind] == p.target
    )


def explain_inventory(
    inventory: str, target_text: str, source: Optional[str] = None
) -> tuple[Target, list[Hop]]:
    from xdsgen.pipeline import load_model

    target = parse_target(target_text)
    return target, explain(load_model(inventory), target, parse_source(source))
