"""The inventory as typed, defaulted data: the one step from the schema-checked dict to what
the model's parts read.

Every default is in DEFAULTS (tests/test_spec.py ties it to the schema's `default`s both
ways), every item keeps its key path for messages, and nothing here judges meaning: the
model's parts do. `read(inventory, tolerant=True)` reads an inventory whose shape is partly
wrong (the schema already reported it): items without the shape they need are left out, so
the meaning checks run on the rest and never trip over a wrong type.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from xdsgen.errors import PathKey

# The dataclasses live in spec_types.py; the model parts import them from here.
from xdsgen.spec_types import (
    PATCH_TARGETS,
    AcmeSpec,
    AuthSpec,
    CertificateSpec,
    EnvoySpec,
    FamilySpec,
    ForwardAuthSpec,
    HeaderChangesSpec,
    HeadersSpec,
    HealthCheckSpec,
    NetworkSpec,
    PassthroughSpec,
    PatchSpec,
    PortMapSpec,
    RouteSpec,
    Spec,
    UpstreamSpec,
    UpstreamTlsSpec,
    VhostSpec,
)

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
    # Directory-swap mode (issue 17).
    "envoy.layout": "rename",
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
    "http[].security_headers": False,
}


def default(key: str) -> Any:
    return DEFAULTS[key]


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


def read(data: dict[str, Any], tolerant: bool = False, http_first: int = 0) -> Spec:
    """The spec of a schema-valid inventory, or (`tolerant`) of the well-shaped parts of one
    the schema refused. `http_first`: the index of data's first vhost in the inventory
    (xdsgen/reuse.py builds one vhost of a big inventory alone, under its own index)."""

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
        http=tuple(each(enumerate(_items(data, "http"), http_first), _vhost)),
        tls_passthrough=tuple(each(enumerate(_items(data, "tls_passthrough")), _passthrough)),
        tcp=tuple(each(((i, v, "tcp") for i, v in enumerate(_items(data, "tcp"))), _port_map)),
        udp=tuple(each(((i, v, "udp") for i, v in enumerate(_items(data, "udp"))), _port_map)),
        patches=tuple(each(enumerate(_items(data, "patches")), _patch)),
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
        access_log_format=value("access_log_format", str),
        layout=value("layout", str),
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
        error_page=_get(data, "error_page", str),
        maintenance=_get(data, "maintenance", bool, DEFAULTS["http[].maintenance"]),
        compress=_get(data, "compress", bool, DEFAULTS["http[].compress"]),
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
