"""`xdsgen firewall`: OpenWrt fw4 rules that open exactly the ports Envoy listens on.

Made from the same model as lds.yaml, so a port added to or removed from the inventory
is added to or removed from the firewall by the same edit. Three forms:

- uci: `config rule` sections (named xdsgen_*) for /etc/config/firewall;
- uci-script: a shell script of `uci` commands that deletes every xdsgen_* rule and
  adds the current ones: idempotent, safe to run from cron or after every apply;
- nft: an nftables snippet for fw4's automatic includes
  (/usr/share/nftables.d/chain-pre/input_<zone>/xdsgen.nft), a file xdsgen owns whole.

A listener that only some networks may use (issue 14: `allow` on every vhost, route,
passthrough or port map it serves) is opened to those networks only (src_ip, saddr): the
firewall refuses the others before Envoy does. A family whose networks none of them
names is not opened at all (a comment says so).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen.errors import UsageProblem
from xdsgen.model import Model

FORMATS = ("uci", "uci-script", "nft")
SECTION_PREFIX = "xdsgen_"


@dataclass(frozen=True, order=True)
class Opening:
    family: str  # ipv4, ipv6
    proto: str  # tcp, udp
    port: int
    listener: str
    address: str  # the listen address; "" for every address of the family
    sources: tuple[str, ...] = ()  # only from these networks (allow); () from anywhere
    closed: bool = False  # allow names no network of the family: not opened
    # http-01 certificates: the CA fetches tokens here from anywhere, whatever allow says.
    acme: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return f"{SECTION_PREFIX}{self.listener}"

    @property
    def comment(self) -> str:
        if self.closed:
            return f"{self.section}: not opened: its allow names no {self.family} network"
        if self.sources:
            return f"{self.section}: only from {', '.join(self.sources)} (allow)"
        if self.acme:
            return (
                f"{self.section}: from anywhere: the CA fetches http-01 tokens for "
                f"{', '.join(self.acme)} here (the vhosts' allow lists still apply)"
            )
        return ""


def openings(model: Model) -> list[Opening]:
    result = []
    for listener in model.listeners:
        address = "" if ipaddress.ip_address(listener.address).is_unspecified else listener.address
        acme = _http01_certificates(model) if listener.kind == "http" else ()
        allowed = None if acme else _allowed_sources(model, listener)
        version = 4 if listener.family == "ipv4" else 6
        sources = tuple(c for c in allowed or () if ipaddress.ip_network(c).version == version)
        result.append(
            Opening(
                listener.family,
                listener.protocol.lower(),  # udp for port maps and HTTP/3 (QUIC)
                listener.port,
                listener.name,
                address,
                sources,
                closed=allowed is not None and not sources,
                acme=acme,
            )
        )
    return sorted(result)


def _http01_certificates(model: Model) -> tuple[str, ...]:
    """acme: certificates obtained over http-01: apply answers their tokens on every http
    listener (model/challenges.py), and the CA asks from addresses no allow list knows."""
    return tuple(
        sorted(
            c.name
            for c in model.certificates
            if c.acme is not None and c.acme.challenge == "http-01"
        )
    )


def _allowed_sources(model: Model, listener: Any) -> Optional[list[str]]:
    """The networks every client of the listener must come from (None: anywhere): the
    union of the allow lists of all it serves, when each of them has one."""
    if listener.kind == "udp":
        return [str(c) for c in listener.udp_sources] or None
    found: list[str] = []
    for chain in listener.filter_chains:
        if chain.tcp is not None:
            if not chain.sources:
                return None
            found += [str(c) for c in chain.sources]
            continue
        manager = chain.http
        rc = next(
            (r for r in model.route_configs if manager and r.name == manager.route_config), None
        )
        routes = [route for vhost in (rc.virtual_hosts if rc else ()) for route in vhost.routes]
        for route in routes:
            allow = next((f for f in route.filters if f.kind == "allow"), None)
            if allow is None or any(c.prefix_len == 0 for c in allow.cidrs):
                return None
            found += [str(c) for c in allow.cidrs]
        if manager is not None and manager.trusted_proxies:
            # Behind trusted proxies the connection comes from the proxy.
            found += [str(c) for c in manager.trusted_proxies]
    return sorted(set(found), key=_network_order) if found else None


def _network_order(text: str) -> tuple[int, int, int]:
    network = ipaddress.ip_network(text)
    return (network.version, int(network.network_address), network.prefixlen)


def _check_zone(zone: str) -> str:
    if not zone or not all(c.isalnum() or c in "_-" for c in zone) or len(zone) > 32:
        raise UsageProblem(f"--zone {zone!r}: a firewall zone name is letters, digits, _ and -")
    return zone


def _header(source: str, comment: str = "#") -> str:
    return (
        f"{comment} Generated by `xdsgen firewall` from {source}: the ports Envoy listens on.\n"
        f"{comment} Regenerate after every inventory change; do not edit.\n"
    )


def to_uci(items: list[Opening], zone: str, source: str) -> str:
    out = [_header(source)]
    for item in items:
        if item.closed:
            out.append(f"# {item.comment}\n")
            continue
        lines = [f"# {item.comment}"] if item.comment else []
        lines += [
            f"config rule '{item.section}'",
            f"\toption name '{item.section}'",
            f"\toption src '{zone}'",
            f"\toption family '{item.family}'",
            f"\toption proto '{item.proto}'",
            f"\toption dest_port '{item.port}'",
        ]
        if item.address:
            lines.append(f"\toption dest_ip '{item.address}'")
        lines += [f"\tlist src_ip '{network}'" for network in item.sources]
        lines.append("\toption target 'ACCEPT'")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def to_uci_script(items: list[Opening], zone: str, source: str) -> str:
    lines = [
        "#!/bin/sh",
        _header(source).rstrip("\n"),
        "# Replaces every xdsgen_* rule in /etc/config/firewall with the current ones.",
        "set -e",
        "sections=$(uci -q show firewall"
        " | sed -n 's/^firewall\\.\\(xdsgen_[A-Za-z0-9_]*\\)=rule$/\\1/p')",
        "for section in $sections; do",
        '\tuci delete "firewall.$section"',
        "done",
    ]
    for item in items:
        if item.comment:
            lines.append(f"# {item.comment}")
        if item.closed:
            continue
        key = f"firewall.{item.section}"
        lines += [
            f"uci set {key}=rule",
            f"uci set {key}.name='{item.section}'",
            f"uci set {key}.src='{zone}'",
            f"uci set {key}.family='{item.family}'",
            f"uci set {key}.proto='{item.proto}'",
            f"uci set {key}.dest_port='{item.port}'",
        ]
        if item.address:
            lines.append(f"uci set {key}.dest_ip='{item.address}'")
        lines += [f"uci add_list {key}.src_ip='{network}'" for network in item.sources]
        lines.append(f"uci set {key}.target='ACCEPT'")
    lines += ["uci commit firewall", ""]
    return "\n".join(lines)


def to_nft(items: list[Opening], zone: str, source: str) -> str:
    groups: dict[tuple[str, str, str, tuple[str, ...]], list[int]] = {}
    for item in items:
        if not item.closed:
            groups.setdefault((item.family, item.address, item.proto, item.sources), []).append(
                item.port
            )
    out = [
        _header(source).rstrip("\n"),
        f"# Install as /usr/share/nftables.d/chain-pre/input_{zone}/xdsgen.nft, then: fw4 reload",
        *(f"# {item.comment}" for item in items if item.comment),
    ]
    for (family, address, proto, sources), ports in sorted(groups.items()):
        ip = "ip" if family == "ipv4" else "ip6"
        match = f"{ip} daddr {address}" if address else f"meta nfproto {family}"
        if sources:
            networks = sources[0] if len(sources) == 1 else "{ " + ", ".join(sources) + " }"
            match += f" {ip} saddr {networks}"
        port_set = (
            str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, sorted(ports))) + " }"
        )
        out.append(f'{match} {proto} dport {port_set} accept comment "xdsgen"')
    return "\n".join(out) + "\n"


def firewall(
    model: Model, fmt: str = "uci", zone: str = "wan", source: str = "the inventory"
) -> str:
    if fmt not in FORMATS:
        raise UsageProblem(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    zone = _check_zone(zone)
    items = openings(model)
    return {"uci": to_uci, "uci-script": to_uci_script, "nft": to_nft}[fmt](items, zone, source)


def firewall_for(inventory: str, fmt: str, zone: str, output: Optional[str]) -> tuple[Model, str]:
    from xdsgen.pipeline import load_model

    model = load_model(inventory)
    text = firewall(model, fmt, zone, source=inventory)
    if output:
        from xdsgen.files import write_atomic

        write_atomic(output, text)
    return model, text
