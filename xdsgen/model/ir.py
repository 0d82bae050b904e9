"""The model: frozen dataclasses in which every decision is already made (names, defaults,
order, durations, the shape of each listener). Templates only loop over them and print.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

from xdsgen import conventions as xds
from xdsgen.errors import Problem

# The access IR lives in ir_access.py; model parts import all IR from here.
from xdsgen.model.ir_access import (  # noqa: F401 (re-exported)
    Cidr,
    ForwardAuth,
    HeaderRules,
    HeaderValue,
    HttpFilter,
    PerFilter,
)

ADMIN_SOCKET_MODE = 0o660  # Envoy's user and group only


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True)
class UpstreamTls:
    sni: Optional[str]
    verify: bool
    ca: Optional[str]  # only when verify


@dataclass(frozen=True)
class HealthCheck:
    """Active health checks of a cluster (model/health.py decides every value)."""

    interval: str  # protobuf Duration text
    timeout: str
    unhealthy_threshold: int
    healthy_threshold: int
    http_path: Optional[str] = None  # None: a TCP connect check
    host: Optional[str] = None  # the HTTP check's Host header (Envoy's default: the cluster)
    http2: bool = False  # the check speaks the cluster's HTTP/2


@dataclass(frozen=True)
class OutlierDetection:
    """Passive ejection of endpoints that fail at the gateway (connect failures, 502-504)."""

    consecutive_gateway_failure: int
    interval: str
    base_ejection_time: str
    max_ejection_percent: int


@dataclass(frozen=True)
class Cluster:
    name: str
    discovery: str  # STATIC or STRICT_DNS
    endpoints: tuple[Endpoint, ...]
    connect_timeout: str  # protobuf Duration text: "5s", "0.25s"
    tls: Optional[UpstreamTls]
    # A router's LAN names often have only an A record; prefer it over a missing AAAA.
    dns_lookup_family: Optional[str] = None
    # Upstreams that fail well (model/health.py).
    backup: tuple[Endpoint, ...] = ()  # priority 1: used while no endpoint is healthy
    health_check: Optional[HealthCheck] = None
    outlier: Optional[OutlierDetection] = None
    http2: bool = False
    # Set with health checks: 0 turns off Envoy's panic mode, which would otherwise send
    # requests to unhealthy endpoints as soon as fewer than half are healthy.
    panic_threshold: Optional[int] = None
    # Set with backup: a priority stays whole while any of its endpoints is healthy (Envoy
    # would otherwise shift load to the backup as soon as one endpoint fails).
    overprovisioning_factor: Optional[int] = None
    # Access (issue 14): V1 or V2 for a copy of an upstream that sends the client's address
    # first (PROXY protocol). `derived_from` is set on clusters xdsgen adds itself: the
    # upstream a PROXY protocol copy copies, or "auth.NAME" for a forward auth service.
    proxy_protocol: Optional[str] = None
    derived_from: Optional[str] = None


@dataclass(frozen=True)
class Route:
    name: str
    match: str  # "prefix" or "path"
    value: str
    cluster: Optional[str]  # None for a redirect
    prefix_rewrite: Optional[str] = None
    websocket: bool = False
    timeout: Optional[str] = None
    https_redirect: bool = False
    redirect_port: Optional[int] = None  # None: leave the port out (https default 443)
    retries: int = 0
    retry_on: Optional[str] = None  # Envoy's retry conditions, with retries
    # "0s" for websocket and timeout-0s routes: no stream idle cut (model/timeouts).
    idle_timeout: Optional[str] = None
    # Answered by Envoy itself (no cluster): maintenance (the page's content type in
    # `headers`), an ACME http-01 token, or a vhost whose certificate is not obtained yet
    # (model/challenges.py; Envoy adds text/plain).
    direct_status: Optional[int] = None
    direct_body: Optional[str] = None
    # Access (issue 14): the route's own settings for its connection manager's filters,
    # the vhost's already merged in (model/access.py), and its header changes.
    filters: tuple[PerFilter, ...] = ()
    headers: Optional[HeaderRules] = None


@dataclass(frozen=True)
class ErrorPage:
    """The body Envoy's own 502/503/504 answers of a vhost get (model/pages.py)."""

    body: str
    content_type: str
    source: str  # the file it was read from (for people)
    statuses: str = "50[234]"  # RE2 of the statuses it answers (model/pages.py)


