"""The normalized model: every decision (names, defaults, ordering, durations) is made here.

Templates only loop over these frozen dataclasses and print their fields.  `build` also
runs the meaning checks the schema cannot express, collecting every problem with its
position before it gives up.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import stat
import time
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Union

from xdsgen import certificates as certificates_mod
from xdsgen.certificates import Certificate
from xdsgen.conventions import ADMIN_SOCKET
from xdsgen.errors import InventoryError, Problem
from xdsgen.hints import endpoint_hint, endpoint_mistake, inline_upstream_hint
from xdsgen.inventory import Inventory, PathKey
from xdsgen.schema_errors import suggest

FAMILIES = ("ipv4", "ipv6")
DEFAULT_CONFIG_DIR = "/etc/envoy"
ADMIN_SOCKET_MODE = 0o660  # Envoy's user and group only
# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
DEFAULT_ACCESS_LOG = "/dev/stdout"
DEFAULT_CONNECT_TIMEOUT = "5s"
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"
CDS_FILE = "cds.yaml"
LDS_FILE = "lds.yaml"

_HOST_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME_RE = re.compile(rf"^{_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
_ENDPOINT_RE = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})$")
_DURATION_RE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?(ms|s|m|h)$")


# --------------------------------------------------------------------------- dataclasses


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


@dataclass(frozen=True)
class Route:
    name: str
    match: str  # "prefix" or "path"
    value: str
    cluster: Optional[str]  # None for a redirect
    prefix_rewrite: Optional[str]
    websocket: bool
    timeout: Optional[str]
    https_redirect: bool = False
    redirect_port: Optional[int] = None  # None: leave the port out (https default 443)


@dataclass(frozen=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class RouteConfig:
    name: str  # same as its listener: http_ipv4, https_ipv6
    virtual_hosts: tuple[VirtualHost, ...]

    @property
    def file_name(self) -> str:
        return f"rds_{self.name}.yaml"


@dataclass(frozen=True)
class Secret:
    name: str
    cert: str
    key: str

    @property
    def file_name(self) -> str:
        return f"sds_{self.name}.yaml"


@dataclass(frozen=True)
class HttpChain:
    """A filter chain running the HTTP connection manager: the only one of an http listener,
    or on an https listener one per certificate, matched by SNI."""

    name: str
    server_names: tuple[str, ...] = ()
    secret: Optional[str] = None


@dataclass(frozen=True)
class PassthroughChain:
    name: str
    server_names: tuple[str, ...]
    cluster: str
    stat_prefix: str


@dataclass(frozen=True)
class Listener:
    name: str
    kind: str  # http, https, tcp, udp
    family: str
    address: str
    port: int
    stat_prefix: str
    route_config: Optional[str] = None  # http/https
    cluster: Optional[str] = None  # tcp/udp
    http_chains: tuple[HttpChain, ...] = ()
    passthrough: tuple[PassthroughChain, ...] = ()

    @property
    def protocol(self) -> str:
        return "UDP" if self.kind == "udp" else "TCP"


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


def parse_admin(text: str) -> AdminAddress:
    """`unix:/path`, `/path` or HOST:PORT with an IP address; ValueError says what is wrong."""
    if text.startswith("unix:"):
        text = text[len("unix:") :]
        if not text.startswith("/"):
            raise ValueError("a Unix socket needs an absolute path: unix:/run/envoy/admin.sock")
    if text.startswith("/"):
        return AdminAddress(path=text)
    endpoint = parse_endpoint(text)
    if isinstance(endpoint, str):
        raise ValueError(endpoint)
    if not is_ip(endpoint.host):
        raise ValueError("the admin address must be an IP address or a Unix socket path")
    return AdminAddress(host=endpoint.host, port=endpoint.port)


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
    # Set for a Kubernetes ConfigMap volume: kubelet swaps a `..data` symlink in this
    # directory and never moves the files themselves, so Envoy must watch the directory.
    watched_directory: Optional[str] = None
    # The admin socket as Envoy sees it ("" for TCP): in Docker, under the mount point.
    admin_envoy_path: str = ""
    admin_socket_mode: int = ADMIN_SOCKET_MODE
    # The default socket lives in the config directory and moves with it.
    admin_in_config_dir: bool = False

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
    certificates: tuple[Certificate, ...] = field(default=(), compare=False)

    def with_config_dir(self, config_dir: str, envoy_dir: Optional[str] = None) -> Model:
        """The same model writing to another directory (render -o, apply --config-dir)."""
        config_dir = os.path.abspath(config_dir)
        if envoy_dir is None:
            envoy_dir = self.envoy.envoy_dir if self.envoy.envoy_dir_fixed else config_dir
        envoy = replace(self.envoy, config_dir=config_dir, envoy_dir=envoy_dir)
        if envoy.admin_in_config_dir:
            envoy = replace(
                envoy,
                admin=AdminAddress(path=posixpath.join(config_dir, ADMIN_SOCKET)),
                admin_envoy_path=posixpath.join(envoy_dir, ADMIN_SOCKET),
            )
        # ACME certificates without cert/key live in the config directory: they move with it.
        moved = {c.name for c in self.certificates if c.default_paths}
        secrets = tuple(
            replace(s, cert=chain, key=key) if s.name in moved else s
            for s in self.secrets
            for chain, key in [certificates_mod.default_paths(envoy_dir, s.name)]
        )
        return replace(
            self,
            envoy=envoy,
            secrets=secrets,
            certificates=certificates_mod.relocate(self.certificates, config_dir),
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
        return posixpath.join(self.envoy.envoy_dir, file_name)

    @property
    def cds_path(self) -> str:
        return self.envoy_path(CDS_FILE)

    @property
    def lds_path(self) -> str:
        return self.envoy_path(LDS_FILE)

    def route_path(self, route_config: str) -> str:
        return self.envoy_path(f"rds_{route_config}.yaml")

    def secret_path(self, secret: str) -> str:
        return self.envoy_path(f"sds_{secret}.yaml")

    def cluster_names(self) -> set[str]:
        return {c.name for c in self.clusters}

    def used_clusters(self) -> set[str]:
        used = {listener.cluster for listener in self.listeners if listener.cluster}
        for listener in self.listeners:
            used.update(chain.cluster for chain in listener.passthrough)
        for rc in self.route_configs:
            for vh in rc.virtual_hosts:
                used.update(r.cluster for r in vh.routes if r.cluster)
        return used

    def secret_files(self) -> set[str]:
        return {path for s in self.secrets for path in (s.cert, s.key)}


# --------------------------------------------------------------------------- helpers


def format_duration(text: str) -> str:
    """Turn an inventory duration (250ms, 2s, 5m, 1h) into protobuf's seconds form."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(text)
    whole, fraction, unit = match.groups()
    # Decimal arithmetic in nanoseconds keeps 0.1s exact.
    nanos = int(whole) * 10**9 + int((fraction or "0").ljust(9, "0")[:9])
    nanos *= {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[unit]
    nanos //= 1000
    seconds, rest = divmod(nanos, 10**9)
    if rest == 0:
        return f"{seconds}s"
    return f"{seconds}.{rest:09d}".rstrip("0") + "s"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_endpoint(text: str) -> Union[Endpoint, str]:
    """Endpoint, or a message saying what is wrong with the host:port text."""
    if endpoint_mistake(text):  # a URL, a path, a port out of range: xdsgen/hints.py
        return str(endpoint_mistake(text))
    match = _ENDPOINT_RE.match(text)
    if not match:
        if text.count(":") > 1 and not text.startswith("["):
            host, port_text = text.rsplit(":", 1)
            return f"IPv6 address must be in brackets: [{host}]:{port_text}"
        return f"malformed host:port {text!r}"
    port = int(match.group("port"))
    if not 1 <= port <= 65535:
        return f"port {port} is outside 1-65535"
    if match.group("v6") is not None:
        if "%" in match.group("v6"):
            return f"[{match.group('v6')}]: IPv6 zone ids (%eth0) are not supported by Envoy"
        try:
            address = ipaddress.IPv6Address(match.group("v6"))
        except ValueError:
            return f"{match.group('v6')!r} in brackets is not an IPv6 address"
        return Endpoint(str(address), port)
    host = match.group("host")
    if is_ip(host):
        return Endpoint(str(ipaddress.ip_address(host)), port)
    if re.fullmatch(r"[0-9.]+", host):
        return f"{host!r} is not a valid IPv4 address"
    if not _HOSTNAME_RE.match(host) or len(host) > 253:
        return f"{host!r} is not a valid host name"
    return Endpoint(host.rstrip(".").lower(), port)


def domain_problem(domain: str) -> Optional[str]:
    if domain == "*":
        return None
    body = domain[2:] if domain.startswith("*.") else domain
    if "*" in body:
        return f'{domain!r}: a wildcard must be "*" alone or lead as "*.example.com"'
    if body.endswith(".") and _HOSTNAME_RE.match(body):
        return f"{domain!r} ends with a dot: write it without the trailing dot"
    if not body.isascii():
        return (
            f"{domain!r} is not a valid host name: write international names in "
            "their xn-- (punycode) form"
        )
    if not _HOSTNAME_RE.match(body) or body.endswith("."):
        return f"{domain!r} is not a valid host name (letters, digits, - and dots)"
    return None


# --------------------------------------------------------------------------- build


class _Builder:
    def __init__(self, inventory: Inventory, check_files: bool):
        self.inv = inventory
        self.data = inventory.data
        self.check_files = check_files
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.certificates: tuple[Certificate, ...] = ()

    def error(self, path: PathKey, message: str, hint: Optional[str] = None) -> None:
        self.errors.append(self.inv.problem(path, message, hint))

    def warn(self, path: PathKey, message: str, hint: Optional[str] = None) -> None:
        self.warnings.append(self.inv.problem(path, message, hint, severity="warning"))

    # ---- envoy

    def envoy(self) -> Envoy:
        section = self.data.get("envoy", {})
        access_log = section.get("access_log", DEFAULT_ACCESS_LOG)
        if access_log is False or access_log == "off":
            access_log = None
        else:
            self.require_absolute(("envoy", "access_log"), access_log)
        if "container_config_dir" in section:
            self.require_absolute(
                ("envoy", "container_config_dir"), section["container_config_dir"]
            )
        config_dir = section.get("config_dir", DEFAULT_CONFIG_DIR)
        if not os.path.isabs(config_dir):
            config_dir = os.path.normpath(os.path.join(self.inv.base_dir, config_dir))
        container_dir = section.get("container_config_dir")
        envoy_dir = container_dir or config_dir
        admin, envoy_path = self.admin(section, config_dir, envoy_dir)
        return Envoy(
            config_dir=config_dir,
            envoy_dir=envoy_dir,
            envoy_dir_fixed=container_dir is not None,
            admin=admin,
            admin_envoy_path=envoy_path,
            admin_in_config_dir="admin" not in section,
            access_log=access_log,
            node_id=section.get("node_id", "xdsgen"),
            max_connections=section.get("max_connections", DEFAULT_MAX_CONNECTIONS),
        )

    def admin(
        self, section: dict[str, Any], config_dir: str, envoy_dir: str
    ) -> tuple[AdminAddress, str]:
        """The admin address as xdsgen reaches it, and the socket path as Envoy sees it."""
        path: PathKey = ("envoy", "admin")
        if "admin" not in section:
            own = posixpath.join(config_dir, ADMIN_SOCKET)
            seen = posixpath.join(envoy_dir, ADMIN_SOCKET)
            for socket_path in dict.fromkeys((own, seen)):
                self.check_socket_path(("envoy", "config_dir"), socket_path)
            return AdminAddress(path=own), seen
        try:
            admin = parse_admin(section["admin"])
        except ValueError as exc:
            self.error(
                path,
                str(exc),
                endpoint_hint(
                    section["admin"],
                    "e.g. 127.0.0.1:15001, or leave envoy.admin out for the default Unix socket",
                ),
            )
            return AdminAddress(host="127.0.0.1", port=15001), ""
        if admin.is_unix:
            self.check_socket_path(path, admin.path)
            seen = admin.path
            if envoy_dir != config_dir and _within_dir(admin.path, config_dir):
                seen = posixpath.join(envoy_dir, posixpath.relpath(admin.path, config_dir))
                self.check_socket_path(path, seen)
            return admin, seen
        ip = ipaddress.ip_address(admin.host)
        if not ip.is_loopback:
            if section.get("admin_allow_remote") is True:
                self.warn(
                    path,
                    f"Envoy's admin interface listens on {admin.host}, beyond loopback: anyone who "
                    "reaches it can read the whole config and stop Envoy (/quitquitquit)",
                )
            else:
                self.error(
                    path,
                    f"admin address {admin.host} is not loopback: it would expose /quitquitquit "
                    "and /config_dump",
                    "use 127.0.0.1 or ::1, or set envoy.admin_allow_remote: true",
                )
        else:
            self.warn(
                path,
                f"the admin listens on TCP {admin}: every local program, and an upstream that "
                "resolves to it, can reach /quitquitquit and /config_dump",
                "leave envoy.admin out for the default Unix socket in the config directory, "
                "which no cluster can dial",
            )
        return admin, ""

    def check_socket_path(self, path: PathKey, socket_path: str) -> None:
        if len(socket_path.encode("utf-8")) > MAX_SOCKET_PATH_BYTES:
            self.error(
                path,
                f"the admin socket path {socket_path} is longer than "
                f"{MAX_SOCKET_PATH_BYTES} bytes, which Unix sockets cannot hold",
                "use a shorter config_dir, or set envoy.admin to a short socket path",
            )

    def require_absolute(self, path: PathKey, file_path: str) -> bool:
        # Envoy resolves a relative path from its own working directory, which is not ours.
        if file_path.startswith("/"):
            return True
        self.error(
            path,
            f"{file_path!r} is not an absolute path",
            "Envoy reads it from its own working directory; write /full/path",
        )
        return False

    # ---- listen

    def listen(self) -> dict[str, dict[str, Any]]:
        families: dict[str, dict[str, Any]] = {}
        for family, spec in sorted(self.data["listen"].items()):
            address = spec["address"]
            try:
                parsed = ipaddress.ip_address(address)
            except ValueError:
                self.error(
                    ("listen", family, "address"),
                    f"{address!r} is not an IP address",
                    "0.0.0.0 or :: listen on every address",
                )
                continue
            if "%" in address:
                self.error(
                    ("listen", family, "address"),
                    f"{address}: IPv6 zone ids (%eth0) are not supported by Envoy",
                )
                continue
            want = 4 if family == "ipv4" else 6
            if parsed.version != want:
                self.error(
                    ("listen", family, "address"),
                    f"{address} is an IPv{parsed.version} address in the {family} family",
                )
                continue
            families[family] = {**spec, "address": str(parsed)}
        return families

    def families_of(self, item: dict[str, Any], path: PathKey, listen: dict[str, Any]) -> list[str]:
        wanted = item.get("families")
        if wanted is None:
            return sorted(listen)
        for index, family in enumerate(wanted):
            if family not in self.data["listen"]:
                self.error(
                    (*path, "families", index),
                    f"family {family!r} has no entry in listen",
                    f"add listen.{family}, or remove it here",
                )
        return sorted(f for f in wanted if f in listen)

    # ---- upstreams

    def clusters(self) -> dict[str, Cluster]:
        clusters: dict[str, Cluster] = {}
        lowered: dict[str, str] = {}
        for name, spec in self.data["upstreams"].items():
            path: PathKey = ("upstreams", name)
            if name.lower() in lowered:
                self.error(
                    path,
                    f"upstream {name!r} differs from {lowered[name.lower()]!r} only in case",
                    "Envoy stats and people confuse them; rename one",
                )
            lowered[name.lower()] = name
            if isinstance(spec, str):
                spec = {"endpoints": [spec]}
                endpoint_paths: list[PathKey] = [path]
            else:
                endpoint_paths = [(*path, "endpoints", i) for i in range(len(spec["endpoints"]))]
            endpoints: list[Endpoint] = []
            for text, endpoint_path in zip(spec["endpoints"], endpoint_paths):
                parsed = parse_endpoint(text)
                if isinstance(parsed, str):
                    self.error(endpoint_path, parsed, endpoint_hint(text))
                elif parsed in endpoints:
                    self.error(
                        endpoint_path,
                        f"{text!r} is listed twice (as {parsed.host}:{parsed.port})",
                        "list each endpoint once",
                    )
                else:
                    endpoints.append(parsed)
            if not endpoints:
                continue
            kinds = {is_ip(e.host) for e in endpoints}
            if len(kinds) > 1:
                self.error(
                    (*path, "endpoints"),
                    "mixes IP addresses and host names",
                    "Envoy resolves either all endpoints by DNS or none; split into two upstreams",
                )
            tls_spec = spec.get("tls")
            tls = None
            if tls_spec is not None:
                verify = tls_spec.get("verify", True)
                sni = tls_spec.get("sni")
                if sni is not None and domain_problem(sni):
                    self.error((*path, "tls", "sni"), str(domain_problem(sni)))
                elif sni is not None and "*" in sni:
                    self.error(
                        (*path, "tls", "sni"),
                        f"SNI {sni!r} is a wildcard",
                        "send the upstream's real host name",
                    )
                if not verify:
                    self.warn(
                        (*path, "tls", "verify"),
                        "upstream certificate verification is off: anyone on the path to "
                        f"{endpoints[0].host} can read and change the traffic",
                        "set tls.ca to the device's CA (or its self-signed certificate) instead",
                    )
                elif "ca" in tls_spec:
                    self.require_absolute((*path, "tls", "ca"), tls_spec["ca"])
                hostnames = sorted({e.host for e in endpoints if not is_ip(e.host)})
                if sni is None and len(hostnames) == 1:
                    # Without SNI the certificate's names are never checked: any certificate
                    # the CA signed would do. The one host name dialled is the name to expect.
                    sni = hostnames[0]
                if verify and sni is None:
                    self.error(
                        (*path, "tls"),
                        "cannot verify the upstream's certificate without a name",
                        "set tls.sni to the name in its certificate, or verify: false",
                    )
                tls = UpstreamTls(
                    sni=sni, verify=verify, ca=tls_spec.get("ca", DEFAULT_CA) if verify else None
                )
            clusters[name] = Cluster(
                name=name,
                discovery="STATIC" if all(is_ip(e.host) for e in endpoints) else "STRICT_DNS",
                endpoints=tuple(endpoints),
                connect_timeout=format_duration(
                    spec.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
                ),
                tls=tls,
                dns_lookup_family=None if all(is_ip(e.host) for e in endpoints) else "V4_PREFERRED",
            )
        return clusters

    def check_upstream(self, name: str, path: PathKey) -> bool:
        if name in self.data["upstreams"]:
            return True
        hint = inline_upstream_hint(name) or suggest(name, list(self.data["upstreams"]))
        self.error(path, f"unknown upstream {name!r}", hint)
        return False

    # ---- certificates

    def secrets(self, envoy: Envoy) -> dict[str, Secret]:
        paths, self.certificates = certificates_mod.build(self, envoy.config_dir, envoy.envoy_dir)
        return {name: Secret(name=name, cert=cert, key=key) for name, (cert, key) in paths.items()}

    def check_file(self, path: PathKey, file_path: str, is_key: bool) -> None:
        problem = None
        try:
            info = os.stat(file_path)
            if not stat.S_ISREG(info.st_mode):
                problem = f"{file_path} is not a regular file"
            elif not os.access(file_path, os.R_OK):
                problem = f"{file_path} is not readable"
        except FileNotFoundError:
            problem = f"{file_path} does not exist"
        except OSError as exc:
            problem = f"{file_path}: {exc.strerror}"
        if problem:
            if self.check_files:
                self.error(path, problem, "Envoy would refuse the listener; fix the path")
            else:
                self.warn(path, problem, "fine if you render for another machine")
            return
        if is_key and info.st_mode & stat.S_IROTH:
            self.warn(path, f"private key {file_path} is readable by every user", "chmod o-r it")

    # ---- everything

    def build(self) -> Model:
        envoy = self.envoy()
        listen = self.listen()
        clusters = self.clusters()
        secrets = self.secrets(envoy)
        vhosts = self.data.get("http") or []
        passthroughs = self.data.get("tls_passthrough") or []

        listeners: list[Listener] = []
        route_configs: list[RouteConfig] = []
        tcp_ports: dict[tuple[str, int], tuple[PathKey, str]] = {}
        udp_ports: dict[tuple[str, int], tuple[PathKey, str]] = {}

        def claim(table: dict, family: str, port: int, path: PathKey, what: str) -> None:
            if (family, port) in table:
                other_path, other = table[(family, port)]
                line = self.inv.locate(other_path)[0]
                self.error(
                    path,
                    f"{family} port {port} is already used by {other} (line {line})",
                    "every listener of a family needs its own port",
                )
            else:
                table[(family, port)] = (path, what)

        for family, spec in listen.items():
            for kind in ("http", "https"):
                if kind in spec:
                    claim(
                        tcp_ports,
                        family,
                        spec[kind],
                        ("listen", family, kind),
                        f"the {kind} listener",
                    )

        # Validate vhosts once, independent of family.
        for index, vhost in enumerate(vhosts):
            path: PathKey = ("http", index)
            own: dict[str, int] = {}
            for d_index, domain in enumerate(vhost["domains"]):
                problem = domain_problem(domain)
                if problem:
                    self.error((*path, "domains", d_index), problem)
                elif domain.lower() in own:
                    # Envoy refuses the whole route configuration (names are case-insensitive).
                    self.error(
                        (*path, "domains", d_index),
                        f"domain {domain!r} is listed twice in this vhost (also "
                        f"domains[{own[domain.lower()]}])",
                        "list each name once",
                    )
                own.setdefault(domain.lower(), d_index)
            if vhost.get("tls") is not None and vhost["tls"] not in (
                self.data.get("certificates") or {}
            ):
                self.error(
                    (*path, "tls"),
                    f"unknown certificate {vhost['tls']!r}",
                    suggest(vhost["tls"], list(self.data.get("certificates") or {}))
                    or "add it under certificates",
                )
            if vhost.get("tls") and vhost["domains"] == ["*"]:
                self.error(
                    (*path, "domains"),
                    "a TLS vhost needs real host names: they are the SNI names of its filter chain",
                )
            elif vhost.get("tls") and "*" in vhost["domains"]:
                self.error(
                    (*path, "domains", vhost["domains"].index("*")),
                    '"*" cannot be a TLS vhost\'s name: its domains are the SNI names of its '
                    'filter chain, and Envoy refuses "*" there',
                    'list the host names; serve "*" in a plain-HTTP vhost',
                )
            if vhost.get("redirect_to_https") and not vhost.get("tls"):
                self.error(
                    (*path, "redirect_to_https"),
                    "redirect_to_https needs tls: there is no https vhost to redirect to",
                )
            earlier: list[tuple[int, str, str]] = []  # (index, prefix or path, value)
            for r_index, route in enumerate(vhost["routes"]):
                r_path: PathKey = (*path, "routes", r_index)
                self.check_upstream(route["upstream"], (*r_path, "upstream"))
                for key in ("prefix", "path", "rewrite"):
                    if key in route and not route[key].startswith("/"):
                        self.error(
                            (*r_path, key), f"{key} must start with '/'", f"write /{route[key]}"
                        )
                    if key in route and re.search(r"[\x00-\x20\x7f]", route[key]):
                        self.error((*r_path, key), f"{key} contains spaces or control characters")
                kind = "prefix" if "prefix" in route else "path"
                value = route[kind]
                for e_index, e_kind, e_value in earlier:
                    # An earlier prefix that starts this route's value, or the same exact path,
                    # takes every request this route could match (first match wins).
                    if (e_kind == "prefix" and value.startswith(e_value)) or (
                        e_kind == kind == "path" and e_value == value
                    ):
                        self.warn(
                            r_path,
                            f"this route can never match: routes[{e_index}] ({e_kind} {e_value}) "
                            "matches first",
                            "move it above the catch-all route"
                            if e_value == "/"
                            else f"move it above routes[{e_index}]",
                        )
                        break
                earlier.append((r_index, kind, value))
        for index, item in enumerate(passthroughs):
            self.check_upstream(item["upstream"], ("tls_passthrough", index, "upstream"))
            for d_index, domain in enumerate(item["sni"]):
                problem = domain_problem(domain)
                if problem:
                    self.error(("tls_passthrough", index, "sni", d_index), problem)
                elif domain == "*":
                    self.error(
                        ("tls_passthrough", index, "sni", d_index),
                        'passthrough needs real SNI names, not "*"',
                    )

        for family, spec in listen.items():
            address = spec["address"]
            family_vhosts = [
                (i, v)
                for i, v in enumerate(vhosts)
                if family in self.families_of(v, ("http", i), listen)
            ]
            if "http" in spec:
                name = f"http_{family}"
                vhs = tuple(
                    self.virtual_host(i, v, family, spec, for_tls=False) for i, v in family_vhosts
                )
                self.check_domains(name, family_vhosts, tls_only=False)
                route_configs.append(RouteConfig(name=name, virtual_hosts=vhs))
                listeners.append(
                    Listener(
                        name,
                        "http",
                        family,
                        address,
                        spec["http"],
                        name,
                        route_config=name,
                        http_chains=(HttpChain(name=name),),
                    )
                )
            family_passthrough = [
                (i, p)
                for i, p in enumerate(passthroughs)
                if family in self.families_of(p, ("tls_passthrough", i), listen)
            ]
            tls_vhosts = [(i, v) for i, v in family_vhosts if v.get("tls")]
            if "https" in spec:
                name = f"https_{family}"
                vhs = tuple(
                    self.virtual_host(i, v, family, spec, for_tls=True) for i, v in tls_vhosts
                )
                self.check_domains(name, tls_vhosts, tls_only=True)
                chains = self.tls_chains(name, tls_vhosts)
                pass_chains = self.passthrough_chains(name, family_passthrough, tls_vhosts)
                if vhs:
                    route_configs.append(RouteConfig(name=name, virtual_hosts=vhs))
                if chains or pass_chains:
                    listeners.append(
                        Listener(
                            name,
                            "https",
                            family,
                            address,
                            spec["https"],
                            name,
                            route_config=name if vhs else None,
                            http_chains=chains,
                            passthrough=pass_chains,
                        )
                    )
            elif tls_vhosts or family_passthrough:
                what = "TLS vhosts" if tls_vhosts else "tls_passthrough"
                first = (
                    ("http", tls_vhosts[0][0])
                    if tls_vhosts
                    else ("tls_passthrough", family_passthrough[0][0])
                )
                self.warn(
                    first,
                    f"{what} for {family}, but listen.{family} has no https port: "
                    f"not served on {family}",
                )

        for kind, table in (("tcp", tcp_ports), ("udp", udp_ports)):
            for index, item in enumerate(self.data.get(kind) or []):
                path = (kind, index)
                known = self.check_upstream(item["upstream"], (*path, "upstream"))
                for family in self.families_of(item, path, listen):
                    port = item["port"]
                    claim(table, family, port, (*path, "port"), f"{kind}[{index}]")
                    if known:
                        name = f"{kind}_{port}_{family}"
                        listeners.append(
                            Listener(
                                name,
                                kind,
                                family,
                                listen[family]["address"],
                                port,
                                name,
                                cluster=item["upstream"],
                            )
                        )

        self.check_admin_clash(envoy, tcp_ports, clusters)
        if self.errors:
            raise InventoryError(self.errors, self.warnings)
        used_secrets = {c.secret for item in listeners for c in item.http_chains if c.secret}
        return Model(
            envoy=envoy,
            clusters=tuple(sorted(clusters.values(), key=lambda c: c.name)),
            listeners=tuple(sorted(listeners, key=lambda item: item.name)),
            route_configs=tuple(sorted(route_configs, key=lambda r: r.name)),
            secrets=tuple(
                sorted(
                    (s for s in secrets.values() if s.name in used_secrets), key=lambda s: s.name
                )
            ),
            warnings=tuple(sorted(self.warnings)),
            certificates=self.certificates,
        )

    def virtual_host(
        self, index: int, vhost: dict[str, Any], family: str, spec: dict[str, Any], for_tls: bool
    ) -> VirtualHost:
        redirect = bool(vhost.get("redirect_to_https")) and not for_tls and "https" in spec
        routes = []
        if redirect:
            # Every path of the vhost goes to https on this family's port (omitted when 443).
            https_port = spec["https"]
            routes.append(
                Route(
                    name="redirect_to_https",
                    match="prefix",
                    value="/",
                    cluster=None,
                    prefix_rewrite=None,
                    websocket=False,
                    timeout=None,
                    https_redirect=True,
                    redirect_port=None if https_port == 443 else https_port,
                )
            )
        for r_index, route in enumerate([] if redirect else vhost["routes"]):
            match = "prefix" if "prefix" in route else "path"
            timeout = route.get("timeout")
            routes.append(
                Route(
                    name=f"{r_index}",
                    match=match,
                    value=route[match],
                    cluster=route["upstream"],
                    prefix_rewrite=route.get("rewrite"),
                    websocket=bool(route.get("websocket", False)),
                    timeout=format_duration(timeout) if timeout is not None else None,
                )
            )
        return VirtualHost(
            name=f"vhost{index}_{vhost['domains'][0]}".replace("*", "any"),
            domains=tuple(vhost["domains"]),
            routes=tuple(routes),
        )

    def check_domains(
        self, listener: str, vhosts: list[tuple[int, dict[str, Any]]], tls_only: bool
    ) -> None:
        seen: dict[str, int] = {}
        for index, vhost in vhosts:
            for d_index, domain in enumerate(vhost["domains"]):
                key = domain.lower()
                if key in seen and seen[key] != index:
                    self.error(
                        ("http", index, "domains", d_index),
                        f"domain {domain!r} is already served by http[{seen[key]}] on {listener}",
                        "a domain may be in one vhost per listener",
                    )
                seen.setdefault(key, index)

    def tls_chains(
        self, listener: str, vhosts: list[tuple[int, dict[str, Any]]]
    ) -> tuple[HttpChain, ...]:
        by_cert: dict[str, set[str]] = {}  # a set: thousands of vhosts may share one certificate
        for _, vhost in vhosts:
            by_cert.setdefault(vhost["tls"], set()).update(d.lower() for d in vhost["domains"])
        return tuple(
            HttpChain(name=f"{listener}_tls_{cert}", server_names=tuple(sorted(names)), secret=cert)
            for cert, names in sorted(by_cert.items())
        )

    def passthrough_chains(
        self,
        listener: str,
        items: list[tuple[int, dict[str, Any]]],
        tls_vhosts: list[tuple[int, dict[str, Any]]],
    ) -> tuple[PassthroughChain, ...]:
        terminated = {d.lower(): i for i, v in tls_vhosts for d in v["domains"]}
        seen: dict[str, int] = {}
        chains = []
        for index, item in items:
            for d_index, sni in enumerate(item["sni"]):
                path = ("tls_passthrough", index, "sni", d_index)
                if sni.lower() in terminated:
                    self.error(
                        path,
                        f"SNI {sni!r} is both passed through and terminated by "
                        f"http[{terminated[sni.lower()]}]",
                        "Envoy can do only one of them for a name",
                    )
                if sni.lower() in seen and seen[sni.lower()] != index:
                    self.error(
                        path,
                        f"SNI {sni!r} is already passed through by "
                        f"tls_passthrough[{seen[sni.lower()]}]",
                    )
                seen.setdefault(sni.lower(), index)
            server_names = tuple(sorted({s.lower() for s in item["sni"]}))
            chains.append(
                PassthroughChain(
                    # Named by content: editing or removing one entry never renames (and so
                    # never drains) another entry's chain.
                    name=f"{listener}_pass_{server_names[0]}",
                    server_names=server_names,
                    cluster=item["upstream"],
                    stat_prefix=f"{listener}_pass_{item['upstream']}",
                )
            )
        return tuple(chains)

    def check_admin_clash(
        self,
        envoy: Envoy,
        tcp_ports: dict[tuple[str, int], tuple[PathKey, str]],
        clusters: dict[str, Cluster],
    ) -> None:
        """A TCP admin must be out of the proxy's reach: no listener on its port, no
        upstream that dials it, by address or by a name that resolves to it (Envoy maps
        *.localhost to loopback). A Unix socket admin cannot be dialled by a cluster."""
        admin = envoy.admin
        if admin.is_unix:
            return
        admin_family = "ipv6" if ":" in admin.host else "ipv4"
        if (admin_family, admin.port) in tcp_ports:
            path, _ = tcp_ports[(admin_family, admin.port)]
            self.error(
                path,
                f"port {admin.port} is Envoy's admin port (envoy.admin)",
                "pick another port",
            )
        admin_ip = ipaddress.ip_address(admin.host)
        listen_ips = {
            str(ipaddress.ip_address(spec["address"]))
            for spec in self.data["listen"].values()
            if isinstance(spec, dict) and is_ip(str(spec.get("address", "")))
        }

        def reaches_admin(ip_text: str) -> bool:
            ip = ipaddress.ip_address(ip_text)
            if ip == admin_ip:
                return True
            # A connection to 0.0.0.0 or :: goes to this host; an unspecified admin address
            # answers on every local address, the listen addresses and loopback included.
            if ip.is_unspecified and (admin_ip.is_loopback or admin_ip.is_unspecified):
                return ip.version == admin_ip.version
            return (
                admin_ip.is_unspecified
                and ip.version == admin_ip.version
                and (ip.is_loopback or str(ip) in listen_ips)
            )

        suspects = [
            (name, i, endpoint)
            for name, cluster in clusters.items()
            for i, endpoint in enumerate(cluster.endpoints)
            if endpoint.port == admin.port
        ]
        names = {e.host for _, _, e in suspects if not is_ip(e.host)}
        loopback_names = {h for h in names if h == "localhost" or h.endswith(".localhost")}
        resolved = resolve_quickly(names - loopback_names) if names - loopback_names else {}
        for name, i, endpoint in suspects:
            if is_ip(endpoint.host):
                hit = reaches_admin(endpoint.host)
            elif endpoint.host in loopback_names:
                hit = admin_ip.is_loopback or admin_ip.is_unspecified
            else:
                hit = any(is_ip(ip) and reaches_admin(ip) for ip in resolved.get(endpoint.host, ()))
            if not hit:
                continue
            spec = self.data["upstreams"][name]
            path = (
                ("upstreams", name)
                if isinstance(spec, str)
                else ("upstreams", name, "endpoints", i)
            )
            if is_ip(endpoint.host):
                via = ""
            elif endpoint.host in loopback_names:
                via = " (Envoy resolves localhost names to loopback)"
            else:
                via = f" ({endpoint.host} resolves to it)"
            self.error(
                path,
                "points at Envoy's own admin interface"
                f"{via}: it would expose /quitquitquit and /config_dump through the proxy",
                "use another port, or leave envoy.admin out: the default Unix socket cannot be "
                "dialled by a cluster",
            )


def build(inventory: Inventory, check_files: bool = False) -> Model:
    """Build the model or raise InventoryError with every problem found.

    `check_files` makes missing certificate files errors (for `apply`: Envoy would refuse
    the listener); otherwise they are warnings (rendering for another machine is normal).
    """
    from xdsgen.speed import gc_paused

    with gc_paused():
        return _Builder(inventory, check_files).build()


def _within_dir(path: str, directory: str) -> bool:
    return posixpath.commonpath([posixpath.normpath(path), directory]) == directory


def resolve_quickly(hosts: set[str], timeout: float = 2.0) -> dict[str, set[str]]:
    """The addresses each host name resolves to here, within `timeout` in all; a name that
    does not resolve in time is left out (a slow resolver must not hang validate)."""
    import socket
    import threading

    found: dict[str, set[str]] = {}

    def resolve(host: str) -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        found[host] = {str(info[4][0]).split("%")[0] for info in infos}

    threads = [threading.Thread(target=resolve, args=(h,), daemon=True) for h in sorted(hosts)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return dict(found)


def _within(path: str, other: str) -> bool:
    """True when key path `path` is `other` or lies below it."""
    return path == other or (path.startswith(other) and path[len(other)] in ".[")


def meaning_problems(
    inventory: Inventory, check_files: bool, shape_problems: list[Problem]
) -> list[Problem]:
    """The meaning errors of an inventory whose shape is partly wrong, minus those about the
    parts already reported (their values cannot be trusted). Best effort: if the checks
    trip over the wrong shape, the shape errors alone are reported."""
    try:
        build(inventory, check_files=check_files)
    except InventoryError as exc:
        found = exc.problems
    except Exception:  # the wrong shape broke an assumption: report what the schema said
        return []
    else:
        return []
    broken = [p.path for p in shape_problems]
    return [
        p
        for p in found
        if p not in shape_problems
        and not any(_within(p.path, b) or _within(b, p.path) for b in broken if b)
        and "" not in broken
    ]
