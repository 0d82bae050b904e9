"""What a config does, in the terms an inventory can say, and how Envoy picks among it.

The reader (envoy_read) turns an original config, and the draft's own render, into these
objects; the comparer (compare) asks both the same questions (which chain for this SNI,
which vhost for this Host, which route for this path) with Envoy's matching rules, so
that a draft is called equivalent only when it answers like the original.

Fields marked compare=False locate an object (where it was read, its parents) without
taking part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

DEFAULT_ROUTE_TIMEOUT = 15 * 10**9  # Envoy's route timeout when none is set
DEFAULT_CONNECT_TIMEOUT = 5 * 10**9  # Envoy's cluster connect_timeout when none is set
PROBE_LABEL = "xdsgen-probe"  # a label no real host name uses: stands for "any name here"


@dataclass(frozen=True)
class Carry:
    """A field of the original the inventory cannot say, as the patch that would carry it:
    an RFC 7386 merge patch on the draft's resource of `kind` (cluster, listener,
    connection_manager, route_config, vhost, route). `key` names the field: the unit a
    patch carries whole or not at all."""

    kind: str
    key: str
    merge: Any = field(compare=False, hash=False)
    order: tuple[int, ...] = field(default=(), compare=False)  # where it sits in the original
    # A list the draft's resource has too (header changes): carried after the draft's own
    # entries there (patches.propose), not instead of them.
    extends: bool = field(default=False, compare=False)


# What an object does beyond what an inventory can say: (kind, key) -> merge patch, or for
# a field xdsgen renders itself the value read (a HealthCheck, a Retry, None for none).
# The same reader reads the draft's render, so a draft that carries a field shows the same.
Extras = dict[tuple[str, str], Any]


@dataclass(frozen=True)
class Retry:
    """A route's retry policy, normalised: what is retried, how often, on which hosts."""

    retries: int
    on: tuple[str, ...]  # retry_on conditions, sorted
    other_hosts: bool  # retry_host_predicate previous_hosts: a retry goes elsewhere
    extra: tuple[str, ...] = ()  # other retry_policy keys, by name

    def describe(self) -> str:
        text = f"{self.retries} retries on {','.join(self.on) or 'nothing'}"
        if not self.other_hosts:
            text += " (maybe the same endpoint)"
        return text + (f" with {', '.join(self.extra)}" if self.extra else "")


@dataclass(frozen=True)
class Proxy:
    cluster: str
    rewrite: Optional[str] = None
    timeout: int = DEFAULT_ROUTE_TIMEOUT  # nanoseconds
    websocket: bool = False
    retry: Optional[Retry] = None
    idle_timeout: Optional[int] = None  # nanoseconds; None: the connection manager's

    def describe(self) -> str:
        extra = []
        if self.rewrite is not None:
            extra.append(f"rewritten to {self.rewrite}")
        if self.websocket:
            extra.append("websockets allowed")
        if self.retry is not None:
            extra.append(self.retry.describe())
        if self.idle_timeout is not None:
            extra.append(
                "no stream idle timeout"
                if self.idle_timeout == 0
                else f"stream idle timeout {self.idle_timeout / 10**9:g}s"
            )
        return f"proxies to {self.cluster!r}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Redirect:
    https: bool
    port: Optional[int] = None  # None: no port_redirect (443 for https)
    other: str = ""  # host, path, code... anything else the redirect changes

    def describe(self) -> str:
        target = "redirects to https" if self.https else "redirects"
        if self.port is not None:
            target += f" port {self.port}"
        return target + (f" ({self.other})" if self.other else "")


@dataclass(frozen=True)
class Respond:
    status: int
    reason: str = field(default="", compare=False)

    def describe(self) -> str:
        return (
            f"answers {self.status} ({self.reason})"
            if self.reason
            else (f"answers {self.status} itself")
        )


Action = Union[Proxy, Redirect, Respond]

Header = tuple[str, str, str]  # lower-case name, value, append action


@dataclass(frozen=True)
class Access:
    """What a route does besides its action (issue 14): who may use it, who must pass an
    authenticator first, and the headers it changes. Read the same way from the original
    and from the draft's render (read_access), then compared."""

    allow: Optional[tuple[str, ...]] = None  # CIDRs; None: everyone
    client: bool = False  # judged on the client behind trusted proxies (remote_ip)
    # ("basic", htpasswd file) or ("forward", cluster, uri, path prefix, upstream headers)
    auth: Optional[tuple[str, ...]] = None
    strip: tuple[str, ...] = ()  # request headers removed before the auth check
    # What the route does to each header: (name, ("set", value)), (name, ("removed",)),
    # (name, ("default", value)) where absent; others an inventory cannot say.
    request_headers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    response_headers: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass
class Route:
    match: str  # "prefix" or "path"
    value: str
    action: Action
    where: str = field(default="", compare=False)
    raw: Any = field(default=None, compare=False, repr=False)
    vhost: Optional[Vhost] = field(default=None, compare=False, repr=False)
    name: str = field(default="", compare=False)
    extras: Extras = field(default_factory=dict, compare=False, repr=False)
    access: Access = field(default_factory=Access, compare=False)

    def matches(self, path: str) -> bool:
        return path.startswith(self.value) if self.match == "prefix" else path == self.value

    def describe(self) -> str:
        return f"{self.match} {self.value}"