@dataclass(frozen=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]
    certificate: Optional[str] = None  # the vhost's `tls:` (not printed; model/challenges.py)
    error_page: Optional[ErrorPage] = None
    compressors: tuple[str, ...] = ()  # the compressor filters the vhost enables
    maintenance: bool = False  # every route answers the page itself (error_page unused)
    index: int = field(default=-1, compare=False)  # the vhost's place in `http`

    @property
    def custom_response(self) -> Optional[ErrorPage]:
        """The page Envoy's own 502-504 answers get: none in maintenance, where every
        route answers the page itself."""
        return None if self.maintenance else self.error_page


@dataclass(frozen=True)
class RouteConfig:
    name: str  # same as its listener: http_ipv4, https_ipv6
    virtual_hosts: tuple[VirtualHost, ...]
    # An edge proxy trusts no hop in front of it: X-Forwarded-For is overwritten; set for
    # every listener by model/access.py with the client's address, scheme and port.
    request_headers: tuple[tuple[str, str], ...] = ((xds.XFF_HEADER, xds.XFF_VALUE),)
    response_headers: tuple[tuple[str, str], ...] = ()  # alt-svc (model/http3.py)
    # Envoy refuses a direct_response body above 4 KiB unless this raises the limit.
    max_direct_response_body: Optional[int] = None

    @property
    def file_name(self) -> str:
        return xds.rds_file(self.name)

    @property
    def error_pages(self) -> bool:
        """Whether a vhost has an error page: its listener's managers then carry the
        custom_response filter, in maintenance too, so that switching maintenance on and
        off changes the route file only (no listener drain)."""
        return any(vh.error_page for vh in self.virtual_hosts)


@dataclass(frozen=True)
class Secret:
    name: str
    cert: str
    key: str

    @property
    def file_name(self) -> str:
        return xds.sds_file(self.name)


@dataclass(frozen=True)
class AccessLogFormat:
    """How the access log lines of one filter look (model/logformat.py): a text line, or
    JSON fields."""

    text: Optional[str] = None
    json: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Compressor:
    """One compressor filter of a connection manager (model/compression.py)."""

    filter: str  # the HTTP filter's name, which vhosts enable in the route file
    library: str  # the compression library's type URL


@dataclass(frozen=True)
class TcpProxy:
    stat_prefix: str
    cluster: str
    log_format: Optional[AccessLogFormat] = None  # None: Envoy's default line


@dataclass(frozen=True)
class HttpManager:
    """The HTTP connection manager of a chain: its routes come from an rds_ file."""

    stat_prefix: str
    route_config: str
    settings: tuple[tuple[str, Any], ...] = xds.HCM_SETTINGS
    log_format: Optional[AccessLogFormat] = None  # None: Envoy's default line
    http3: bool = False  # the manager of a QUIC listener (codec HTTP3)
    # HTTP filters before the router, added only where a vhost of the route table uses
    # them, so that switching a vhost on and off is a route change, not a listener drain.
    compressors: tuple[Compressor, ...] = ()  # in preference order
    error_pages: bool = False  # the custom_response filter
    # Access (issue 14): HTTP filters before the router, and the proxies whose
    # X-Forwarded-For is believed (then use_remote_address is off in `settings`).
    filters: tuple[HttpFilter, ...] = ()
    trusted_proxies: tuple[Cidr, ...] = ()


@dataclass(frozen=True)
class FilterChain:
    """One filter chain: matched by SNI (server_names) or the only one of its listener;
    terminating TLS with `secret`, then either proxying TCP or running HTTP."""

    name: Optional[str] = None
    server_names: tuple[str, ...] = ()
    secret: Optional[str] = None
    tcp: Optional[TcpProxy] = None
    http: Optional[HttpManager] = None
    quic: bool = False  # TLS inside QUIC (HTTP/3) rather than over TCP
    # Access (issue 14): only connections from these networks match the chain; others
    # match none and are closed before any byte reaches the upstream.
    sources: tuple[Cidr, ...] = ()

    @property
    def cluster(self) -> Optional[str]:
        return self.tcp.cluster if self.tcp else None

    @property
    def stat_prefix(self) -> str:
        network = self.tcp or self.http
        return network.stat_prefix if network else ""


