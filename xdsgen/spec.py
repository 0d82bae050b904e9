"""The inventory as typed, defaulted data: the one step from the schema-checked dict to what
the model's parts read.

Every default is in DEFAULTS (tests/test_spec.py ties it to the schema's `default`s both
ways), every item keeps its key path for messages, and nothing here judges meaning: the
model's parts do. `read(inventory, tolerant=True)` reads an inventory whose shape is partly
wrong (the schema already reported it): items without the shape they need are left out, so
the meaning checks run on the rest and never trip over a wrong type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from xdsgen.errors import PathKey

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

# Schema path (`*` any key, `[]` any item) -> default. The only place defaults live.
DEFAULTS: dict[str, Any] = {
    "envoy.config_dir": "/etc/envoy",
    "envoy.admin_allow_remote": False,
    "envoy.access_log": "/dev/stdout",
    "envoy.node_id": "xdsgen",
    "envoy.max_connections": 1024,
    "upstreams.*.connect_timeout": "5s",
    "upstreams.*.tls.verify": True,
    "upstreams.*.tls.ca": "/etc/ssl/certs/ca-certificates.crt",
    "certificates.*.acme.directory": LETSENCRYPT,
    "certificates.*.acme.challenge": "http-01",
    "certificates.*.acme.dns_propagation": "0s",
    "certificates.*.acme.renew_before": "30d",
    "http[].redirect_to_https": False,
    "http[].routes[].websocket": False,
    # Upstreams that fail well, and the edge features (issue 15).
    "envoy.access_log_format": "default",
    "listen.*.http3": False,
    "upstreams.*.h2": False,
    "upstreams.*.health_check.tcp": False,
    "upstreams.*.health_check.interval": "5s",
    "upstreams.*.health_check.timeout": "2s",
    "upstreams.*.health_check.unhealthy_threshold": 2,
    "upstreams.*.health_check.healthy_threshold": 1,
    "http[].maintenance": False,
    "http[].compress": False,
    "http[].routes[].retries": 0,
}


def default(key: str) -> Any:
    return DEFAULTS[key]


# --------------------------------------------------------------------------- the spec


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


@dataclass(frozen=True)
class PassthroughSpec:
    index: int
    path: PathKey
    sni: tuple[str, ...]
    upstream: str
    families: Optional[tuple[str, ...]]


@dataclass(frozen=True)
class PortMapSpec:
    kind: str  # tcp or udp
    index: int
    path: PathKey
    port: int
    upstream: str
    families: Optional[tuple[str, ...]]


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


# --------------------------------------------------------------------------- reading


class _Skip(Exception):
    """This item has not the shape the schema asks for (already reported): leave it out."""


def _get(data: Any, key: str, kind: Any, fallback: Any = None) -> Any:
    value = data.get(key, fallback) if isinstance(data, dict) else fallback
    if value is fallback:
        return value
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Skip(key)
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Skip("list of strings")
    return tuple(value)


def _optional_strings(data: dict[str, Any], key: str) -> Optional[tuple[str, ...]]:
    return None if key not in data else _strings(data[key])


def _items(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, list) else []


def _mapping(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def read(data: dict[str, Any], tolerant: bool = False) -> Spec:
    """The spec of a schema-valid inventory, or (`tolerant`) of the well-shaped parts of one
    the schema refused."""

    def each(entries: Any, make: Any) -> list[Any]:
        made = []
        for entry in entries:
            try:
                made.append(make(*entry))
            except (_Skip, KeyError, TypeError, AttributeError):
                if not tolerant:
                    raise
        return made

    upstreams = each(_mapping(data, "upstreams").items(), _upstream)
    certificates = each(_mapping(data, "certificates").items(), _certificate)
    listen = each(sorted(_mapping(data, "listen").items()), _family)
    return Spec(
        envoy=_envoy(_mapping(data, "envoy"), tolerant),
        listen={f.family: f for f in listen},
        listen_written=frozenset(_mapping(data, "listen")),
        upstreams={u.name: u for u in upstreams},
        upstream_names=frozenset(_mapping(data, "upstreams")),
        upstreams_readable=isinstance(data.get("upstreams", {}), dict),
        certificates={c.name: c for c in certificates},
        certificate_names=frozenset(_mapping(data, "certificates")),
        http=tuple(each(enumerate(_items(data, "http")), _vhost)),
        tls_passthrough=tuple(each(enumerate(_items(data, "tls_passthrough")), _passthrough)),
        tcp=tuple(each(((i, v, "tcp") for i, v in enumerate(_items(data, "tcp"))), _port_map)),
        udp=tuple(each(((i, v, "udp") for i, v in enumerate(_items(data, "udp"))), _port_map)),
        patches=tuple(each(enumerate(_items(data, "patches")), _patch)),
    )


def _envoy(section: dict[str, Any], tolerant: bool) -> EnvoySpec:
    def value(key: str, kind: Any) -> Any:
        try:
            return _get(section, key, kind, DEFAULTS[f"envoy.{key}"])
        except _Skip:
            if not tolerant:
                raise
            return DEFAULTS[f"envoy.{key}"]

    def optional(key: str) -> Optional[str]:
        found = section.get(key)
        if found is None or isinstance(found, str):
            return found
        if not tolerant:
            raise _Skip(key)
        return None

    access_log = section.get("access_log", DEFAULTS["envoy.access_log"])
    if not isinstance(access_log, (str, bool)):
        access_log = DEFAULTS["envoy.access_log"]
    return EnvoySpec(
        config_dir=value("config_dir", str),
        container_config_dir=optional("container_config_dir"),
        admin=optional("admin"),
        admin_allow_remote=value("admin_allow_remote", bool),
        access_log=access_log,
        node_id=value("node_id", str),
        max_connections=value("max_connections", int),
        written=frozenset(section),
        access_log_format=value("access_log_format", str),
    )


def _family(family: str, data: Any) -> FamilySpec:
    http3 = data.get("http3", DEFAULTS["listen.*.http3"]) if isinstance(data, dict) else False
    if not isinstance(http3, (bool, dict)):
        raise _Skip("http3")
    advertised = _get(http3, "advertised_port", int) if isinstance(http3, dict) else None
    return FamilySpec(
        family=family,
        path=("listen", family),
        address=_get(data, "address", str) or _missing("address"),
        http=_get(data, "http", int),
        https=_get(data, "https", int),
        http3=http3 is not False,
        http3_advertised_port=advertised,
    )


def _missing(key: str) -> Any:
    raise _Skip(key)


def _upstream(name: str, value: Any) -> UpstreamSpec:
    path: PathKey = ("upstreams", name)
    if isinstance(value, str):
        return UpstreamSpec(
            name, path, ((value, path),), DEFAULTS["upstreams.*.connect_timeout"], None
        )
    endpoints = _strings(_get(value, "endpoints", list) or _missing("endpoints"))
    tls_data = _get(value, "tls", dict)
    tls = None
    if tls_data is not None:
        ca = _get(tls_data, "ca", str)
        tls = UpstreamTlsSpec(
            path=(*path, "tls"),
            sni=_get(tls_data, "sni", str),
            verify=_get(tls_data, "verify", bool, DEFAULTS["upstreams.*.tls.verify"]),
            ca=ca if ca is not None else DEFAULTS["upstreams.*.tls.ca"],
            ca_written=ca is not None,
        )
    backup = _strings(_get(value, "backup", list, []))
    return UpstreamSpec(
        name=name,
        path=path,
        endpoints=tuple((text, (*path, "endpoints", i)) for i, text in enumerate(endpoints)),
        connect_timeout=_get(
            value, "connect_timeout", str, DEFAULTS["upstreams.*.connect_timeout"]
        ),
        tls=tls,
        backup=tuple((text, (*path, "backup", i)) for i, text in enumerate(backup)),
        health_check=_health_check(path, _get(value, "health_check", dict)),
        h2=_get(value, "h2", bool, DEFAULTS["upstreams.*.h2"]),
    )


def _health_check(
    upstream_path: PathKey, data: Optional[dict[str, Any]]
) -> Optional[HealthCheckSpec]:
    if data is None:
        return None

    def value(key: str, kind: Any) -> Any:
        return _get(data, key, kind, DEFAULTS[f"upstreams.*.health_check.{key}"])

    return HealthCheckSpec(
        path=(*upstream_path, "health_check"),
        http_path=_get(data, "path", str),
        tcp=value("tcp", bool),
        interval=value("interval", str),
        timeout=value("timeout", str),
        unhealthy_threshold=value("unhealthy_threshold", int),
        healthy_threshold=value("healthy_threshold", int),
        host=_get(data, "host", str),
    )


def _certificate(name: str, value: Any) -> CertificateSpec:
    path: PathKey = ("certificates", name)
    if not isinstance(value, dict):
        raise _Skip(name)
    acme_data = _get(value, "acme", dict)
    acme = None
    if acme_data is not None:

        def acme_value(key: str) -> Any:
            return _get(acme_data, key, str, DEFAULTS.get(f"certificates.*.acme.{key}"))

        acme = AcmeSpec(
            path=(*path, "acme"),
            email=acme_value("email") or "",
            directory=acme_value("directory"),
            ca_bundle=acme_value("ca_bundle"),
            challenge=acme_value("challenge"),
            dns_hook=acme_value("dns_hook"),
            dns_propagation=acme_value("dns_propagation"),
            renew_before=acme_value("renew_before"),
        )
    return CertificateSpec(name, path, _get(value, "cert", str), _get(value, "key", str), acme)


def _route(vhost_path: PathKey, index: int, data: Any) -> RouteSpec:
    path: PathKey = (*vhost_path, "routes", index)
    match = "prefix" if isinstance(data, dict) and "prefix" in data else "path"
    return RouteSpec(
        index=index,
        path=path,
        match=match,
        value=_get(data, match, str) or _missing(match),
        upstream=_get(data, "upstream", str) or _missing("upstream"),
        rewrite=_get(data, "rewrite", str),
        websocket=_get(data, "websocket", bool, DEFAULTS["http[].routes[].websocket"]),
        timeout=_get(data, "timeout", str),
        retries=_get(data, "retries", int, DEFAULTS["http[].routes[].retries"]),
    )


def _vhost(index: int, data: Any) -> VhostSpec:
    path: PathKey = ("http", index)
    if not isinstance(data, dict):
        raise _Skip("vhost")
    return VhostSpec(
        index=index,
        path=path,
        domains=_strings(data.get("domains")),
        tls=_get(data, "tls", str),
        redirect_to_https=_get(
            data, "redirect_to_https", bool, DEFAULTS["http[].redirect_to_https"]
        ),
        families=_optional_strings(data, "families"),
        routes=tuple(_route(path, i, r) for i, r in enumerate(_items(data, "routes"))),
        error_page=_get(data, "error_page", str),
        maintenance=_get(data, "maintenance", bool, DEFAULTS["http[].maintenance"]),
        compress=_get(data, "compress", bool, DEFAULTS["http[].compress"]),
    )


def _passthrough(index: int, data: Any) -> PassthroughSpec:
    if not isinstance(data, dict):
        raise _Skip("passthrough")
    return PassthroughSpec(
        index=index,
        path=("tls_passthrough", index),
        sni=_strings(data.get("sni")),
        upstream=_get(data, "upstream", str) or _missing("upstream"),
        families=_optional_strings(data, "families"),
    )


def _port_map(index: int, data: Any, kind: str) -> PortMapSpec:
    if not isinstance(data, dict):
        raise _Skip(kind)
    return PortMapSpec(
        kind=kind,
        index=index,
        path=(kind, index),
        port=_get(data, "port", int) or _missing("port"),
        upstream=_get(data, "upstream", str) or _missing("upstream"),
        families=_optional_strings(data, "families"),
    )


def _patch(index: int, data: Any) -> PatchSpec:
    targets = [k for k in PATCH_TARGETS if isinstance(data, dict) and k in data]
    if len(targets) != 1:
        raise _Skip("patch target")
    return PatchSpec(
        index=index,
        path=("patches", index),
        kind=targets[0],
        target=_get(data, targets[0], str) or _missing(targets[0]),
        merge=_get(data, "merge", dict) or {},
    )
