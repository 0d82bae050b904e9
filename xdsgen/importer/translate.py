"""What the original does -> an inventory draft that does as much of it as an inventory can.

The choices here need not be perfect: the comparer checks the draft's render against the
original afterwards and names every difference. They aim for the draft that differs
least, and when something must differ, for the safer side (a vhost the original served
on https only redirects plain HTTP to https rather than serving it in the clear).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.importer.carrying import vhost_extras
from xdsgen.importer.differences import Report
from xdsgen.importer.read_resilience import MAX_RETRIES, upstream_extras
from xdsgen.importer.semantics import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_ROUTE_TIMEOUT,
    Certificate,
    Chain,
    Config,
    Listener,
    Proxy,
    Redirect,
    UpstreamTls,
    Vhost,
    representative,
)
from xdsgen.importer.shapes import nanos_text
from xdsgen.importer.translate_access import AccessTranslator, lift, without_hsts
from xdsgen.importer.translate_envoy import envoy_section

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN_RE = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
_MAX_DURATION_NS = 999_999_999 * 10**9
_VHOST_INDEX = re.compile(r"^vhost(\d+)_")
_PASS_INDEX = re.compile(r"_pass_(\d+)$")


@dataclass
class _Family:
    address: Optional[str] = None
    http: Optional[Chain] = None  # the plain HTTP chain of the family's http listener
    http_port: Optional[int] = None
    https: Optional[Listener] = None
    tcp: list[tuple[int, str, Any]] = field(default_factory=list)  # port, cluster, sources
    udp: list[tuple[int, str, Any]] = field(default_factory=list)


@dataclass
class Draft:
    inventory: dict[str, Any]
    upstream_names: dict[str, str]  # original cluster -> draft upstream
    reasons: dict[int, str] = field(default_factory=dict)  # id(listener) -> why it is left out
    auth_clusters: dict[str, str] = field(default_factory=dict)  # auth service -> draft's


def domain_ok(domain: str, tls: bool) -> bool:
    """A domain an inventory vhost may list (TLS vhosts need real names, not "*")."""
    return (domain == "*" and not tls) or bool(_DOMAIN_RE.match(domain))


class Translator:
    def __init__(
        self, config: Config, report: Report, paths: list[str], admin: Any, patches: bool = True
    ):
        self.config = config
        self.report = report
        self.paths = paths
        self.admin = admin
        self.patches = patches  # vhosts configured differently are kept apart for them
        self.upstream_names: dict[str, str] = {}
        self.certificates: dict[Certificate, str] = {}
        self.reasons: dict[int, str] = {}
        self.served_tls: set[int] = set()  # https listeners the draft serves something of
        self.access = AccessTranslator(config)  # issue 14

    def run(self, referenced_dirs: list[str], access_logs: list[Any]) -> Draft:
        upstreams = self.upstreams()
        families = self.families()
        inventory: dict[str, Any] = {"version": 1}
        inventory["envoy"] = envoy_section(
            self.config, self.report, self.paths, self.admin, referenced_dirs, access_logs
        )
        listen: dict[str, Any] = {}
        for name, plan in sorted(families.items()):
            spec: dict[str, Any] = {"address": plan.address}
            if plan.http_port is not None:
                spec["http"] = plan.http_port
            if plan.https is not None:
                spec["https"] = plan.https.port
            listen[name] = spec
        inventory["listen"] = listen or {"ipv4": {"address": "0.0.0.0"}}
        inventory["upstreams"] = upstreams
        everywhere = sorted(listen)
        http = self.vhosts(families, everywhere)
        passthrough = self.passthrough(families, everywhere)
        for plan in families.values():
            if plan.https is not None and id(plan.https) not in self.served_tls:
                self.reasons[id(plan.https)] = (
                    "none of its TLS hosts can be said in an inventory (a TLS vhost needs real "
                    'host names, not "*", and a certificate file)'
                )
        if self.certificates:
            inventory["certificates"] = {
                name: {"cert": c.cert, "key": c.key}
                for c, name in sorted(self.certificates.items(), key=lambda kv: kv[1])
            }
        if self.access.auth_specs:
            inventory["auth"] = self.access.auth_section()
        trusted = self.access.trusted()
        if trusted:
            inventory["trusted_proxies"] = trusted
        if http:
            inventory["http"] = http
        if passthrough:
            inventory["tls_passthrough"] = passthrough
        for kind in ("tcp", "udp"):
            maps = self.port_maps(families, kind, everywhere)
            if maps:
                inventory[kind] = maps
        return Draft(inventory, dict(self.upstream_names), self.reasons, self.access.auth_clusters)

    # ------------------------------------------------------------------ names

    def unique_name(self, wanted: str, taken: set[str], fallback: str) -> str:
        base = wanted if NAME_RE.match(wanted) else re.sub(r"[^A-Za-z0-9_.-]", "_", wanted)
        base = base.lstrip(".-")[:60] or fallback
        candidate, number = base, 2
        while candidate.lower() in taken:
            candidate, number = f"{base}_{number}", number + 1
        taken.add(candidate.lower())
        return candidate

    # ------------------------------------------------------------------ upstreams

    def upstreams(self) -> dict[str, Any]:
        upstreams: dict[str, Any] = {}
        taken: set[str] = set()
        self.access.prepare()
        used = self.config.used_clusters(auth_services=False)
        for cluster in self.config.clusters.values():
            if not cluster.endpoints or self.access.skips(cluster, used):
                continue
            name = self.unique_name(cluster.name, taken, "upstream")
            if name != cluster.name:
                self.report.note(cluster.where, f"named {name!r} in the draft")
            self.upstream_names[cluster.name] = name
            spec: dict[str, Any] = {"endpoints": list(cluster.endpoints)}
            timeout = cluster.connect_timeout
            if timeout != DEFAULT_CONNECT_TIMEOUT and 0 <= timeout <= _MAX_DURATION_NS:
                spec["connect_timeout"] = nanos_text(timeout)
            if cluster.tls is not None:
                spec["tls"] = self.upstream_tls(cluster.tls, cluster.endpoints)
            spec.update(upstream_extras(cluster))
            short = list(spec) == ["endpoints"] and len(cluster.endpoints) == 1
            upstreams[name] = cluster.endpoints[0] if short else spec
        self.access.map_derived(self.upstream_names)
        return upstreams

    def upstream_tls(self, tls: UpstreamTls, endpoints: tuple[str, ...]) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if tls.sni:
            spec["sni"] = tls.sni
        hosts = {e.rsplit(":", 1)[0] for e in endpoints if not _is_ip(e.rsplit(":", 1)[0])}
        if tls.ca is None or (not tls.sni and len(hosts) != 1):
            # Not verified, or verified without a name, which an inventory cannot say: the
            # comparer names the difference.
            spec["verify"] = False
        elif tls.ca != DEFAULT_CA:
            spec["ca"] = tls.ca
        return spec

    # ------------------------------------------------------------------ listeners

    def families(self) -> dict[str, _Family]:
        plans: dict[str, _Family] = {}
        addresses: dict[str, list[tuple[int, str]]] = {}
        for listener in self.config.listeners:
            if listener.opaque:
                continue
            role, chain = _role(listener)
            for family in listener.families:
                plan = plans.setdefault(family, _Family())
                if role == "http" and plan.http is None:
                    plan.http, plan.http_port = chain, listener.port
                elif role == "https" and plan.https is None:
                    plan.https = listener
                elif role == "tcp" and chain is not None and chain.cluster in self.upstream_names:
                    plan.tcp.append((listener.port, str(chain.cluster), chain.sources))
                elif role == "udp" and listener.udp_cluster in self.upstream_names:
                    plan.udp.append(
                        (listener.port, str(listener.udp_cluster), listener.udp_sources)
                    )
                else:
                    self.reasons[id(listener)] = self.why_not(listener, role, plan)
                    continue
                # The web listeners' address wins: a family has one address in an inventory.
                rank = 0 if role in ("http", "https") else 1
                addresses.setdefault(family, []).append((rank, listener.address_for(family)))
        for family, found in addresses.items():
            plans[family].address = min(found, key=lambda pair: pair[0])[1]
        return {name: plan for name, plan in plans.items() if plan.address is not None}

    def why_not(self, listener: Listener, role: Optional[str], plan: _Family) -> str:
        if role == "http":
            return (
                f"a second plain-HTTP port (the draft's is {plan.http_port}): an inventory has "
                "one http port per family"
            )
        if role == "https":
            return (
                f"a second TLS port (the draft's is {plan.https.port if plan.https else '?'}): "
                "an inventory has one https port per family"
            )
        if role in ("tcp", "udp"):
            return "its cluster is not in the draft"
        chains = [c for c in [*listener.chains, listener.default_chain] if c is not None]
        if any(c.tls and c.certificate is None for c in chains):
            return "its certificate could not be read (see above)"
        if listener.protocol == "udp" or not chains:
            return "nothing an inventory can say runs on it (see above)"
        if any(c.kind == "opaque" or (c.hcm is not None and c.hcm.vhosts is None) for c in chains):
            return "what runs on it cannot be read or said in an inventory (see above)"
        return "its filter chains mix plain HTTP, TLS and TCP on one port: an inventory cannot"

    # ------------------------------------------------------------------ vhosts

    def routes(self, vhost: Optional[Vhost]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for route in vhost.routes if vhost else []:
            action = route.action
            if not isinstance(action, Proxy) or action.cluster not in self.upstream_names:
                continue
            entry: dict[str, Any] = {route.match: route.value}
            entry["upstream"] = self.upstream_names[action.cluster]
            if action.rewrite is not None:
                entry["rewrite"] = action.rewrite
            if action.websocket:
                entry["websocket"] = True
            if action.timeout != DEFAULT_ROUTE_TIMEOUT and action.timeout <= _MAX_DURATION_NS:
                entry["timeout"] = nanos_text(action.timeout)
            if action.retry is not None and 0 < action.retry.retries <= MAX_RETRIES:
                entry["retries"] = action.retry.retries
            entry.update(self.access.route_keys(route.access))
            out.append(entry)
        return out

    def certificate_name(self, certificate: Certificate) -> str:
        for known, name in self.certificates.items():
            if (known.cert, known.key) == (certificate.cert, certificate.key):
                return name
        taken = {name.lower() for name in self.certificates.values()}
        name = self.unique_name(certificate.name, taken, "cert")
        self.certificates[certificate] = name
        return name

    def vhosts(self, families: dict[str, _Family], everywhere: list[str]) -> list[dict[str, Any]]:
        # (domain, spec) -> families; a spec is (certificate, redirect, routes as JSON,
        # compressed, the redirect's allow as JSON, carrying.vhost_extras).
        found: dict[tuple[str, tuple[Any, ...]], list[str]] = {}
        order: dict[str, tuple[int, int]] = {}
        for family, plan in sorted(families.items()):
            claimed: set[str] = set()
            for domain, spec, source in self.tls_entries(plan):
                found.setdefault((domain, spec), []).append(family)
                order.setdefault(domain, (_index(_VHOST_INDEX, source.name), len(order)))
                claimed.add(domain)
            hcm = plan.http.hcm if plan.http else None
            for vhost in (hcm.vhosts or []) if hcm else []:
                routes = self.routes(vhost)
                for domain in vhost.domains:
                    if domain in claimed or not routes or not domain_ok(domain, tls=False):
                        continue
                    compress, extras = bool(vhost.compression), vhost_extras(vhost, self.patches)
                    plain = (None, False, json.dumps(routes), compress, None, extras)
                    found.setdefault((domain, plain), []).append(family)
                    order.setdefault(domain, (_index(_VHOST_INDEX, vhost.name), len(order)))
        grouped: dict[tuple[Any, ...], list[str]] = {}
        for (domain, spec), fams in sorted(found.items(), key=lambda kv: order[kv[0][0]]):
            grouped.setdefault((*spec, tuple(sorted(set(fams)))), []).append(domain)
        out = []
        for (
            certificate,
            redirect,
            route_text,
            compress,
            redirect_allow,
            _,
            fams,
        ), domains in grouped.items():
            item: dict[str, Any] = {"domains": domains}
            if certificate:
                item["tls"] = certificate
            if redirect:
                item["redirect_to_https"] = True
            if compress:
                item["compress"] = True
            if list(fams) != everywhere:
                item["families"] = list(fams)
            entries = json.loads(route_text)
            lift(item, entries, bool(certificate), redirect_allow if redirect else None)
            item["routes"] = entries
            out.append(item)
        return out

    def tls_entries(self, plan: _Family) -> list[tuple[str, tuple[Any, ...], Vhost]]:
        """(domain, spec, original vhost) for every name the family's https listener
        terminates: the vhost a client sending that name (as SNI and Host) reaches."""
        listener = plan.https
        if listener is None:
            return []
        out: list[tuple[str, tuple[Any, ...], Vhost]] = []
        seen: set[str] = set()
        for chain in [*listener.chains, listener.default_chain]:
            if chain is None or chain.kind != "http" or not chain.tls:
                continue
            if chain.certificate is None or chain.hcm is None or chain.hcm.vhosts is None:
                continue
            names = [d for v in chain.hcm.vhosts for d in v.domains] + list(chain.server_names)
            for domain in dict.fromkeys(names):
                probe = representative(domain)
                if domain in seen or not domain_ok(domain, tls=True):
                    continue
                if listener.chain_for(probe, tls=True) is not chain:
                    continue  # clients sending this name reach another chain
                vhost = chain.hcm.vhost_for(probe)
                routes = self.routes(vhost)
                if vhost is None or not routes:
                    continue
                seen.add(domain)
                self.served_tls.add(id(listener))
                redirect = plan.http is not None and not self.same_on_http(plan, probe, routes)
                spec = (
                    self.certificate_name(chain.certificate),
                    redirect,
                    json.dumps(routes),
                    bool(vhost.compression),
                    self.redirect_allow(plan, probe) if redirect else None,
                    vhost_extras(vhost, self.patches),
                )
                out.append((domain, spec, vhost))
        return out

    def same_on_http(self, plan: _Family, probe: str, routes: list[dict[str, Any]]) -> bool:
        """Whether plain HTTP serves this name with the same routes (else the draft
        redirects it to https: the original redirects it, or serves it otherwise)."""
        hcm = plan.http.hcm if plan.http else None
        vhost = hcm.vhost_for(probe) if hcm else None
        if vhost is None or _redirects_all(vhost):
            return False
        modelled = [r for r in vhost.routes if isinstance(r.action, Proxy)]
        # HSTS is for TLS only: the same vhost has none on plain HTTP.
        return len(modelled) == len(vhost.routes) and without_hsts(
            self.routes(vhost)
        ) == without_hsts(routes)

    def redirect_allow(self, plan: _Family, probe: str) -> Optional[str]:
        """Who the plain HTTP redirect of this name lets through (the vhost's allow)."""
        hcm = plan.http.hcm if plan.http else None
        vhost = hcm.vhost_for(probe) if hcm else None
        if vhost is None or not vhost.routes:
            return None
        allow = vhost.routes[0].access.allow
        return json.dumps(list(allow)) if allow is not None else None

    # ------------------------------------------------------------------ TLS and ports

    def passthrough(self, families: dict[str, _Family], everywhere: list[str]) -> list[Any]:
        found: dict[tuple[Any, ...], tuple[list[str], int]] = {}
        for family, plan in sorted(families.items()):
            listener = plan.https
            for chain in listener.chains if listener else []:
                if chain.kind != "tcp" or chain.tls or not chain.server_names:
                    continue
                upstream = self.access.upstream_of(str(chain.cluster), self.upstream_names)
                names = tuple(
                    s
                    for s in chain.server_names
                    if s != "*"
                    and domain_ok(s, tls=True)
                    and listener is not None
                    and listener.chain_for(representative(s), tls=True) is chain
                )
                if upstream is None or not names:
                    continue
                self.served_tls.add(id(listener))
                order = _index(_PASS_INDEX, chain.name) or 0
                key = (names, upstream, chain.sources, self.access.proxy_protocol(chain.cluster))
                entry = found.setdefault(key, ([], order * 10**6 + len(found)))
                entry[0].append(family)
        out = []
        for (names, upstream, sources, proxy), (fams, _) in sorted(
            found.items(), key=lambda kv: kv[1][1]
        ):
            item: dict[str, Any] = {"sni": list(names), "upstream": upstream}
            if sorted(set(fams)) != everywhere:
                item["families"] = sorted(set(fams))
            if sources is not None:
                item["allow"] = list(sources)
            if proxy:
                item["proxy_protocol"] = proxy
            out.append(item)
        return out

    def port_maps(
        self, families: dict[str, _Family], kind: str, everywhere: list[str]
    ) -> list[Any]:
        found: dict[tuple[int, str, Any, Any], list[str]] = {}
        for family, plan in sorted(families.items()):
            for number, cluster, sources in getattr(plan, kind):
                upstream = self.access.upstream_of(cluster, self.upstream_names)
                if upstream is None:
                    continue
                key = (number, upstream, sources, self.access.proxy_protocol(cluster))
                found.setdefault(key, []).append(family)
        out = []
        for (number, upstream, sources, proxy), fams in sorted(
            found.items(), key=lambda kv: (kv[0][0], kv[0][1])
        ):
            item: dict[str, Any] = {"port": number, "upstream": upstream}
            if sorted(set(fams)) != everywhere:
                item["families"] = sorted(set(fams))
            if sources is not None:
                item["allow"] = list(sources)
            if proxy:
                item["proxy_protocol"] = proxy
            out.append(item)
        return out


def _role(listener: Listener) -> tuple[Optional[str], Optional[Chain]]:
    """What an inventory can make of a listener: http, https, tcp or udp (None: nothing)."""
    if listener.protocol == "udp":
        return ("udp" if listener.udp_cluster else None), None
    chains = [c for c in [*listener.chains, listener.default_chain] if c is not None]
    if any(c.tls and c.kind == "http" and c.certificate for c in chains) or any(
        c.kind == "tcp" and not c.tls and c.server_names for c in chains
    ):
        return "https", None
    plain = listener.chain_for(None, tls=False)
    if plain is None or plain.tls:
        return None, None
    if plain.kind == "http" and plain.hcm is not None and plain.hcm.vhosts is not None:
        return "http", plain
    if plain.kind == "tcp" and len(chains) == 1 and plain.transport in (None, "raw_buffer"):
        return "tcp", plain
    return None, None


def _redirects_all(vhost: Vhost) -> bool:
    first = vhost.routes[0] if vhost.routes else None
    return (
        first is not None
        and first.match == "prefix"
        and first.value == "/"
        and isinstance(first.action, Redirect)
        and first.action.https
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _index(pattern: re.Pattern[str], name: str) -> int:
    """xdsgen's own names keep the inventory's order (vhost3_..., https_ipv4_pass_2)."""
    match = pattern.search(name or "")
    return int(match.group(1)) if match else 10**6