@dataclass(frozen=True)
class Listener:
    name: str
    kind: str  # http, https, tcp, udp: for people (explain, firewall, status)
    family: str
    address: str
    port: int
    stat_prefix: str
    filter_chains: tuple[FilterChain, ...] = ()
    udp_cluster: Optional[str] = None  # a UDP listener's udp_proxy route
    tls_inspector: bool = False  # chains chosen by SNI need the ClientHello read first
    quic: bool = False  # an HTTP/3 listener (model/http3.py)
    # Access (issue 14): a UDP map's datagrams from elsewhere are dropped.
    udp_sources: tuple[Cidr, ...] = ()

    @property
    def protocol(self) -> str:
        return "UDP" if self.udp_cluster is not None or self.quic else "TCP"

    @property
    def route_config(self) -> Optional[str]:
        return next((c.http.route_config for c in self.filter_chains if c.http), None)

    @property
    def cluster(self) -> Optional[str]:
        """The one upstream of a TCP or UDP port map."""
        if self.udp_cluster is not None:
            return self.udp_cluster
        if len(self.filter_chains) == 1 and not self.filter_chains[0].server_names:
            tcp = self.filter_chains[0].tcp
            return tcp.cluster if tcp else None
        return None

    @property
    def http_chains(self) -> tuple[FilterChain, ...]:
        return tuple(c for c in self.filter_chains if c.http)

    @property
    def passthrough(self) -> tuple[FilterChain, ...]:
        return tuple(c for c in self.filter_chains if c.tcp and c.server_names)


def map_chains(
    listeners: Iterable[Listener], change: Callable[[FilterChain], FilterChain]
) -> list[Listener]:
    """The listeners with every filter chain passed through `change` (for the model parts
    that settle one aspect of every chain after the listeners are shaped)."""
    return [
        replace(item, filter_chains=tuple(change(c) for c in item.filter_chains))
        for item in listeners
    ]


@dataclass(frozen=True)
class AdminAddress:
    """Where Envoy's admin listens, as xdsgen reaches it: a Unix socket `path`, or `host`
    and `port`."""

    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Envoy:
    config_dir: str  # where xdsgen writes the files
    envoy_dir: str  # the same directory as Envoy sees it (Docker: the mount point)
    admin: AdminAddress  # as xdsgen reaches it
    access_log: Optional[str]
    node_id: str
    max_connections: int
    access_log_format: str = "default"
    # True when the inventory names the container path: moving where files are written
    # (render -o, apply --config-dir) must then not move what Envoy is told.
    envoy_dir_fixed: bool = False
    # The admin socket as Envoy sees it ("" for TCP): in Docker, under the mount point.
    admin_envoy_path: str = ""
    admin_socket_mode: int = ADMIN_SOCKET_MODE
    # The default socket lives in the config directory and moves with it.
    admin_in_config_dir: bool = False
    # Set for a Kubernetes ConfigMap volume: kubelet swaps a `..data` symlink in this
    # directory and never moves the files themselves, so Envoy must watch the directory.
    watched_directory: Optional[str] = None
    # envoy.layout (conventions.LAYOUTS): directory = the files swapped at once through
    # `..data` (live/swap.py); Envoy then watches envoy_dir (watched_directory above).
    layout: str = "rename"

    @property
    def admin_host(self) -> str:
        return self.admin.host

    @property
    def admin_port(self) -> int:
        return self.admin.port


@dataclass(frozen=True)
class Patch:
    """Envoy config merged into one generated resource (JSON merge patch, RFC 7386)."""

    kind: str  # cluster, listener, connection_manager, route_config, vhost, route
    target: str
    merge: dict[str, Any]


@dataclass(frozen=True)
class AcmeSettings:
    email: str
    directory: str  # the URL (the word `staging` resolved)
    ca_bundle: Optional[str]  # CA of the ACME server's own HTTPS certificate; None: system's
    challenge: str  # http-01 or dns-01
    dns_hook: Optional[str]
    dns_propagation: float  # seconds to wait after the hook added the records
    renew_before: float  # seconds before not-after at which a certificate is renewed


