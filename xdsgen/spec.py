"""The inventory as typed, defaulted data: the one step from the schema-checked dict to what
the model's parts read.

Every default is in DEFAULTS (tests/test_spec.py ties it to the schema's `default`s both
ways), every item keeps its key path for messages, and nothing here judges meaning: the
model's parts do. `read(inventory, tolerant=True)` reads an inventory whose shape is partly
wrong (the schema already reported it): items without the shape they need are left out, so
the meaning checks run on the rest and never trip over a wrong type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    "http[].security_headers": False,
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


@dataclass(frozen=True)
class FamilySpec:
    family: str  # ipv4 or ipv6
    path: PathKey
    address: str
    http: Optional[int]
    https: Optional[int]


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
    # Access (issue 14)
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    network_names: frozenset[str] = frozenset()
    auth: dict[str, AuthSpec] = field(default_factory=dict)
    auth_names: frozenset[str] = frozenset()
    trusted_proxies: tuple[str, ...] = ()


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
        networks={n.name: n for n in each(_mapping(data, "networks").items(), _network)},
        network_names=frozenset(_mapping(data, "networks")),
        auth={a.name: a for a in each(_mapping(data, "auth").items(), _authenticator)},
        auth_names=frozenset(_mapping(data, "auth")),
        trusted_proxies=tuple(each(((v,) for v in _items(data, "trusted_proxies")), _string)),
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
    )


def _family(family: str, data: Any) -> FamilySpec:
    return FamilySpec(
        family=family,
        path=("listen", family),
        address=_get(data, "address", str) or _missing("address"),
        http=_get(data, "http", int),
        https=_get(data, "https", int),
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
    return UpstreamSpec(
        name=name,
        path=path,
        endpoints=tuple((text, (*path, "endpoints", i)) for i, text in enumerate(endpoints)),
        connect_timeout=_get(
            value, "connect_timeout", str, DEFAULTS["upstreams.*.connect_timeout"]
        ),
        tls=tls,
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
        allow=_optional_strings(data, "allow"),
        auth=_get(data, "auth", str),
        headers=_headers(data, path),
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
        allow=_optional_strings(data, "allow"),
        auth=_get(data, "auth", str),
        hsts=_hsts(data),
        security_headers=_get(data, "security_headers", bool, DEFAULTS["http[].security_headers"]),
        headers=_headers(data, path),
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
        allow=_optional_strings(data, "allow"),
        proxy_protocol=_get(data, "proxy_protocol", str),
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
        allow=_optional_strings(data, "allow"),
        proxy_protocol=_get(data, "proxy_protocol", str),
    )


# --------------------------------------------------------------------------- access (issue 14)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Skip("string")
    return value


def _network(name: str, value: Any) -> NetworkSpec:
    return NetworkSpec(name, ("networks", name), _strings(value))


def _authenticator(name: str, value: Any) -> AuthSpec:
    path: PathKey = ("auth", name)
    if not isinstance(value, dict):
        raise _Skip(name)
    forward_data = _get(value, "forward", dict)
    forward = None
    if forward_data is not None:
        forward = ForwardAuthSpec(
            path=(*path, "forward"),
            url=_get(forward_data, "url", str) or _missing("url"),
            headers_to_upstream=_optional_strings(forward_data, "headers_to_upstream") or (),
        )
    return AuthSpec(name, path, _get(value, "basic", str), forward)


def _hsts(data: dict[str, Any]) -> Union[bool, int, None]:
    value = data.get("hsts")
    if value is None or isinstance(value, (bool, int)):
        return value
    raise _Skip("hsts")


def _header_changes(data: Any) -> HeaderChangesSpec:
    set_data = _get(data, "set", dict) or {}
    if not all(isinstance(v, str) for v in set_data.values()):
        raise _Skip("set")
    return HeaderChangesSpec(
        set=tuple((str(k), v) for k, v in set_data.items()),
        remove=_optional_strings(data, "remove") or (),
    )


def _headers(data: Any, path: PathKey) -> Optional[HeadersSpec]:
    headers = _get(data, "headers", dict)
    if headers is None:
        return None
    return HeadersSpec(
        path=(*path, "headers"),
        request=_header_changes(_get(headers, "request", dict) or {}),
        response=_header_changes(_get(headers, "response", dict) or {}),
    )
