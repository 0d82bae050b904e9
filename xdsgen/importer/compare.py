"""Compare the original with the draft's own render, as Envoy would serve them.

Both sides were read by the same reader into the same terms, so the comparer can ask each
the same questions: which sockets are open; for each, which filter chain a plain or TLS
connection reaches (with no server name, each server name either knows, and an unknown
one); which certificate it presents; for each host, which vhost answers; for each path
that any route of either side names, what the route does. Every answer that differs is a
difference, merged across families and ports, and as loud as what changes (a path that
was refused and is now proxied is an access difference).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional

from xdsgen.importer.compare_access import (
    _route_resource,
    _sources,
    _where_in_vhost,
    compare_route,
)
from xdsgen.importer.compare_clusters import compare_upstream
from xdsgen.importer.compare_resilience import (
    compare_compression,
    compare_route_fields,
    route_fields,
)
from xdsgen.importer.differences import Report, Resource
from xdsgen.importer.semantics import (
    PROBE_LABEL,
    Action,
    Carry,
    Chain,
    Config,
    Hcm,
    Listener,
    Proxy,
    Respond,
    Route,
    Vhost,
    representative,
)
from xdsgen.importer.wording import (
    Outcome,
    action_text,
    certificate_text,
    outcome_text,
    serves_nothing,
    topic,
)

UNKNOWN_HOST = PROBE_LABEL + ".invalid"
_Pending = tuple[list[str], Optional[Resource], Any, Any, Optional[Carry]]
Socket = tuple[str, str, int]  # family, protocol, port


def sockets(config: Config) -> dict[Socket, Listener]:
    found: dict[Socket, Listener] = {}
    for listener in config.listeners:
        for family in listener.families:
            found.setdefault((family, listener.protocol, listener.port), listener)
    return found


def shadowed(config: Config) -> list[tuple[Socket, Listener, Listener]]:
    """Listeners on a port of a family another listener has already (another address):
    an inventory has one address per family."""
    found: dict[Socket, Listener] = {}
    out = []
    for listener in config.listeners:
        for family in listener.families:
            key = (family, listener.protocol, listener.port)
            if key in found and found[key] is not listener:
                out.append((key, listener, found[key]))
            found.setdefault(key, listener)
    return out


class Comparer:
    def __init__(
        self,
        original: Config,
        draft: Config,
        names: dict[str, str],
        report: Report,
        reasons: Optional[dict[int, str]] = None,
        auth_clusters: Optional[dict[str, str]] = None,
    ):
        self.original = original
        self.draft = draft
        self.names = names
        self.report = report
        self.reasons = reasons or {}
        self.auth_clusters = auth_clusters or {}  # an auth service -> the draft's cluster
        # (topic, where, what) -> contexts it was seen in, its resource, fragment, the
        # original object it is about and the patch that would carry it (or None).
        self.pending: dict[tuple[str, str, str], _Pending] = {}
        self.hosts_shown: dict[str, str] = {}
        # (original object, draft object) that answered the same question: cluster, listener,
        # connection manager, vhost, route. Their extras must match (xdsgen/importer/carried).
        self.pairs: list[tuple[Any, Any]] = []

    def run(self) -> None:
        self.compare_sockets()
        self.compare_clusters()
        for (subject, where, what), found in self.pending.items():
            contexts, resource, fragment, anchor, carried = found
            message = f"{_contexts(contexts)}: {what}"
            self.report.differ(subject, where, message, fragment, anchor, resource, carried)

    def add(
        self,
        topic: str,
        where: str,
        context: str,
        what: str,
        resource: Optional[Resource] = None,
        fragment: Any = None,
        anchor: Any = None,
        carried: Optional[Carry] = None,
    ) -> None:
        found: _Pending = ([], resource, fragment, anchor, carried)
        contexts = self.pending.setdefault((topic, where, what), found)[0]
        if context not in contexts:
            contexts.append(context)

    # ------------------------------------------------------------------ sockets

    def compare_sockets(self) -> None:
        ours, theirs = sockets(self.original), sockets(self.draft)
        for (family, protocol, port), listener, first in shadowed(self.original):
            self.add(
                "ports",
                listener.where,
                f"{family} {protocol.upper()} port {port}",
                f"also listens on {listener.address_for(family)} (besides "
                f"{first.address_for(family)}); the draft listens on one address per family",
                Resource("listener", None),
                listener.raw,
            )
        for key in sorted(set(ours) | set(theirs), key=lambda k: (k[2], k[1], k[0])):
            family, protocol, port = key
            context = f"{family} {protocol.upper()} port {port}"
            original, draft = ours.get(key), theirs.get(key)
            if original is not None and original.opaque:
                continue  # why it cannot be said is already listed
            if draft is None and original is not None and self.refuses_all(original):
                self.report.note(
                    original.where,
                    f"{context}: no filter chain matches any connection (server_names without "
                    "a TLS inspector?): the draft leaves the port closed",
                )
                continue
            if draft is None and original is not None:
                why = self.reasons.get(id(original))
                self.add(
                    "ports",
                    original.where,
                    context,
                    "served by the original; the draft does not listen there"
                    + (f": {why}" if why else ""),
                    Resource("listener", None),
                    original.raw,
                )
                continue
            if original is None and draft is not None:
                self.add(
                    "ports",
                    f"the draft's listener {draft.name!r}",
                    context,
                    "the draft listens there; the original does not",
                    Resource("listener", draft.name),
                )
                continue
            assert original is not None and draft is not None
            self.pairs.append((original, draft))
            resource = Resource("listener", draft.name)
            ours_address, theirs_address = original.address_for(family), draft.address_for(family)
            if _ip(ours_address) != _ip(theirs_address):
                self.add(
                    "ports",
                    original.where,
                    context,
                    f"the original listens on {ours_address}; the draft on {theirs_address}",
                    resource,
                    original.raw,
                )
            if protocol == "udp":
                ours_cluster = self.mapped(original.udp_cluster)
                if original.udp_cluster is not None and ours_cluster != draft.udp_cluster:
                    self.add(
                        "routing",
                        original.where,
                        context,
                        f"datagrams go to {ours_cluster!r}; in the draft to {draft.udp_cluster!r}",
                        resource,
                    )
                if _sources(original.udp_sources) != _sources(draft.udp_sources):
                    self.add(
                        "access",
                        original.where,
                        context,
                        f"the original takes datagrams from {_who(original.udp_sources)}; the "
                        f"draft from {_who(draft.udp_sources)}",
                        resource,
                    )
            else:
                self.compare_chains(original, draft, context, resource)

    def compare_chains(
        self, original: Listener, draft: Listener, context: str, resource: Resource
    ) -> None:
        names: list[str] = []
        for listener in (original, draft):
            for chain in [*listener.chains, listener.default_chain]:
                if chain is None:
                    continue
                names.extend(chain.server_names)
                if chain.tls and chain.hcm is not None:
                    names.extend(d for v in chain.hcm.vhosts or [] for d in v.domains)
        probes: list[tuple[str, Optional[str], bool, Optional[list[str]]]] = [
            ("plain connections", None, False, None),
            ("TLS without a server name", None, True, None),
        ]
        for name in dict.fromkeys(n for n in names if _sni_like(n)):
            self.hosts_shown.setdefault(representative(name), name)
            probes.append((f"TLS for {name}", representative(name), True, [representative(name)]))
        probes.append(("TLS for any other name", UNKNOWN_HOST, True, None))
        for label, sni, tls, hosts in probes:
            ours_chain, theirs_chain = original.chain_for(sni, tls), draft.chain_for(sni, tls)
            ours, theirs = (
                self.outcome(ours_chain, tls, True),
                self.outcome(theirs_chain, tls, False),
            )
            if ours[0] == "opaque":
                continue
            where = ours_chain.where if ours_chain is not None else original.where
            here = f"{context}, {label}"
            if ours[0] != theirs[0]:
                topic = "tls" if tls else "ports"
                if serves_nothing(ours, hosts) and serves_nothing(theirs, hosts):
                    topic = "responses"  # refused, or 404 after the handshake
                self.add(
                    topic,
                    where,
                    here,
                    f"the original {outcome_text(ours, hosts)}; "
                    f"the draft {outcome_text(theirs, hosts)}",
                    resource,
                )
                continue
            if ours[0] == "closed":
                continue
            if ours[2] != theirs[2]:
                self.add(
                    "certificate",
                    where,
                    here,
                    f"the original presents {certificate_text(ours[2])}; the draft "
                    f"{certificate_text(theirs[2])}",
                    resource,
                )
            if ours[0] == "tcp":
                if ours[1] != theirs[1]:
                    self.add(
                        "routing",
                        where,
                        here,
                        f"the original passes it to {ours[1]!r}; the draft to {theirs[1]!r}",
                        resource,
                    )
                assert ours_chain is not None and theirs_chain is not None
                if _sources(ours_chain.sources) != _sources(theirs_chain.sources):
                    self.add(
                        "access",
                        where,
                        here,
                        f"the original accepts it from {_who(ours_chain.sources)}; the draft "
                        f"from {_who(theirs_chain.sources)}",
                        resource,
                    )
            else:
                self.pairs.append((ours[1], theirs[1]))
                self.compare_hcm(ours[1], theirs[1], here, hosts)

    def refuses_all(self, listener: Listener) -> bool:
        if listener.protocol == "udp":
            return False
        names = [n for c in listener.chains for n in c.server_names] + [UNKNOWN_HOST]
        probes = [(None, False), (None, True)] + [(representative(n), True) for n in names]
        return all(
            self.outcome(listener.chain_for(sni, tls), tls, True)[0] == "closed"
            for sni, tls in probes
        )

    def outcome(self, chain: Optional[Chain], tls: bool, original: bool) -> Outcome:
        """("closed",), ("opaque",), ("tcp", cluster, certificate) or ("http", hcm,
        certificate) for a connection that reaches `chain`."""
        if chain is None:
            return ("closed",)
        if chain.kind == "opaque" or (chain.tls and chain.certificate is None):
            return ("opaque",)
        if chain.tls != tls:
            return ("closed",)
        certificate = chain.certificate if chain.tls else None
        if chain.kind == "tcp":
            cluster = self.mapped(chain.cluster) if original else chain.cluster
            return ("tcp", cluster, certificate)
        if chain.hcm is None or chain.hcm.vhosts is None:
            return ("opaque",)
        return ("http", chain.hcm, certificate)

    def mapped(self, cluster: Optional[str]) -> Optional[str]:
        if cluster is None:
            return None
        return self.names.get(cluster, f"{cluster} (not in the draft)")

    # ------------------------------------------------------------------ HTTP

    def compare_hcm(self, ours: Hcm, theirs: Hcm, context: str, hosts: Optional[list[str]]) -> None:
        if ours.trusted != theirs.trusted:
            self.add(
                "headers",
                ours.where,
                context,
                "the client's address is taken from X-Forwarded-For on connections from "
                f"{', '.join(ours.trusted) or 'no proxy'}; in the draft from "
                f"{', '.join(theirs.trusted) or 'no proxy'}",
            )
        if hosts is None:
            domains = [d for h in (ours, theirs) for v in h.vhosts or [] for d in v.domains]
            hosts = []
            for domain in dict.fromkeys(domains):
                self.hosts_shown.setdefault(representative(domain), domain)
                hosts.append(representative(domain))
            hosts.append(UNKNOWN_HOST)
        for host in hosts:
            ours_vhost, theirs_vhost = ours.vhost_for(host), theirs.vhost_for(host)
            shown = self.hosts_shown.get(host, host)
            shown = "any other host" if host == UNKNOWN_HOST else f"host {shown}"
            resource = Resource("vhost", theirs_vhost.name if theirs_vhost else None)
            where = (ours_vhost or ours).where
            if ours_vhost is not None and theirs_vhost is not None:
                self.pairs.append((ours_vhost, theirs_vhost))
            compare_compression(self.report, ours_vhost, theirs_vhost, shown, context, resource)
            for path in _paths(ours_vhost, theirs_vhost):
                ours_route = ours_vhost.route_for(path) if ours_vhost else None
                theirs_route = theirs_vhost.route_for(path) if theirs_vhost else None
                ours_action = self.original_action(ours_route)
                theirs_action = theirs_route.action if theirs_route else None
                if ours_action == theirs_action and (ours_route is None or theirs_route is None):
                    continue
                fields = route_fields(ours_route, theirs_route, ours_action, theirs_action)
                if fields is not None and ours_route is not None and theirs_route is not None:
                    # Routes that do the same, but maybe for settings xdsgen renders itself
                    # (their patches carry them); a field of a proxy route means nothing on
                    # a redirect.
                    self.pairs.append((ours_route, theirs_route))
                    self.compare_access(ours_route, theirs_route, context, shown, path)
                    compare_route_fields(self, fields, ours_route, theirs_route, context, shown)
                    continue
                what = _where_in_vhost(ours_route, theirs_route, path)
                self.add(
                    topic(ours_action, theirs_action),
                    ours_route.where if ours_route else where,
                    context,
                    f"{shown}, {what}: the original {action_text(ours_action, ours_vhost)}; the "
                    f"draft {action_text(theirs_action, theirs_vhost)}",
                    _route_resource(theirs_vhost, theirs_route) or resource,
                    ours_route.raw if ours_route else None,
                )

    def compare_access(
        self, ours: Route, theirs: Route, context: str, shown: str, path: str
    ) -> None:
        compare_route(self, ours, theirs, context, shown, path)

    def original_action(self, route: Optional[Route]) -> Optional[Action]:
        if route is None:
            return None
        action = route.action
        if isinstance(action, Proxy):
            if action.cluster not in self.original.clusters:
                return Respond(503, f"cluster {action.cluster!r} is not in the files given")
            idle = action.idle_timeout
            if idle is None and (action.websocket or action.timeout == 0):
                # xdsgen's streaming-safe default, not a choice of the original: said once.
                idle = 0
                self.report.note(
                    route.where,
                    "the draft never cuts this route's silent streams (WebSocket, long "
                    "polling); the original's 5-minute stream idle timeout did",
                )
            return Proxy(
                self.mapped(action.cluster) or "",
                action.rewrite,
                action.timeout,
                action.websocket,
                action.retry,
                idle,
            )
        return action

    # ------------------------------------------------------------------ clusters

    def compare_clusters(self) -> None:
        used = self.original.used_clusters()
        for name, cluster in self.original.clusters.items():
            theirs = self.draft.clusters.get(self.names.get(name, ""))
            if theirs is None and name in self.auth_clusters:
                theirs = self.draft.clusters.get(self.auth_clusters[name])
            resource = Resource("cluster", theirs.name if theirs else None)
            if theirs is not None:
                self.pairs.append((cluster, theirs))
            if theirs is None:
                why = cluster.problem or "it has no endpoints"
                if name in used:
                    self.report.differ(
                        "upstream", cluster.where, f"not in the draft: {why}", None, None, resource
                    )
                else:
                    self.report.note(cluster.where, f"not in the draft ({why}); nothing uses it")
                continue
            compare_upstream(self.report, cluster, theirs, resource)


def _contexts(contexts: list[str]) -> str:
    """ipv4 TCP port 80 and ipv6 TCP port 80 -> ipv4+ipv6 TCP port 80; at most three."""
    families: dict[str, list[str]] = {}
    for context in contexts:
        family, _, rest = context.partition(" ")
        families.setdefault(rest, []).append(family)
    merged = ["+".join(fams) + " " + rest for rest, fams in families.items()]
    if len(merged) > 3:
        return "; ".join(merged[:3]) + f"; and {len(merged) - 3} more"
    return "; ".join(merged)


def _paths(ours: Optional[Vhost], theirs: Optional[Vhost]) -> list[str]:
    """Paths that reach every route of either vhost, and the gaps between them."""
    paths = ["/", f"/{PROBE_LABEL}"]
    for vhost in (ours, theirs):
        for route in vhost.routes if vhost else []:
            paths.append(route.value)
            if route.match == "prefix":
                paths.append(route.value + PROBE_LABEL)
                paths.append(route.value.rstrip("/") + "/" + PROBE_LABEL)
    return list(dict.fromkeys(paths))


def _sni_like(name: str) -> bool:
    """A name a client may send as SNI (a vhost's domain may hold a port or a prefix *)."""
    return name != "*" and ":" not in name and not name.endswith("*")


def _who(cidrs: Optional[tuple[str, ...]]) -> str:
    found = _sources(cidrs)
    return "everyone" if found is None else "only " + ", ".join(found)


def _ip(address: str) -> Any:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return address