@dataclass(frozen=True)
class Certificate:
    """One `certificates:` entry as xdsgen reads (and with acme, writes) it."""

    name: str
    cert: str  # the chain file, as xdsgen sees it
    key: str
    domains: tuple[str, ...]  # every domain of every vhost with `tls: NAME`, sorted
    acme: Optional[AcmeSettings] = None
    default_paths: bool = False  # under <config_dir>/certs/<name>/: moves with --config-dir

    @property
    def source(self) -> str:
        return "acme" if self.acme else "file"


@dataclass(frozen=True)
class Model:
    envoy: Envoy
    clusters: tuple[Cluster, ...]
    listeners: tuple[Listener, ...]
    route_configs: tuple[RouteConfig, ...]
    secrets: tuple[Secret, ...]
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    # Every certificate (used or not) as xdsgen reads it; acme: ones it obtains and renews.
    certificates: tuple[Certificate, ...] = field(default=(), compare=False)
    patches: tuple[Patch, ...] = ()
    # htpasswd files Envoy reads (auth basic): a change must reach Envoy like a renewal.
    user_files: tuple[str, ...] = field(default=(), compare=False)

    def with_config_dir(self, config_dir: str, envoy_dir: Optional[str] = None) -> Model:
        """The same model writing to another directory (render -o, apply --config-dir)."""
        config_dir = os.path.abspath(config_dir)
        if envoy_dir is None:
            envoy_dir = self.envoy.envoy_dir if self.envoy.envoy_dir_fixed else config_dir
        envoy = replace(self.envoy, config_dir=config_dir, envoy_dir=envoy_dir)
        if envoy.layout == xds.LAYOUT_DIRECTORY:  # Envoy watches the directory it reads
            envoy = replace(envoy, watched_directory=envoy_dir)
        if envoy.admin_in_config_dir:
            envoy = replace(
                envoy,
                admin=AdminAddress(path=posixpath.join(config_dir, xds.ADMIN_SOCKET)),
                admin_envoy_path=posixpath.join(envoy_dir, xds.ADMIN_SOCKET),
            )
        # ACME certificates without cert/key live in the config directory: they move with it.
        moved = {c.name for c in self.certificates if c.default_paths}
        secrets = tuple(
            replace(s, cert=chain, key=key) if s.name in moved else s
            for s in self.secrets
            for chain, key in [xds.acme_paths(envoy_dir, s.name)]
        )
        return replace(
            self,
            envoy=envoy,
            secrets=secrets,
            certificates=tuple(
                replace(c, cert=chain, key=key) if c.default_paths else c
                for c in self.certificates
                for chain, key in [xds.acme_paths(config_dir, c.name)]
            ),
        )

    def with_admin_socket(self, path: str) -> Model:
        """The same model with Envoy's admin on the Unix socket `path` (seen alike by both)."""
        envoy = replace(
            self.envoy,
            admin=AdminAddress(path=path),
            admin_envoy_path=path,
            admin_in_config_dir=False,
        )
        return replace(self, envoy=envoy)

    def with_watched_directory(self, directory: Optional[str]) -> Model:
        """The same model telling Envoy to reload every file when `directory` gets an entry
        moved into it (path_config_source.watched_directory; export k8s)."""
        return replace(self, envoy=replace(self.envoy, watched_directory=directory))

    def envoy_path(self, file_name: str) -> str:
        return xds.envoy_path(self.envoy.envoy_dir, file_name)

    @property
    def cds_path(self) -> str:
        return self.envoy_path(xds.CDS_FILE)

    @property
    def lds_path(self) -> str:
        return self.envoy_path(xds.LDS_FILE)

    def route_path(self, route_config: str) -> str:
        return self.envoy_path(xds.rds_file(route_config))

    def secret_path(self, secret: str) -> str:
        return self.envoy_path(xds.sds_file(secret))

    def cluster_names(self) -> set[str]:
        return {c.name for c in self.clusters}

    def secret_files(self) -> set[str]:
        """Every file Envoy reads whose change must be applied (apply --watch watches
        them): certificates, keys and htpasswd files."""
        return {path for s in self.secrets for path in (s.cert, s.key)} | set(self.user_files)
