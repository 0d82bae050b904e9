"""HTTP/3: a QUIC listener (UDP) per family on the https port, and alt-svc to find it.

The QUIC listener has the https listener's terminated chains (same SNI names, same SDS
certificates, same route table); passthrough cannot exist over QUIC. Its connection
manager keeps the https manager's stat prefix, so both share one RDS subscription and the
same stats names (http.https_ipv4.*; downstream_cx_http3_total counts the QUIC side).

Browsers only try HTTP/3 after an HTTP/1.1 or HTTP/2 answer told them where it is: the
https route table adds alt-svc with the port clients reach from outside (the https port,
or `advertised_port` behind port forwarding).
"""

from __future__ import annotations

from dataclasses import replace

from xdsgen import conventions as xds
from xdsgen.model.families import Family
from xdsgen.model.ir import FilterChain, Listener, RouteConfig
from xdsgen.model.ports import PortTable
from xdsgen.model.problems import Problems
from xdsgen.spec import Spec

KIND = "http3"
ALT_SVC_HEADER = "alt-svc"
ALT_SVC_MAX_AGE = 86400  # a day, as Caddy and most servers advertise


def alt_svc(port: int) -> str:
    return f'h3=":{port}"; ma={ALT_SVC_MAX_AGE}'


def build(
    spec: Spec,
    families: dict[str, Family],
    listeners: list[Listener],
    route_configs: list[RouteConfig],
    udp_ports: PortTable,
    problems: Problems,
) -> tuple[list[Listener], list[RouteConfig]]:
    """The listeners with a QUIC listener added per family that asks for one, and the
    route tables with alt-svc."""
    headers: dict[str, str] = {}  # route table -> alt-svc value
    added = []
    for name, family in sorted(families.items()):
        written = spec.listen.get(name)
        if written is None or not written.http3:
            continue
        path = (*written.path, "http3")
        if family.https is None:
            problems.error(
                path,
                f"http3 needs listen.{name}.https: HTTP/3 serves the https vhosts over QUIC",
                f"add listen.{name}.https, or remove http3",
            )
            continue
        https = next((item for item in listeners if item.name == f"https_{name}"), None)
        chains = https.http_chains if https is not None else ()
        if not chains:
            problems.warn(
                path,
                f"no vhost with tls is served on {name}: the HTTP/3 listener has nothing to serve",
                "add tls: to a vhost, or remove http3",
            )
            continue
        udp_ports.claim(name, family.https, path, f"the HTTP/3 (QUIC) listener of {name}")
        added.append(_quic_listener(name, family, chains))
        route_config = chains[0].http.route_config if chains[0].http else ""
        headers[route_config] = alt_svc(written.http3_advertised_port or family.https)
    route_configs = [
        replace(rc, response_headers=(*rc.response_headers, (ALT_SVC_HEADER, headers[rc.name])))
        if rc.name in headers
        else rc
        for rc in route_configs
    ]
    return [*listeners, *added], route_configs


def _quic_listener(family: str, address: Family, chains: tuple[FilterChain, ...]) -> Listener:
    name = f"{KIND}_{family}"
    quic_chains = tuple(
        replace(
            chain,
            name=name + (chain.name or "")[len(f"https_{family}") :],
            quic=True,
            http=replace(chain.http, http3=True, settings=xds.http3_settings(chain.http.settings))
            if chain.http
            else None,
        )
        for chain in chains
    )
    return Listener(
        name=name,
        kind=KIND,
        family=family,
        address=address.address,
        port=int(address.https or 0),
        stat_prefix=name,
        filter_chains=quic_chains,
        quic=True,
    )