@dataclass
class Vhost:
    name: str
    domains: tuple[str, ...]  # lower case, as Envoy compares them
    routes: list[Route]
    where: str = field(default="", compare=False)
    raw: Any = field(default=None, compare=False, repr=False)
    hcm: Optional[Hcm] = field(default=None, compare=False, repr=False)
    extras: Extras = field(default_factory=dict, compare=False, repr=False)
    # Compression libraries its responses get (brotli, gzip), in the filters' order.
    compression: tuple[str, ...] = field(default=(), compare=False)

    def route_for(self, path: str) -> Optional[Route]:
        for route in self.routes:
            if route.matches(path):
                return route
        return None


@dataclass
class Hcm:
    """An HTTP connection manager with its route table (None: the routes could not be read)."""

    vhosts: Optional[list[Vhost]]
    strip_port: bool = False
    # Access (issue 14): the proxies whose X-Forwarded-For names the client, and the
    # HTTP filters read (name -> what it does), for read_access to resolve per route.
    trusted: tuple[str, ...] = ()
    filters: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    route_headers: Any = field(default=None, compare=False, repr=False)
    route_config: str = field(default="", compare=False)
    where: str = field(default="", compare=False)
    chain: Optional[Chain] = field(default=None, compare=False, repr=False)
    extras: Extras = field(default_factory=dict, compare=False, repr=False)
    # Compressor filters: (filter name, library, disabled unless a vhost enables it).
    compressors: list[tuple[str, str, bool]] = field(default_factory=list, compare=False)

    index: Optional[VhostIndex] = field(default=None, compare=False, repr=False)

    def vhost_for(self, host: str) -> Optional[Vhost]:
        if self.vhosts is None:
            return None
        host = host.lower()
        if self.strip_port and ":" in host and not host.endswith("]"):
            host = host.rsplit(":", 1)[0]
        if self.index is None:
            self.index = VhostIndex(self.vhosts)
        return self.index.match(host)


@dataclass(frozen=True)
class Certificate:
    cert: str
    key: str
    name: str = field(default="", compare=False)


@dataclass
class Chain:
    """One filter chain: what it matches, whether it terminates TLS, and what it runs."""

    server_names: tuple[str, ...]  # () matches any name
    transport: Optional[str]  # filter_chain_match.transport_protocol: tls, raw_buffer, None
    tls: bool
    certificate: Optional[Certificate]  # None with tls: a certificate xdsgen cannot use
    kind: str  # "http", "tcp" or "opaque" (something the inventory cannot say)
    hcm: Optional[Hcm] = None
    cluster: Optional[str] = None
    sources: Optional[tuple[str, ...]] = None  # filter_chain_match.source_prefix_ranges
    name: str = field(default="", compare=False)
    where: str = field(default="", compare=False)
    listener: Optional[Listener] = field(default=None, compare=False, repr=False)


@dataclass
class Listener:
    name: str
    families: tuple[str, ...]  # ("ipv6", "ipv4") for "::" with ipv4_compat
    address: str
    port: int
    protocol: str  # "tcp" or "udp"
    chains: list[Chain] = field(default_factory=list)
    default_chain: Optional[Chain] = None
    udp_cluster: Optional[str] = None
    udp_sources: Optional[tuple[str, ...]] = None  # datagrams from elsewhere are dropped
    opaque: bool = False  # the listener as a whole cannot be said (its difference is listed)
    # Without a TLS inspector Envoy learns neither the server name nor that a client speaks
    # TLS (Envoy 1.40 adds none by itself): chains with server_names never match.
    inspector: bool = False
    where: str = field(default="", compare=False)
    raw: Any = field(default=None, compare=False, repr=False)
    extras: Extras = field(default_factory=dict, compare=False, repr=False)

    def address_for(self, family: str) -> str:
        if family == "ipv4" and ":" in self.address:
            return "0.0.0.0"  # "::" with ipv4_compat: every IPv4 address
        return self.address

    def chain_for(self, sni: Optional[str], tls: bool) -> Optional[Chain]:
        """The chain Envoy picks for a connection: the most specific server name group
        first (exact, longest wildcard, none), then the transport within it; Envoy does not
        go back to a less specific group when the transport does not match."""
        named = [c for c in self.chains if c.server_names]
        unnamed = [c for c in self.chains if not c.server_names]
        group = unnamed
        detected_tls = tls and self.inspector
        if sni is not None and self.inspector:
            sni = sni.lower()
            group = [c for c in named if sni in c.server_names] or (
                _best_wildcard(sni, named) or unnamed
            )
        transport = "tls" if detected_tls else "raw_buffer"
        chosen = [c for c in group if c.transport == transport] or [
            c for c in group if c.transport is None
        ]
        return chosen[0] if chosen else self.default_chain


