"""Listeners per family: http (its route table), https (TLS chains by SNI, passthrough
chains, its route table), and the tcp/udp port maps."""

from __future__ import annotations

from typing import Optional

from xdsgen.errors import PathKey
from xdsgen.model import http, tls
from xdsgen.model.families import Family, served_on
from xdsgen.model.ir import FilterChain, HttpManager, Listener, RouteConfig, TcpProxy
from xdsgen.model.ports import PortTable
from xdsgen.model.problems import Problems
from xdsgen.model.upstreams import check_reference
from xdsgen.spec import PassthroughSpec, PortMapSpec, Spec, VhostSpec


class Listeners:
    def __init__(self, spec: Spec, families: dict[str, Family], problems: Problems):
        self.spec = spec
        self.families = families
        self.problems = problems
        self.listeners: list[Listener] = []
        self.route_configs: list[RouteConfig] = []
        self.tcp_ports = PortTable(problems)
        self.udp_ports = PortTable(problems)
        self.used_upstreams: set[str] = set()

    def build(self) -> None:
        for family in self.families.values():
            for kind, port in (("http", family.http), ("https", family.https)):
                if port is not None:
                    self.tcp_ports.claim(
                        family.name, port, ("listen", family.name, kind), f"the {kind} listener"
                    )
        vhosts = {
            f: [v for v in self.spec.http if f in self._served(v.families, v.path)]
            for f in self.families
        }
        passthrough = {
            f: [p for p in self.spec.tls_passthrough if f in self._served(p.families, p.path)]
            for f in self.families
        }
        http_served, tls_served, pass_served = [], [], []
        for name, family in self.families.items():
            tls_vhosts = [v for v in vhosts[name] if v.tls]
            if family.http is not None:
                self._http(family, vhosts[name])
                http_served += [(f"http_{name}", v, name) for v in vhosts[name]]
            if family.https is not None:
                self._https(family, tls_vhosts, passthrough[name])
                tls_served += [(f"https_{name}", v, name) for v in tls_vhosts]
                pass_served += [(name, p) for p in passthrough[name]]
            elif tls_vhosts:
                self._no_https(family, tls_vhosts)
            elif passthrough[name]:
                self.problems.warn(
                    passthrough[name][0].path,
                    f"tls_passthrough for {name}, but listen.{name} has no https port: not "
                    f"served on {name}",
                )
        http.check_domain_clashes(http_served + tls_served, self.problems)
        tls.check_sni_clashes(pass_served, [(f, v) for _, v, f in tls_served], self.problems)
        for item in self.spec.tls_passthrough:
            self.used_upstreams.add(item.upstream)
        for port_map in (*self.spec.tcp, *self.spec.udp):
            self._port_map(port_map)

    def _served(self, wanted: Optional[tuple[str, ...]], path: PathKey) -> list[str]:
        return served_on(wanted, path, self.spec, self.families, self.problems)

    def _http(self, family: Family, vhosts: list[VhostSpec]) -> None:
        name = f"http_{family.name}"
        self.route_configs.append(
            RouteConfig(name, tuple(http.virtual_host(v, family, for_tls=False) for v in vhosts))
        )
        self.listeners.append(
            Listener(
                name=name,
                kind="http",
                family=family.name,
                address=family.address,
                port=int(family.http or 0),
                stat_prefix=name,
                filter_chains=(
                    FilterChain(name=name, http=HttpManager(stat_prefix=name, route_config=name)),
                ),
            )
        )
        self._use_routes(vhosts)

    def _https(
        self, family: Family, vhosts: list[VhostSpec], passthrough: list[PassthroughSpec]
    ) -> None:
        name = f"https_{family.name}"
        chains = (
            *tls.passthrough_chains(name, passthrough),
            *tls.terminated_chains(name, vhosts),
        )
        if vhosts:
            self.route_configs.append(
                RouteConfig(name, tuple(http.virtual_host(v, family, for_tls=True) for v in vhosts))
            )
            self._use_routes(vhosts)
        if chains:
            self.listeners.append(
                Listener(
                    name=name,
                    kind="https",
                    family=family.name,
                    address=family.address,
                    port=int(family.https or 0),
                    stat_prefix=name,
                    filter_chains=chains,
                    tls_inspector=True,
                )
            )

    def _no_https(self, family: Family, vhosts: list[VhostSpec]) -> None:
        """A TLS vhost on a family without an https port would be served in cleartext only."""
        for vhost in vhosts:
            self.problems.error(
                (*vhost.path, "tls"),
                f"tls: {vhost.tls} but listen.{family.name} has no https port: on "
                f"{family.name} this vhost would be served in cleartext only",
                f"add listen.{family.name}.https, or families: "
                f"[{', '.join(f for f in self.families if f != family.name) or '...'}] "
                "on the vhost",
            )

    def _use_routes(self, vhosts: list[VhostSpec]) -> None:
        self.used_upstreams.update(route.upstream for vhost in vhosts for route in vhost.routes)

    def _port_map(self, item: PortMapSpec) -> None:
        known = check_reference(self.spec, item.upstream, (*item.path, "upstream"), self.problems)
        self.used_upstreams.add(item.upstream)
        table = self.tcp_ports if item.kind == "tcp" else self.udp_ports
        for family_name in self._served(item.families, item.path):
            family = self.families[family_name]
            table.claim(family_name, item.port, (*item.path, "port"), f"{item.kind}[{item.index}]")
            if not known:
                continue
            name = f"{item.kind}_{item.port}_{family_name}"
            self.listeners.append(
                Listener(
                    name=name,
                    kind=item.kind,
                    family=family_name,
                    address=family.address,
                    port=item.port,
                    stat_prefix=name,
                    filter_chains=()
                    if item.kind == "udp"
                    else (FilterChain(tcp=TcpProxy(stat_prefix=name, cluster=item.upstream)),),
                    udp_cluster=item.upstream if item.kind == "udp" else None,
                )
            )
