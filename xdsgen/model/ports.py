"""Ports: every listener of a family needs its own port (http, https and tcp share the TCP
ports, udp has its own), and Envoy's admin must be out of the proxy's reach."""

from __future__ import annotations

import ipaddress

from xdsgen.errors import PathKey
from xdsgen.model.families import Family
from xdsgen.model.ir import Cluster, Envoy
from xdsgen.model.problems import Problems
from xdsgen.model.values import is_ip, resolve_quickly
from xdsgen.spec import Spec


class PortTable:
    """Who holds each (family, port) of one protocol."""

    def __init__(self, problems: Problems):
        self.problems = problems
        self.holders: dict[tuple[str, int], tuple[PathKey, str]] = {}

    def claim(self, family: str, port: int, path: PathKey, what: str) -> None:
        if (family, port) in self.holders:
            other_path, other = self.holders[(family, port)]
            self.problems.error(
                path,
                f"{family} port {port} is already used by {other} "
                f"(line {self.problems.line(other_path)})",
                "every listener of a family needs its own port",
            )
        else:
            self.holders[(family, port)] = (path, what)


def check_admin_clash(
    spec: Spec,
    envoy: Envoy,
    families: dict[str, Family],
    tcp_ports: PortTable,
    clusters: dict[str, Cluster],
    problems: Problems,
) -> None:
    """A TCP admin must be out of the proxy's reach: no listener on its port, no upstream
    that dials it, by address or by a name that resolves to it (Envoy maps *.localhost to
    loopback). A Unix socket admin cannot be dialled by a cluster."""
    admin = envoy.admin
    if admin.is_unix:
        return
    admin_family = "ipv6" if ":" in admin.host else "ipv4"
    if (admin_family, admin.port) in tcp_ports.holders:
        path, _ = tcp_ports.holders[(admin_family, admin.port)]
        problems.error(
            path, f"port {admin.port} is Envoy's admin port (envoy.admin)", "pick another port"
        )
    admin_ip = ipaddress.ip_address(admin.host)
    listen_ips = {family.address for family in families.values()}

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
            hit, via = reaches_admin(endpoint.host), ""
        elif endpoint.host in loopback_names:
            hit = admin_ip.is_loopback or admin_ip.is_unspecified
            via = " (Envoy resolves localhost names to loopback)"
        else:
            hit = any(is_ip(ip) and reaches_admin(ip) for ip in resolved.get(endpoint.host, ()))
            via = f" ({endpoint.host} resolves to it)"
        if not hit:
            continue
        upstream = spec.upstreams[name]
        path = upstream.endpoints[i][1]
        problems.error(
            path,
            f"points at Envoy's own admin interface{via}: it would expose /quitquitquit and "
            "/config_dump through the proxy",
            "use another port, or leave envoy.admin out: the default Unix socket cannot be "
            "dialled by a cluster",
        )
