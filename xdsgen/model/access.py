"""Who may reach what (issue 14): networks, allow lists, authenticators, trusted proxies,
and the PROXY protocol, applied to the listeners the other parts built.

How each is done in Envoy 1.40, and why:
- HTTP `allow`: the RBAC filter in every connection manager that needs it, without rules
  of its own (everyone), and an RBACPerRoute on each route with an allow list; a refused
  request gets 403 "RBAC: access denied". The principal is the connection's own address
  (direct_remote_ip), or with trusted_proxies the client address Envoy took from
  X-Forwarded-For (remote_ip; the xff original-IP extension with xff_trusted_cidrs, which
  Envoy does not mix with use_remote_address).
- TCP maps and passthrough: the filter chain matches only the allowed sources
  (filter_chain_match.source_prefix_ranges); other connections match no chain and are
  closed at once. Not the network RBAC filter: it decides on the client's first byte, so a
  denied client still reaches the upstream and reads what a server says first (an SSH
  banner); tests/test_access_envoy.py shows the difference with a real Envoy.
- UDP maps: the udp_proxy matcher routes datagrams whose source is allowed (SourceIPInput
  and the Ip input matcher); the others match no route and are dropped.
- auth: basic_auth and one ext_authz filter per forward authenticator sit disabled in the
  connection manager; a route turns its own on (BasicAuthPerRoute with the htpasswd file,
  ExtAuthzPerRoute) and a route with `auth: none` keeps it off. Envoy reads the htpasswd
  file when it loads the route configuration (never copied into the world-readable xDS
  files: its hashes are unsalted SHA-1); the file's hash is in the route's metadata, so an
  edited file changes the RDS and the next apply makes Envoy read it again.
- The vhost's settings are merged into each route, so a route's line in the render says
  all that applies to it (and a route's own allow/auth replace the vhost's).

The other parts build listeners and route tables without knowing any of this; `apply`
decorates them, finding each item's inventory entry by the names they gave it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Optional, Union

from xdsgen.errors import PathKey
from xdsgen.model import headers as header_part
from xdsgen.model.auth import (
    BASIC_FILTER,
    NO_AUTH,
    AuthBuilder,
    Authenticator,
)
from xdsgen.model.ir import (
    Cidr,
    Cluster,
    FilterChain,
    HttpFilter,
    HttpManager,
    Listener,
    PerFilter,
    RouteConfig,
    TcpProxy,
    VirtualHost,
)
from xdsgen.model.problems import Problems
from xdsgen.schema_errors import suggest
from xdsgen.spec import PassthroughSpec, PortMapSpec, Spec, VhostSpec

RBAC_FILTER = "envoy.filters.http.rbac"
STRIP_FILTER = "envoy.filters.http.header_mutation"
PROXY_VERSIONS = {"v1": "V1", "v2": "V2"}


def parse_cidr(text: str) -> Union[Cidr, str]:
    """A Cidr, or a message saying what is wrong. One address is a /32 or /128."""
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"{text!r} is not an IP network (CIDR) or address"
        return f"{text!r} has host bits set: the network is {loose}"
    return Cidr(str(network.network_address), network.prefixlen)


class Access:
    """The inventory's networks, authenticators and trusted proxies, checked once."""

    def __init__(
        self, spec: Spec, clusters: dict[str, Cluster], problems: Problems, check_files: bool
    ):
        self.spec = spec
        self.clusters = clusters
        self.problems = problems
        self.check_files = check_files
        self.networks: dict[str, tuple[Cidr, ...]] = {}
        self.authenticators: dict[str, Authenticator] = {}
        self.trusted: tuple[Cidr, ...] = ()
        self.used_auth: set[str] = set()
        self.extra_clusters: dict[str, Cluster] = {}
        self.user_files: set[str] = set()

    # ------------------------------------------------------------------ checks

    def build(self) -> None:
        for network in self.spec.networks.values():
            cidrs = []
            for index, text in enumerate(network.cidrs):
                found = self._cidr(text, (*network.path, index))
                if found is not None:
                    cidrs.append(found)
            self.networks[network.name] = tuple(cidrs)
        trusted = []
        for index, text in enumerate(self.spec.trusted_proxies):
            found = self._cidr(text, ("trusted_proxies", index))
            if found is not None:
                trusted.append(found)
        self.trusted = tuple(trusted)
        builder = AuthBuilder(self.spec, self.problems, self.check_files)
        for auth in self.spec.auth.values():
            built = builder.build(auth)
            if built is not None:
                self.authenticators[auth.name] = built
        self.user_files = builder.user_files
        header_part.check(self.spec, self.problems)
        self._check_references()

    def _cidr(self, text: str, path: PathKey) -> Optional[Cidr]:
        found = parse_cidr(text)
        if isinstance(found, str):
            hint = None
            if "host bits" in found:
                hint = f"write {found.rsplit(' ', 1)[1]}, or the address alone for one host"
            self.problems.error(path, found, hint)
            return None
        return found

    def allowed(
        self, allow: Optional[tuple[str, ...]], path: PathKey
    ) -> Optional[tuple[Cidr, ...]]:
        """The CIDRs an allow list names (None: everyone); errors for unknown names."""
        if allow is None:
            return None
        cidrs: list[Cidr] = []
        for index, entry in enumerate(allow):
            where = (*path, "allow", index)
            if entry in self.spec.network_names:
                cidrs.extend(self.networks.get(entry, ()))
            elif any(c in entry for c in ".:/") or entry[:1].isdigit():
                found = self._cidr(entry, where)
                if found is not None:
                    cidrs.append(found)
            else:
                names = sorted(self.spec.network_names)
                self.problems.error(
                    where,
                    f"unknown network {entry!r}",
                    suggest(entry, names)
                    or (f"networks: {', '.join(names)}" if names else "add it under networks"),
                )
        return tuple(sorted(set(cidrs), key=_cidr_order))

    def _check_references(self) -> None:
        spec = self.spec
        for vhost in spec.http:
            self.allowed(vhost.allow, vhost.path)
            self._auth_reference(vhost.auth, vhost.path, route=False)
            for route in vhost.routes:
                self.allowed(route.allow, route.path)
                self._auth_reference(route.auth, route.path, route=True)
        for item in self._maps():
            self.allowed(item.allow, item.path)
            self._proxy_protocol(item)
        self._family_coverage()
        self._basic_in_clear()
        for name, auth in spec.auth.items():
            if name not in self.used_auth:
                self.problems.warn(
                    auth.path,
                    f"authenticator {name!r} is not used by any vhost or route",
                    f"add auth: {name} to a vhost, or remove it",
                )

    def _maps(self) -> list[Union[PassthroughSpec, PortMapSpec]]:
        return [*self.spec.tls_passthrough, *self.spec.tcp, *self.spec.udp]

    def _auth_reference(self, name: Optional[str], path: PathKey, route: bool) -> None:
        if name is None:
            return
        if name == NO_AUTH:
            return
        self.used_auth.add(name)
        if name in self.spec.auth_names:
            return
        names = sorted(self.spec.auth_names)
        self.problems.error(
            (*path, "auth"),
            f"unknown authenticator {name!r}",
            suggest(name, [*names, NO_AUTH])
            or (f"auth: {', '.join(names)} or none" if names else "add it under auth"),
        )

    def _proxy_protocol(self, item: Union[PassthroughSpec, PortMapSpec]) -> None:
        version = item.proxy_protocol
        if version not in PROXY_VERSIONS:
            return  # none, or a value the schema check reported
        upstream = self.spec.upstreams.get(item.upstream)
        if upstream is not None and upstream.tls is not None:
            self.problems.error(
                (*item.path, "proxy_protocol"),
                f"upstream {item.upstream!r} speaks TLS (tls:): xdsgen sends the PROXY header "
                "only on plain connections",
                "remove proxy_protocol, or the upstream's tls",
            )
            return
        name = proxy_cluster_name(item.upstream, version)
        if name in self.spec.upstream_names:
            self.problems.error(
                (*item.path, "proxy_protocol"),
                f"the PROXY protocol copy of {item.upstream!r} is a cluster named {name!r}, "
                "and an upstream has that name",
                f"rename upstream {name!r}",
            )
            return
        cluster = self.clusters.get(item.upstream)
        if cluster is not None:
            self.extra_clusters[name] = replace(
                cluster,
                name=name,
                proxy_protocol=PROXY_VERSIONS[version],
                derived_from=cluster.name,
            )

    def _basic_in_clear(self) -> None:
        """Basic auth sends the password with every request: over plain HTTP, in clear."""
        basic = {name for name, auth in self.spec.auth.items() if auth.basic is not None}
        for vhost in self.spec.http:
            if vhost.tls is not None and vhost.redirect_to_https:
                continue
            plain = [
                f
                for f in (vhost.families or sorted(self.spec.listen))
                if f in self.spec.listen and self.spec.listen[f].http is not None
            ]
            uses = [(vhost.path, vhost.auth)] + [(r.path, r.auth) for r in vhost.routes]
            for path, name in uses:
                if plain and name in basic:
                    self.problems.warn(
                        (*path, "auth"),
                        f"basic auth on plain http ({', '.join(plain)}): the password crosses "
                        "the network in clear text with every request",
                        "add tls: and redirect_to_https: true to the vhost",
                    )

    def _family_coverage(self) -> None:
        """An allow list without an address of a family refuses everyone on that family:
        said, since on IPv6 (no NAT) that is easy to miss."""
        versions = {"ipv4": 4, "ipv6": 6}
        listen = sorted(self.spec.listen)
        items = (
            [(v.path, v.allow, v.families) for v in self.spec.http]
            + [(r.path, r.allow, v.families) for v in self.spec.http for r in v.routes]
            + [(i.path, i.allow, i.families) for i in self._maps()]
        )
        for path, allow, families in items:
            if not allow:
                continue
            cidrs = self.allowed_quietly(allow)
            if cidrs is None:
                continue
            for family in families or listen:
                if family not in versions or family not in self.spec.listen:
                    continue
                if any(ipaddress.ip_address(c.address).version == versions[family] for c in cidrs):
                    continue
                self.problems.warn(
                    (*path, "allow"),
                    f"allow names no {family.replace('ip', 'IP')} network: every {family} "
                    "client is refused",
                    f"add the {family} networks, or families: [...] without {family}",
                )

    def allowed_quietly(self, allow: tuple[str, ...]) -> Optional[tuple[Cidr, ...]]:
        """allowed() without reporting (the errors were reported once); None if a name
        or CIDR is broken."""
        cidrs: list[Cidr] = []
        for entry in allow:
            if entry in self.networks:
                cidrs.extend(self.networks[entry])
                continue
            found = parse_cidr(entry)
            if isinstance(found, str):
                return None
            cidrs.append(found)
        return tuple(sorted(set(cidrs), key=_cidr_order))

    # ------------------------------------------------------------------ decoration

    def apply(
        self, listeners: list[Listener], route_configs: list[RouteConfig]
    ) -> tuple[list[Listener], list[RouteConfig], list[Cluster]]:
        """The listeners and route tables with every access setting in place, and the
        clusters access adds (auth services, PROXY protocol copies)."""
        configs = [self._route_config(rc) for rc in route_configs]
        by_name = {rc.name: rc for rc in configs}
        decorated = [self._listener(item, by_name) for item in listeners]
        used = {
            c.tcp.cluster for item in decorated for c in item.filter_chains if c.tcp is not None
        }
        clusters = [c for name, c in sorted(self.extra_clusters.items()) if name in used]
        forwards = {
            f.forward.cluster
            for item in decorated
            for chain in item.filter_chains
            if chain.http is not None
            for f in chain.http.filters
            if f.forward is not None
        }
        clusters += [
            a.cluster
            for _, a in sorted(self.authenticators.items())
            if a.cluster is not None and a.cluster.name in forwards
        ]
        return decorated, configs, clusters

    def _route_config(self, rc: RouteConfig) -> RouteConfig:
        scheme = "https" if rc.name.startswith("https_") else "http"
        vhosts = []
        # By index, not position: a tolerant read leaves malformed vhosts out, and
        # xdsgen/reuse.py builds one vhost alone under its own index.
        by_index = {v.index: v for v in self.spec.http}
        for vhost in rc.virtual_hosts:
            spec = by_index.get(vhost.index)
            vhosts.append(self._vhost(vhost, spec, scheme) if spec is not None else vhost)
        return replace(
            rc, virtual_hosts=tuple(vhosts), request_headers=header_part.client_headers(scheme)
        )

    def _vhost(self, vhost: VirtualHost, spec: VhostSpec, scheme: str) -> VirtualHost:
        if not _has_access(spec):
            return vhost  # the common case, kept cheap for thousands of vhosts
        redirect_only = all(r.https_redirect for r in vhost.routes)
        routes_by_name = {str(r.index): r for r in spec.routes}
        forward_headers: set[str] = set()
        routes = []
        for route in vhost.routes:
            route_spec = routes_by_name.get(route.name)
            allow = (
                spec.allow if route_spec is None or route_spec.allow is None else route_spec.allow
            )
            auth = spec.auth if route_spec is None or route_spec.auth is None else route_spec.auth
            filters: list[PerFilter] = []
            cidrs = self.allowed_quietly(allow) if allow is not None else None
            if cidrs is not None:
                filters.append(
                    PerFilter(
                        RBAC_FILTER,
                        "allow",
                        cidrs=cidrs,
                        principal="remote_ip" if self.trusted else "direct_remote_ip",
                        label=", ".join(allow or ()),
                    )
                )
            authenticator = (
                None if redirect_only or auth in (None, NO_AUTH) else self.authenticators.get(auth)
            )
            if authenticator is not None:
                filters.append(
                    PerFilter(
                        authenticator.filter,
                        authenticator.kind,
                        users=authenticator.users,
                        users_version=authenticator.users_version,
                        label=authenticator.name,
                    )
                )
                if authenticator.forward is not None:
                    forward_headers.update(authenticator.forward.headers_to_upstream)
            rules = (
                None
                if route.https_redirect
                else header_part.route_rules(
                    spec, route_spec.headers if route_spec else None, scheme == "https"
                )
            )
            if route.headers is not None:
                # A route another part made with its own headers (maintenance's content
                # type): those win over the vhost's.
                rules = header_part.combine(rules, route.headers)
            routes.append(replace(route, filters=tuple(filters), headers=rules))
        if forward_headers:
            # What a client sends under the names the auth service answers with must never
            # reach the backend: removed on every route of the vhost, before the check.
            strip = PerFilter(STRIP_FILTER, "strip", headers=tuple(sorted(forward_headers)))
            routes = [replace(r, filters=(strip, *r.filters)) for r in routes]
        return replace(vhost, routes=tuple(routes))

    def _listener(self, listener: Listener, configs: dict[str, RouteConfig]) -> Listener:
        if listener.kind == "udp":
            item = self._port_map(self.spec.udp, listener)
            cidrs = self.allowed_quietly(item.allow) if item and item.allow else None
            return replace(listener, udp_sources=cidrs or ()) if cidrs else listener
        chains = []
        for chain in listener.filter_chains:
            if chain.http is not None:
                rc = configs.get(chain.http.route_config)
                chains.append(replace(chain, http=self._manager(chain.http, rc, listener.kind)))
            elif chain.tcp is not None:
                chains.append(self._tcp_chain(listener, chain))
            else:
                chains.append(chain)
        return replace(listener, filter_chains=tuple(chains))

    def _tcp_chain(self, listener: Listener, chain: FilterChain) -> FilterChain:
        item: Union[PassthroughSpec, PortMapSpec, None]
        if chain.server_names:
            item = next(
                (
                    p
                    for p in self.spec.tls_passthrough
                    if min(s.lower() for s in p.sni) == chain.server_names[0]
                    and (p.families is None or listener.family in p.families)
                ),
                None,
            )
        else:
            item = self._port_map(self.spec.tcp, listener)
        tcp = chain.tcp
        if item is None or tcp is None:
            return chain
        if item.allow:
            chain = replace(chain, sources=self.allowed_quietly(item.allow) or ())
        if item.proxy_protocol:
            name = proxy_cluster_name(item.upstream, item.proxy_protocol)
            if name in self.extra_clusters:
                chain = replace(chain, tcp=TcpProxy(tcp.stat_prefix, name))
        return chain

    @staticmethod
    def _port_map(items: tuple[PortMapSpec, ...], listener: Listener) -> Optional[PortMapSpec]:
        return next(
            (
                i
                for i in items
                if i.port == listener.port and (i.families is None or listener.family in i.families)
            ),
            None,
        )

    def _manager(self, manager: HttpManager, rc: Optional[RouteConfig], kind: str) -> HttpManager:
        names = {
            f.filter
            for vhost in (rc.virtual_hosts if rc else ())
            for route in vhost.routes
            for f in route.filters
        }
        filters: list[HttpFilter] = []
        if RBAC_FILTER in names:
            filters.append(HttpFilter(RBAC_FILTER, "rbac"))
        if STRIP_FILTER in names:
            filters.append(HttpFilter(STRIP_FILTER, "strip"))
        if BASIC_FILTER in names:
            filters.append(HttpFilter(BASIC_FILTER, "basic"))
        for _, auth in sorted(self.authenticators.items()):
            if auth.forward is not None and auth.filter in names:
                filters.append(
                    HttpFilter(auth.filter, "forward", forward=auth.forward, scheme=kind)
                )
        if not self.trusted:
            return replace(manager, filters=tuple(filters))
        settings = tuple(
            (key, False if key == "use_remote_address" else value)
            for key, value in manager.settings
        )
        return replace(
            manager, filters=tuple(filters), settings=settings, trusted_proxies=self.trusted
        )


def _has_access(vhost: VhostSpec) -> bool:
    """Whether a vhost or one of its routes says anything about access or headers."""
    if vhost.allow is not None or vhost.auth is not None or vhost.headers is not None:
        return True
    if vhost.hsts not in (None, False) or vhost.security_headers:
        return True
    return any(
        r.allow is not None or r.auth is not None or r.headers is not None for r in vhost.routes
    )


def _cidr_order(cidr: Cidr) -> tuple[int, int, int]:
    address = ipaddress.ip_address(cidr.address)
    return (address.version, int(address), cidr.prefix_len)


def proxy_cluster_name(upstream: str, version: str) -> str:
    """The cluster a map with proxy_protocol uses: a copy of the upstream's, so the shared
    one (other maps, HTTP routes) never gets a PROXY header."""
    return f"{upstream}_proxy_{version}"
