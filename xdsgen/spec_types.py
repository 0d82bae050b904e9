"""The typed inventory (spec.py reads it): one frozen dataclass per inventory section, each
item with its key path for messages. spec.py re-exports these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from xdsgen.errors import PathKey


@dataclass(frozen=True)
class EnvoySpec:
    config_dir: str
    container_config_dir: Optional[str]
    admin: Optional[str]  # None: the default Unix socket
    admin_allow_remote: bool
    access_log: Union[str, bool]  # a path, or False/"off"
    node_id: str
    max_connections: int
    written: frozenset[str]  # the keys the inventory wrote (not defaulted)
    access_log_format: str = "default"  # default, combined or json
    layout: str = "rename"  # rename or directory (conventions.LAYOUTS)


@dataclass(frozen=True)
class FamilySpec:
    family: str  # ipv4 or ipv6
    path: PathKey
    address: str
    http: Optional[int]
    https: Optional[int]
    http3: bool = False  # a QUIC listener on the https port
    http3_advertised_port: Optional[int] = None  # alt-svc's port when it is not `https`


@dataclass(frozen=True)
class UpstreamTlsSpec:
    path: PathKey
    sni: Optional[str]
    verify: bool
    ca: str
    ca_written: bool


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    path: PathKey
    endpoints: tuple[tuple[str, PathKey], ...]  # (HOST:PORT text, where it is written)
    connect_timeout: str
    tls: Optional[UpstreamTlsSpec]
    backup: tuple[tuple[str, PathKey], ...] = ()  # endpoints used while no endpoint is healthy
    health_check: Optional[HealthCheckSpec] = None
    h2: bool = False


@dataclass(frozen=True)
class HealthCheckSpec:
    path: PathKey  # where `health_check` is written
    http_path: Optional[str]  # GET this path; None: no HTTP check
    tcp: bool
    interval: str
    timeout: str
    unhealthy_threshold: int
    healthy_threshold: int
    host: Optional[str]


@dataclass(frozen=True)
class AcmeSpec:
    path: PathKey
    email: str
    directory: str
    ca_bundle: Optional[str]
    challenge: str
    dns_hook: Optional[str]
    dns_propagation: str
    renew_before: str


@dataclass(frozen=True)
class CertificateSpec:
    name: str
    path: PathKey
    cert: Optional[str]
    key: Optional[str]
    acme: Optional[AcmeSpec]


@dataclass(frozen=True)
class HeaderChangesSpec:
    set: tuple[tuple[str, str], ...]  # (name as written, value)
    remove: tuple[str, ...]


@dataclass(frozen=True)
class HeadersSpec:
    path: PathKey
    request: HeaderChangesSpec
    response: HeaderChangesSpec


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    path: PathKey
    cidrs: tuple[str, ...]


@dataclass(frozen=True)
class ForwardAuthSpec:
    path: PathKey
    url: str
    headers_to_upstream: tuple[str, ...]


@dataclass(frozen=True)
class AuthSpec:
    name: str
    path: PathKey
    basic: Optional[str]  # the htpasswd file
    forward: Optional[ForwardAuthSpec]


@dataclass(frozen=True)
class RouteSpec:
    index: int
    path: PathKey
    match: str  # "prefix" or "path"
    value: str
    upstream: str
    rewrite: Optional[str]
    websocket: bool
    timeout: Optional[str]
    retries: int = 0
    # Access (issue 14): None when the route does not say (the vhost's applies).
    allow: Optional[tuple[str, ...]] = None
    auth: Optional[str] = None
    headers: Optional[HeadersSpec] = None


@dataclass(frozen=True)
class VhostSpec:
    index: int
    path: PathKey
    domains: tuple[str, ...]
    tls: Optional[str]
    redirect_to_https: bool
    families: Optional[tuple[str, ...]]
    routes: tuple[RouteSpec, ...]
    error_page: Optional[str] = None  # a file read at render
    maintenance: bool = False
    compress: bool = False
    allow: Optional[tuple[str, ...]] = None
    auth: Optional[str] = None
    hsts: Union[bool, int, None] = None
    security_headers: bool = False
    headers: Optional[HeadersSpec] = None


@dataclass(frozen=True)
class PassthroughSpec:
    index: int
    path: PathKey
    sni: tuple[str, ...]
    upstream: str
    families: Optional[tuple[str, ...]]
    allow: Optional[tuple[str, ...]] = None
    proxy_protocol: Optional[str] = None  # v1 or v2


@dataclass(frozen=True)
class PortMapSpec:
    kind: str  # tcp or udp
    index: int
    path: PathKey
    port: int
    upstream: str
    families: Optional[tuple[str, ...]]
    allow: Optional[tuple[str, ...]] = None
    proxy_protocol: Optional[str] = None  # tcp only: v1 or v2


PATCH_TARGETS = ("cluster", "listener", "connection_manager", "route_config", "vhost", "route")


@dataclass(frozen=True)
class PatchSpec:
    index: int
    path: PathKey
    kind: str  # one of PATCH_TARGETS
    target: str
    merge: dict[str, Any]


@dataclass(frozen=True)
class Spec:
    envoy: EnvoySpec
    listen: dict[str, FamilySpec]  # by family, sorted
    listen_written: frozenset[str]  # families the inventory names (even if malformed)
    upstreams: dict[str, UpstreamSpec]  # in inventory order
    upstream_names: frozenset[str]  # every name under upstreams (even if malformed)
    # False when `upstreams` itself has not the shape of a mapping (already reported):
    # then no reference to an upstream can be judged.
    upstreams_readable: bool
    certificates: dict[str, CertificateSpec]
    certificate_names: frozenset[str]
    http: tuple[VhostSpec, ...]
    tls_passthrough: tuple[PassthroughSpec, ...]
    tcp: tuple[PortMapSpec, ...]
    udp: tuple[PortMapSpec, ...]
    patches: tuple[PatchSpec, ...] = ()
    # Access (issue 14)
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    network_names: frozenset[str] = frozenset()
    auth: dict[str, AuthSpec] = field(default_factory=dict)
    auth_names: frozenset[str] = frozenset()
    trusted_proxies: tuple[str, ...] = ()
