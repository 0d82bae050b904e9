"""The one place the exporters read xdsgen's model (and, where the model dropped something,
the inventory data): everything else in xdsgen.export works on the small views below.

When the model's shape changes, only this module changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from xdsgen.export.edge import KEYS as EDGE_KEYS
from xdsgen.model import DEFAULT_CA, DEFAULT_CONNECT_TIMEOUT, Model, format_duration

FAMILIES = ("ipv4", "ipv6")
# xdsgen's default connect timeout in the protobuf form Upstream.connect_timeout has.
DEFAULT_CONNECT_TIMEOUT_TEXT = format_duration(DEFAULT_CONNECT_TIMEOUT)


@dataclass(frozen=True)
class Upstream:
    name: str
    path: str  # inventory key path: upstreams.NAME
    endpoints: tuple[tuple[str, int], ...]  # (host or IP, port)
    connect_timeout: str  # protobuf text: "5s", "0.25s"
    connect_timeout_set: bool  # written in the inventory (not the default)
    tls: bool
    tls_sni: Optional[str] = None
    tls_verify: bool = True
    tls_ca: Optional[str] = None  # CA bundle file when verifying
    tls_ca_set: bool = False  # the inventory names its own CA file
    tls_ca_is_system: bool = True  # the CA file is the system bundle (the default)


@dataclass(frozen=True)
class Route:
    path: str  # http[0].routes[1]
    match: str  # "prefix" or "path"
    value: str
    upstream: Optional[str]  # None: a redirect to https
    rewrite: Optional[str]
    websocket: bool
    timeout: Optional[str]  # protobuf text
    https_redirect: bool
    redirect_port: Optional[int]


@dataclass(frozen=True)
class VirtualHost:
    key: str  # stable identity across families (the model's vhost name)
    path: str  # http[0]
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class TlsChain:
    server_names: tuple[str, ...]
    certificate: str


@dataclass(frozen=True)
class Passthrough:
    path: str  # tls_passthrough[0]
    server_names: tuple[str, ...]
    upstream: str


@dataclass(frozen=True)
class Listener:
    name: str
    kind: str  # http, https, tcp, udp
    family: str
    address: str
    port: int
    path: str  # the inventory entry that made it: listen.ipv4.http, tcp[0]
    vhosts: tuple[VirtualHost, ...] = ()
    tls_chains: tuple[TlsChain, ...] = ()
    passthrough: tuple[Passthrough, ...] = ()
    upstream: Optional[str] = None  # tcp/udp


@dataclass(frozen=True)
class Certificate:
    name: str
    path: str  # certificates.NAME
    cert: str
    key: str


@dataclass(frozen=True)
class EnvoySettings:
    envoy_dir: str  # the config directory as Envoy sees it
    admin: str  # unix:PATH or HOST:PORT
    admin_is_unix: bool
    node_id: str
    access_log: Optional[str]
    max_connections: int
    explicit: frozenset[str]  # keys of the inventory's envoy section that were written


@dataclass(frozen=True)
class Source:
    inventory_path: str
    model: Model
    envoy: EnvoySettings
    families: tuple[str, ...]  # the families listen names, sorted
    addresses: dict[str, str]  # family -> listen address
    listeners: tuple[Listener, ...]
    upstreams: dict[str, Upstream]
    certificates: dict[str, Certificate]  # only those a listener uses
    unknown_keys: tuple[str, ...]  # inventory keys no exporter knows (newer features)
    # Who may reach what (issue 14): each exporter says what it carries of these.
    access_keys: tuple[str, ...] = ()
    basic_files: dict[str, str] = field(default_factory=dict)  # auth name -> htpasswd file


def load(path: str) -> Source:
    """Load and check the inventory (InventoryError when invalid), then build the views."""
    from xdsgen import inventory as inventory_mod
    from xdsgen.pipeline import load_model

    model = load_model(path)
    data = inventory_mod.load(path).data  # valid: load_model just read it
    return _build(path, model, data)


def _build(path: str, model: Model, data: dict[str, Any]) -> Source:
    envoy_section = data.get("envoy") or {}
    envoy = EnvoySettings(
        envoy_dir=model.envoy.envoy_dir,
        admin=str(model.envoy.admin),
        admin_is_unix=model.envoy.admin.is_unix,
        node_id=model.envoy.node_id,
        access_log=model.envoy.access_log,
        max_connections=model.envoy.max_connections,
        explicit=frozenset(envoy_section),
    )
    upstreams = {}
    for cluster in model.clusters:
        if cluster.derived_from is not None:
            continue  # an auth service or a PROXY protocol copy (access: not exported yet)
        spec = data["upstreams"][cluster.name]
        tls_spec = spec.get("tls") if isinstance(spec, dict) else None
        upstreams[cluster.name] = Upstream(
            name=cluster.name,
            path=f"upstreams.{cluster.name}",
            endpoints=tuple((e.host, e.port) for e in cluster.endpoints),
            connect_timeout=cluster.connect_timeout,
            connect_timeout_set=isinstance(spec, dict) and "connect_timeout" in spec,
            tls=cluster.tls is not None,
            tls_sni=cluster.tls.sni if cluster.tls else None,
            tls_verify=cluster.tls.verify if cluster.tls else True,
            tls_ca=cluster.tls.ca if cluster.tls else None,
            tls_ca_set=bool(tls_spec and "ca" in tls_spec),
            tls_ca_is_system=cluster.tls is None or cluster.tls.ca in (None, DEFAULT_CA),
        )
    listeners = tuple(_listener(model, data, item) for item in model.listeners)
    used = {chain.certificate for item in listeners for chain in item.tls_chains}
    certificates = {
        s.name: Certificate(s.name, f"certificates.{s.name}", s.cert, s.key)
        for s in model.secrets
        if s.name in used
    }
    return Source(
        inventory_path=path,
        model=model,
        envoy=envoy,
        families=tuple(sorted(data["listen"])),
        addresses={family: spec["address"] for family, spec in data["listen"].items()},
        listeners=listeners,
        upstreams=upstreams,
        certificates=certificates,
        unknown_keys=tuple(unknown_keys(data)),
        access_keys=tuple(access_keys(data)),
        basic_files={
            name: str(spec["basic"])
            for name, spec in (data.get("auth") or {}).items()
            if isinstance(spec, dict) and "basic" in spec
        },
    )


_VHOST_INDEX = re.compile(r"^vhost([0-9]+)_")


def _listener(model: Model, data: dict[str, Any], item: Any) -> Listener:
    common = {
        "name": item.name,
        "kind": item.kind,
        "family": item.family,
        "address": item.address,
        "port": item.port,
    }
    if item.kind in ("tcp", "udp"):
        index = next(
            i
            for i, entry in enumerate(data.get(item.kind) or [])
            if entry["port"] == item.port
            and item.family in entry.get("families", FAMILIES)
            and entry["upstream"] == _upstream_of(model, item.cluster)
        )
        return Listener(
            **common, path=f"{item.kind}[{index}]", upstream=_upstream_of(model, item.cluster)
        )
    vhosts: tuple[VirtualHost, ...] = ()
    if item.route_config:
        rc = next(r for r in model.route_configs if r.name == item.route_config)
        vhosts = tuple(_vhost(vh) for vh in rc.virtual_hosts)
    pass_index = re.compile(r"_pass_([0-9]+)$")
    passthrough = []
    for chain in item.passthrough:
        match = pass_index.search(chain.name)
        where = f"tls_passthrough[{match.group(1)}]" if match else "tls_passthrough"
        passthrough.append(
            Passthrough(where, chain.server_names, _upstream_of(model, chain.cluster))
        )
    return Listener(
        **common,
        path=f"listen.{item.family}.{item.kind}",
        vhosts=vhosts,
        tls_chains=tuple(
            TlsChain(chain.server_names, chain.secret)
            for chain in item.http_chains
            if chain.secret is not None
        ),
        passthrough=tuple(passthrough),
    )


def _upstream_of(model: Model, cluster: Any) -> Any:
    """The inventory's upstream behind a cluster (a PROXY protocol copy is its upstream's)."""
    found = next((c for c in model.clusters if c.name == cluster), None)
    return found.derived_from if found is not None and found.proxy_protocol else cluster


def _vhost(vh: Any) -> VirtualHost:
    match = _VHOST_INDEX.match(vh.name)
    where = f"http[{match.group(1)}]" if match else "http"
    routes = []
    for route in vh.routes:
        route_path = f"{where}.routes[{route.name}]" if route.name.isdigit() else where
        routes.append(
            Route(
                path=route_path,
                match=route.match,
                value=route.value,
                upstream=route.cluster,
                rewrite=route.prefix_rewrite,
                websocket=route.websocket,
                timeout=route.timeout,
                https_redirect=route.https_redirect,
                redirect_port=route.redirect_port,
            )
        )
    return VirtualHost(key=vh.name, path=where, domains=vh.domains, routes=tuple(routes))


# --------------------------------------------------------------------------- rendering


def render_for_directory(
    source: Source,
    mount_dir: str,
    certificate_dirs: dict[str, str],
    ca_files: Optional[dict[str, str]] = None,
    admin_socket: Optional[str] = None,
) -> dict[str, str]:
    """The xDS files and the bootstrap for an Envoy that reads them from `mount_dir`, a
    directory whose `..data` symlink is swapped (a ConfigMap volume), with each certificate
    in certificate_dirs[name]/tls.crt and tls.key (a kubernetes.io/tls Secret volume) and
    each upstream's own CA bundle at ca_files[upstream].

    Every path_config_source gets watched_directory = mount_dir; the result is parsed back
    and checked for it (render's own verify covers the rest)."""
    from xdsgen.render import render, render_bootstrap

    model = source.model.with_config_dir(mount_dir, envoy_dir=mount_dir)
    model = model.with_watched_directory(mount_dir)
    if admin_socket is not None:
        model = model.with_admin_socket(admin_socket)
    model = replace(
        model,
        secrets=tuple(
            replace(
                secret,
                cert=f"{certificate_dirs[secret.name]}/tls.crt",
                key=f"{certificate_dirs[secret.name]}/tls.key",
            )
            for secret in model.secrets
            if secret.name in certificate_dirs
        ),
    )
    ca_files = ca_files or {}
    model = replace(
        model,
        clusters=tuple(
            replace(c, tls=replace(c.tls, ca=ca_files[c.name]))
            if c.tls is not None and c.name in ca_files
            else c
            for c in model.clusters
        ),
    )
    files = dict(render(model).files)
    files["bootstrap.yaml"] = render_bootstrap(model)
    _check_watched(files, mount_dir)
    return files


def _check_watched(files: dict[str, str], mount_dir: str) -> None:
    from xdsgen.errors import RenderError
    from xdsgen.render import load_yaml

    for name, text in files.items():
        for found in _path_config_sources(load_yaml(text)):
            watched = (found.get("watched_directory") or {}).get("path")
            if watched != mount_dir or not str(found.get("path", "")).startswith(mount_dir):
                raise RenderError(
                    f"{name}: a path_config_source is not watched through {mount_dir} "
                    "(an xdsgen bug, please report it; nothing was written)"
                )


def _path_config_sources(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "path_config_source" and isinstance(value, dict):
                found.append(value)
            else:
                found.extend(_path_config_sources(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_path_config_sources(value))
    return found


# --------------------------------------------------------------------------- coverage

# Every inventory key an exporter reads or knowingly leaves out. A key outside this list
# comes from a feature newer than the exporters: it is reported, never silently dropped.
_KNOWN = frozenset(
    {
        "version",
        "envoy",
        *(
            f"envoy.{k}"
            for k in (
                "config_dir",
                "container_config_dir",
                "admin",
                "admin_allow_remote",
                "access_log",
                "node_id",
                "max_connections",
                "layout",  # directory swaps are how a ConfigMap volume works anyway
            )
        ),
        # k8s renders the model, patches merged; gateway-api names each one it cannot carry.
        "patches",
        "patches[]",
        *(
            f"patches[].{k}"
            for k in ("cluster", "listener", "connection_manager", "route_config", "vhost", "route")
        ),
        "listen",
        "listen.*",
        "listen.*.address",
        "listen.*.http",
        "listen.*.https",
        "upstreams",
        "upstreams.*",
        "upstreams.*.endpoints",
        "upstreams.*.endpoints[]",
        "upstreams.*.connect_timeout",
        "upstreams.*.tls",
        "upstreams.*.tls.sni",
        "upstreams.*.tls.verify",
        "upstreams.*.tls.ca",
        "certificates",
        "certificates.*",
        "certificates.*.cert",
        "certificates.*.key",
        "http",
        "http[]",
        *(f"http[].{k}" for k in ("domains", "tls", "redirect_to_https", "families", "routes")),
        "http[].domains[]",
        "http[].families[]",
        "http[].routes[]",
        *(
            f"http[].routes[].{k}"
            for k in ("prefix", "path", "upstream", "rewrite", "websocket", "timeout")
        ),
        *(
            f"{section}{suffix}"
            for section, keys in (
                ("tls_passthrough", ("sni", "upstream", "families")),
                ("tcp", ("port", "upstream", "families")),
                ("udp", ("port", "upstream", "families")),
            )
            for suffix in ("", "[]", *(f"[].{k}" for k in keys), *(f"[].{k}[]" for k in keys))
        ),
        *EDGE_KEYS,
    }
)
# Access (issue 14): known, and reported by each exporter as far as it cannot carry them.
ACCESS_TOP = ("networks", "auth", "trusted_proxies")
ACCESS_KEYS = frozenset(
    {
        *ACCESS_TOP,
        "http[].allow",
        "http[].auth",
        "http[].hsts",
        "http[].security_headers",
        "http[].headers",
        "http[].routes[].allow",
        "http[].routes[].auth",
        "http[].routes[].headers",
        *(
            f"{section}[].{key}"
            for section in ("tcp", "tls_passthrough")
            for key in ("allow", "proxy_protocol")
        ),
        "udp[].allow",
    }
)
_NAMED = ("listen", "upstreams", "certificates")  # mappings whose keys the person chooses
_OPAQUE = ("patches[].merge",)  # Envoy's own config, carried whole


def unknown_keys(data: Any) -> list[str]:
    """Key paths (http[0].routes[1].allow) of the inventory that no exporter knows."""
    found: list[str] = []

    def walk(node: Any, pattern: str, where: str) -> None:
        if pattern in _OPAQUE:
            return
        if pattern in ACCESS_KEYS:
            return  # access_keys() lists these
        if pattern and pattern not in _KNOWN:
            found.append(where)
            return
        if isinstance(node, dict):
            for key, value in node.items():
                named = pattern in _NAMED
                sub = f"{pattern}.*" if named else (f"{pattern}.{key}" if pattern else str(key))
                walk(value, sub, f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pattern}[]", f"{where}[{index}]")

    walk(data, "", "")
    return found


def access_keys(data: Any) -> list[str]:
    """Key paths (http[0].routes[1].allow, auth.sso) of the inventory's access settings."""
    found: list[str] = []
    for key in ACCESS_TOP:
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, dict):
            found += [f"{key}.{name}" for name in value]
        elif value is not None:
            found.append(key)
    for section in ("http", "tcp", "udp", "tls_passthrough"):
        for index, item in enumerate(data.get(section) or [] if isinstance(data, dict) else []):
            if not isinstance(item, dict):
                continue
            for key in sorted(item):
                if f"{section}[].{key}" in ACCESS_KEYS:
                    found.append(f"{section}[{index}].{key}")
            for r_index, route in enumerate(item.get("routes") or [] if section == "http" else []):
                for key in sorted(route) if isinstance(route, dict) else []:
                    if f"http[].routes[].{key}" in ACCESS_KEYS:
                        found.append(f"http[{index}].routes[{r_index}].{key}")
    return found
