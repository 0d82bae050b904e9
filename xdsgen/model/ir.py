"""The model: frozen dataclasses in which every decision is already made (names, defaults,
order, durations, the shape of each listener). Templates only loop over them and print.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from xdsgen import conventions as xds
from xdsgen.errors import Problem

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
class Cluster:
    name: str
    discovery: str  # STATIC or STRICT_DNS
    endpoints: tuple[Endpoint, ...]
    connect_timeout: str  # protobuf Duration text: "5s", "0.25s"
    tls: Optional[UpstreamTls]
    # A router's LAN names often have only an A record; prefer it over a missing AAAA.
    dns_lookup_family: Optional[str] = None
    # Access (issue 14): V1 or V2 for a copy of an upstream that sends the client's address
    # first (PROXY protocol). `derived_from` is set on clusters xdsgen adds itself: the
    # upstream a PROXY protocol copy copies, or "auth.NAME" for a forward auth service.
    proxy_protocol: Optional[str] = None
    derived_from: Optional[str] = None


# --------------------------------------------------------------------------- access (issue 14)


@dataclass(frozen=True)
class Cidr:
    address: str  # the network's first address
    prefix_len: int

    def __str__(self) -> str:
        return f"{self.address}/{self.prefix_len}"


@dataclass(frozen=True)
class HeaderValue:
    key: str  # lower case
    value: str  # Envoy's header value format: a literal % is written %%
    action: str  # OVERWRITE_IF_EXISTS_OR_ADD or ADD_IF_ABSENT


@dataclass(frozen=True)
class HeaderRules:
    request_add: tuple[HeaderValue, ...] = ()
    request_remove: tuple[str, ...] = ()
    response_add: tuple[HeaderValue, ...] = ()
    response_remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class PerFilter:
    """A route's setting for one HTTP filter of its connection manager."""

    filter: str  # the filter's name in http_filters
    kind: str  # allow, basic, forward (turn it on), off, strip
    cidrs: tuple[Cidr, ...] = ()  # allow
    principal: str = "direct_remote_ip"  # allow: or remote_ip behind trusted proxies
    users: str = ""  # basic: the htpasswd file Envoy reads
    users_version: str = ""  # basic: its content's hash, so a changed file changes the RDS
    headers: tuple[str, ...] = ()  # strip: request headers removed before the auth check
    label: str = ""  # for people: the networks or the authenticator, as the inventory says


@dataclass(frozen=True)
class ForwardAuth:
    """An ext_authz HTTP service (Authelia, Authentik, oauth2-proxy)."""

    name: str  # the authenticator's name
    cluster: str
    uri: str
    path_prefix: str
    timeout: str
    headers_to_upstream: tuple[str, ...]  # lower case


@dataclass(frozen=True)
class HttpFilter:
    """An HTTP filter before the router; basic and forward are off unless a route turns
    them on (PerFilter)."""

    name: str
    kind: str  # rbac, strip, basic, forward
    forward: Optional[ForwardAuth] = None
    scheme: str = "http"  # forward: X-Forwarded-Proto told to the auth service


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
    # Access (issue 14): the route's own settings for its connection manager's filters,
    # the vhost's already merged in (model/access.py), and its header changes.
    filters: tuple[PerFilter, ...] = ()
    headers: Optional[HeaderRules] = None


@dataclass(frozen=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class RouteConfig:
    name: str  # same as its listener: http_ipv4, https_ipv6
    virtual_hosts: tuple[VirtualHost, ...]
    # An edge proxy trusts no hop in front of it: X-Forwarded-For is overwritten.
    request_headers: tuple[tuple[str, str], ...] = ((xds.XFF_HEADER, xds.XFF_VALUE),)
    # Set for every listener by model/access.py: the client's address, scheme and port.

    @property
    def file_name(self) -> str:
        return xds.rds_file(self.name)


@dataclass(frozen=True)
class Secret:
    name: str
    cert: str
    key: str

    @property
    def file_name(self) -> str:
        return xds.sds_file(self.name)


@dataclass(frozen=True)
class TcpProxy:
    stat_prefix: str
    cluster: str


@dataclass(frozen=True)
class HttpManager:
    """The HTTP connection manager of a chain: its routes come from an rds_ file."""

    stat_prefix: str
    route_config: str
    settings: tuple[tuple[str, Any], ...] = xds.HCM_SETTINGS
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
    # Access (issue 14): a UDP map's datagrams from elsewhere are dropped.
    udp_sources: tuple[Cidr, ...] = ()

    @property
    def protocol(self) -> str:
        return "UDP" if self.udp_cluster is not None else "TCP"

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

    @property
    def admin_host(self) -> str:
        return self.admin.host

    @property
    def admin_port(self) -> int:
        return self.admin.port


@dataclass(frozen=True)
class Model:
    envoy: Envoy
    clusters: tuple[Cluster, ...]
    listeners: tuple[Listener, ...]
    route_configs: tuple[RouteConfig, ...]
    secrets: tuple[Secret, ...]
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    # Every certificate (used or not) as xdsgen reads it; acme: ones it obtains and renews.
    certificates: tuple[Any, ...] = field(default=(), compare=False)
    # htpasswd files Envoy reads (auth basic): a change must reach Envoy like a renewal.
    user_files: tuple[str, ...] = field(default=(), compare=False)

    def with_config_dir(self, config_dir: str, envoy_dir: Optional[str] = None) -> Model:
        """The same model writing to another directory (render -o, apply --config-dir)."""
        from xdsgen.model import certificates as certificates_part

        config_dir = os.path.abspath(config_dir)
        if envoy_dir is None:
            envoy_dir = self.envoy.envoy_dir if self.envoy.envoy_dir_fixed else config_dir
        envoy = replace(self.envoy, config_dir=config_dir, envoy_dir=envoy_dir)
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
            for chain, key in [certificates_part.default_paths(envoy_dir, s.name)]
        )
        return replace(
            self,
            envoy=envoy,
            secrets=secrets,
            certificates=certificates_part.relocate(self.certificates, config_dir),
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