def _best_wildcard(sni: str, chains: list[Chain]) -> list[Chain]:
    # Envoy tries *.b.c, then *.c: the longest wildcard suffix wins.
    labels = sni.split(".")
    for start in range(1, len(labels)):
        wildcard = "*." + ".".join(labels[start:])
        found = [c for c in chains if wildcard in c.server_names]
        if found:
            return found
    return []


@dataclass(frozen=True)
class UpstreamTls:
    sni: Optional[str]
    ca: Optional[str]  # None: the certificate is not verified
    names: tuple[str, ...] = ()  # names the certificate must carry (exact SAN matches)


@dataclass(frozen=True)
class HealthCheck:
    """One active health check, normalised (Envoy's defaults filled in)."""

    http_path: Optional[str]  # None: a TCP connect check
    host: Optional[str]
    interval: int  # nanoseconds
    timeout: int
    no_traffic_interval: int
    unhealthy_threshold: int
    healthy_threshold: int
    any_2xx: bool  # expected statuses: every 2xx (Envoy's default: 200 only)
    http2: bool
    extra: tuple[str, ...] = ()  # anything else, by name

    def describe(self) -> str:
        what = f"GET {self.http_path}" if self.http_path is not None else "TCP connect"
        text = f"{what}" + (f" (Host {self.host})" if self.host is not None else "")
        text += " over HTTP/2" if self.http2 else ""
        text += f" every {self.interval / 10**9:g}s"
        if self.no_traffic_interval != self.interval:
            text += f" ({self.no_traffic_interval / 10**9:g}s without traffic)"
        text += f", {self.unhealthy_threshold} down / {self.healthy_threshold} up"
        if self.http_path is not None and not self.any_2xx:
            text += ", only 200 healthy"
        return text + (f" with {', '.join(self.extra)}" if self.extra else "")


@dataclass
class Cluster:
    name: str
    endpoints: tuple[str, ...]  # HOST:PORT in the original's order (round robin over all)
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    tls: Optional[UpstreamTls] = None
    backup: tuple[str, ...] = ()  # priority 1 endpoints
    health: Optional[HealthCheck] = None
    outlier: Optional[tuple[Any, ...]] = None  # normalised outlier_detection
    http2: bool = False
    panic_threshold: Optional[float] = None  # None: Envoy's 50%
    overprovisioning: Optional[int] = None  # None: Envoy's 140
    proxy_protocol: Optional[str] = None  # v1 or v2: the client's address goes first
    problem: str = field(default="", compare=False)  # why the draft cannot have it
    where: str = field(default="", compare=False)
    raw: Any = field(default=None, compare=False, repr=False)
    extras: Extras = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Config:
    listeners: list[Listener]
    clusters: dict[str, Cluster]
    access_log: Optional[str] = None

    def used_clusters(self, auth_services: bool = True) -> set[str]:
        """Clusters routes, TCP chains and UDP maps send to, and (unless told not to) the
        forward-auth services routes ask."""
        used: set[str] = set()
        for listener in self.listeners:
            if listener.udp_cluster:
                used.add(listener.udp_cluster)
            for chain in [*listener.chains, listener.default_chain]:
                if chain is None:
                    continue
                if chain.cluster:
                    used.add(chain.cluster)
                for vhost in (chain.hcm.vhosts or []) if chain.hcm else []:
                    for route in vhost.routes:
                        if isinstance(route.action, Proxy):
                            used.add(route.action.cluster)
                        auth = route.access.auth
                        if auth_services and auth and auth[0] == "forward":
                            used.add(auth[1])
        return used


# --------------------------------------------------------------------------- matching


def representative(domain: str) -> str:
    """A host name standing for every host a vhost domain (or server name) covers."""
    if domain == "*":
        return PROBE_LABEL + ".invalid"
    if domain.startswith("*"):
        return PROBE_LABEL + domain[1:]
    if domain.endswith("*"):
        return domain[:-1] + PROBE_LABEL
    return domain


class VhostIndex:
    """Envoy's vhost order, indexed: exact name, then the longest suffix wildcard, then the
    longest prefix wildcard, then "*" (thousands of vhosts are compared host by host)."""

    def __init__(self, vhosts: list[Vhost]):
        self.exact: dict[str, Vhost] = {}
        self.suffixes: list[tuple[str, Vhost]] = []
        self.prefixes: list[tuple[str, Vhost]] = []
        self.star: Optional[Vhost] = None
        for vhost in vhosts:
            for domain in vhost.domains:
                if domain == "*":
                    self.star = self.star or vhost
                elif domain.startswith("*"):
                    self.suffixes.append((domain[1:], vhost))
                elif domain.endswith("*"):
                    self.prefixes.append((domain[:-1], vhost))
                else:
                    self.exact.setdefault(domain, vhost)
        self.suffixes.sort(key=lambda pair: -len(pair[0]))
        self.prefixes.sort(key=lambda pair: -len(pair[0]))

    def match(self, host: str) -> Optional[Vhost]:
        if host in self.exact:
            return self.exact[host]
        for suffix, vhost in self.suffixes:
            if len(host) > len(suffix) and host.endswith(suffix):
                return vhost
        for prefix, vhost in self.prefixes:
            if len(host) > len(prefix) and host.startswith(prefix):
                return vhost
        return self.star
