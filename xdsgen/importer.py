"""`xdsgen import`: turn hand-written file-based xDS (LDS + CDS) into an inventory draft.

People arrive with an lds.yaml/cds.yaml pair from a blog post or an older setup, often in
the v2 API (envoy.api.v2.Listener, envoy.http_connection_manager with `config:`, cluster
`hosts:`, `tls_context`). The importer reads v3 and those v2 forms, follows RDS and SDS
file references (trying the referenced path, then the same file name beside the LDS
file), and writes an inventory. Whatever the inventory cannot express is reported, never
silently dropped: each note names the file, the resource and what was left out.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.errors import IOProblem

# v2 (and early v3) names -> the v3 names this importer works with.
_TYPE = "type.googleapis.com/"
V2_TYPES = {
    _TYPE + "envoy.api.v2.Cluster": _TYPE + "envoy.config.cluster.v3.Cluster",
    _TYPE + "envoy.api.v2.Listener": _TYPE + "envoy.config.listener.v3.Listener",
    _TYPE + "envoy.api.v2.RouteConfiguration": _TYPE + "envoy.config.route.v3.RouteConfiguration",
    _TYPE + "envoy.api.v2.auth.Secret": _TYPE + "envoy.extensions.transport_sockets.tls.v3.Secret",
    _TYPE + "envoy.api.v2.ClusterLoadAssignment": _TYPE
    + "envoy.config.endpoint.v3.ClusterLoadAssignment",
}
FILTER_NAMES = {
    "envoy.http_connection_manager": "envoy.filters.network.http_connection_manager",
    "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
    "envoy.router": "envoy.filters.http.router",
    "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
    "envoy.filters.udp_listener.udp_proxy": "envoy.filters.udp_listener.udp_proxy",
    "envoy.file_access_log": "envoy.access_loggers.file",
    "envoy.transport_sockets.tls": "envoy.transport_sockets.tls",
    "tls": "envoy.transport_sockets.tls",
}
# typed_config @type -> filter name, for configs that name filters freely.
FILTER_TYPES = {
    "HttpConnectionManager": "envoy.filters.network.http_connection_manager",
    "TcpProxy": "envoy.filters.network.tcp_proxy",
    "Router": "envoy.filters.http.router",
    "UdpProxyConfig": "envoy.filters.udp_listener.udp_proxy",
    "TlsInspector": "envoy.filters.listener.tls_inspector",
}
HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
UDP_PROXY = "envoy.filters.udp_listener.udp_proxy"
ROUTER = "envoy.filters.http.router"
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
DEFAULT_CA = "/etc/ssl/certs/ca-certificates.crt"
_VHOST_INDEX = re.compile(r"^vhost(\d+)_")
_PASS_INDEX = re.compile(r"_pass_(\d+)$")

# Cluster and listener keys the inventory expresses (or that change nothing for it).
_CLUSTER_KEYS = {
    "@type",
    "name",
    "type",
    "connect_timeout",
    "lb_policy",
    "load_assignment",
    "hosts",
    "dns_lookup_family",
    "transport_socket",
    "tls_context",
    "cluster_name",
}
_LISTENER_KEYS = {
    "@type",
    "name",
    "address",
    "filter_chains",
    "listener_filters",
    "stat_prefix",
    "udp_listener_config",
    "traffic_direction",
}
_HCM_KEYS = {
    "@type",
    "stat_prefix",
    "codec_type",
    "route_config",
    "rds",
    "http_filters",
    "access_log",
    "use_remote_address",
    "strip_any_host_port",
    "normalize_path",
    "merge_slashes",
    "upgrade_configs",
}


@dataclass
class ImportResult:
    inventory: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    v2: bool = False


class _Importer:
    def __init__(self, lds_path: str, cds_path: str):
        self.lds_path = lds_path
        self.cds_path = cds_path
        self.base_dir = os.path.dirname(os.path.abspath(lds_path))
        self.notes: list[str] = []
        self.v2 = False
        self.renamed: dict[str, str] = {}
        self.access_logs: list[Optional[str]] = []
        self.referenced_dirs: set[str] = set()

    def note(self, where: str, message: str) -> None:
        text = f"{where}: {message}"
        if text not in self.notes:
            self.notes.append(text)

    # ------------------------------------------------------------------ reading

    def load(self, path: str) -> Any:
        import yaml

        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise IOProblem(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise IOProblem(
                f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise IOProblem(f"{path}: not YAML or JSON: {exc}") from None

    def resources(self, path: str, section: str) -> list[dict[str, Any]]:
        """The resources of an xDS file (`resources:`), a bootstrap (`static_resources`), or a
        bare list."""
        doc = self.load(path)
        if isinstance(doc, dict) and "resources" in doc:
            items = doc["resources"] or []
        elif isinstance(doc, dict) and "static_resources" in doc:
            items = (doc["static_resources"] or {}).get(section) or []
            self.note(path, f"read static_resources.{section} of a bootstrap")
        elif isinstance(doc, list):
            items = doc
        else:
            raise IOProblem(f"{path}: expected an xDS file with `resources:` (or a bootstrap)")
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise IOProblem(f"{path}: a resource is not a mapping")
            out.append(self.translate(item))
        return out

    def translate(self, value: Any) -> Any:
        """v2 type and filter names -> v3, recursively; `config:` (v2 Struct) -> typed_config."""
        if isinstance(value, list):
            return [self.translate(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            if key == "@type" and isinstance(item, str):
                if item in V2_TYPES or ".v2." in item or item.endswith(".v2"):
                    self.v2 = True
                item = V2_TYPES.get(item, item)
            elif key == "name" and isinstance(item, str) and item in FILTER_NAMES:
                if item != FILTER_NAMES[item]:
                    self.v2 = True
                item = FILTER_NAMES[item]
            elif key == "config" and isinstance(item, dict) and "typed_config" not in value:
                self.v2 = True
                key = "typed_config"
            out[key] = self.translate(item)
        if "typed_config" in out and "name" in out and isinstance(out["typed_config"], dict):
            kind = str(out["typed_config"].get("@type", "")).rsplit(".", 1)[-1]
            if kind in FILTER_TYPES and out["name"] not in FILTER_TYPES.values():
                out["name"] = FILTER_TYPES[kind]
        return out

    def referenced_file(self, path: Optional[str], what: str, where: str) -> Optional[str]:
        """A file an LDS refers to (RDS, SDS): the path as written, else beside the LDS file
        (configs written for Docker refer to the container's paths)."""
        if not path:
            return None
        self.referenced_dirs.add(os.path.dirname(path))
        for candidate in (path, os.path.join(self.base_dir, os.path.basename(path))):
            if os.path.isfile(candidate):
                return candidate
        self.note(where, f"{what} file {path} not found (nor beside {self.lds_path}); left out")
        return None

    # ------------------------------------------------------------------ clusters

    def upstream_name(self, name: str) -> str:
        if name in self.renamed:
            return self.renamed[name]
        new = (
            name
            if NAME_RE.match(name)
            else (re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".-") or "upstream")[:64]
        )
        self.renamed[name] = new
        return new

    def clusters(self) -> dict[str, Any]:
        upstreams: dict[str, Any] = {}
        for cluster in self.resources(self.cds_path, "clusters"):
            name = cluster.get("name")
            where = f"{self.cds_path}: cluster {name!r}"
            if not isinstance(name, str) or not name:
                self.note(self.cds_path, "a cluster without a name; left out")
                continue
            new_name = self.upstream_name(name)
            if new_name != name:
                self.note(
                    where, f"renamed to {new_name!r} (inventory names are letters, digits, _ . -)"
                )
            kind = str(cluster.get("type", "STATIC"))
            if kind in ("EDS", "ORIGINAL_DST") or "cluster_type" in cluster:
                self.note(
                    where, f"type {kind}: endpoints from elsewhere cannot be imported; left out"
                )
                continue
            if kind == "LOGICAL_DNS":
                self.note(
                    where, "LOGICAL_DNS becomes strict DNS (every address the name resolves to)"
                )
            endpoints = self.cluster_endpoints(cluster, where)
            if not endpoints:
                self.note(where, "no endpoints; left out")
                continue
            lookup = cluster.get("dns_lookup_family")
            if lookup not in (None, "V4_PREFERRED") and kind in ("STRICT_DNS", "LOGICAL_DNS"):
                self.note(where, f"dns_lookup_family {lookup} becomes V4_PREFERRED")
            policy = cluster.get("lb_policy", "ROUND_ROBIN")
            if policy != "ROUND_ROBIN":
                self.note(where, f"lb_policy {policy} becomes ROUND_ROBIN")
            for key in sorted(set(cluster) - _CLUSTER_KEYS):
                self.note(where, f"{key} cannot be expressed in an inventory; dropped")
            spec: dict[str, Any] = {"endpoints": endpoints}
            timeout = duration_text(cluster.get("connect_timeout"))
            if timeout and timeout != "5s":
                spec["connect_timeout"] = timeout
            tls = self.upstream_tls(cluster, where)
            if tls is not None:
                spec["tls"] = tls
            upstreams[new_name] = (
                endpoints[0] if list(spec) == ["endpoints"] and len(endpoints) == 1 else spec
            )
        return upstreams

    def cluster_endpoints(self, cluster: dict[str, Any], where: str) -> list[str]:
        addresses = []
        assignment = cluster.get("load_assignment") or {}
        for group in assignment.get("endpoints") or []:
            if group.get("priority") or group.get("locality"):
                self.note(where, "localities and priorities are flattened into one endpoint list")
            for lb in group.get("lb_endpoints") or []:
                addresses.append((lb.get("endpoint") or {}).get("address") or {})
                if lb.get("load_balancing_weight") not in (None, 1):
                    self.note(where, "endpoint weights are dropped (round robin)")
        for host in cluster.get("hosts") or []:  # v2
            addresses.append(host)
        out = []
        for address in addresses:
            sock = address.get("socket_address") or {}
            host, port = sock.get("address"), sock.get("port_value")
            if not host or not isinstance(port, int):
                self.note(where, f"endpoint {address!r} is not address + port_value; left out")
                continue
            out.append(f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}")
        return out

    def upstream_tls(self, cluster: dict[str, Any], where: str) -> Optional[dict[str, Any]]:
        context = None
        socket = cluster.get("transport_socket")
        if socket:
            if socket.get("name") != "envoy.transport_sockets.tls":
                self.note(
                    where, f"transport socket {socket.get('name')} cannot be expressed; dropped"
                )
                return None
            context = socket.get("typed_config") or {}
        elif cluster.get("tls_context") is not None:  # v2
            context = cluster["tls_context"]
        if context is None:
            return None
        tls: dict[str, Any] = {}
        if context.get("sni"):
            tls["sni"] = context["sni"]
        validation = (context.get("common_tls_context") or {}).get("validation_context")
        ca = ((validation or {}).get("trusted_ca") or {}).get("filename")
        if ca:
            if ca != DEFAULT_CA:
                tls["ca"] = ca
        else:
            tls["verify"] = False
            if validation:
                self.note(
                    where,
                    "a validation context without trusted_ca.filename: verify is off in the draft",
                )
        return tls

    # ------------------------------------------------------------------ listeners

    def listeners(self) -> list[dict[str, Any]]:
        """Flatten listeners into facts: one dict per listener with its family, port,
        kind and what its chains do."""
        facts = []
        for listener in self.resources(self.lds_path, "listeners"):
            name = listener.get("name", "?")
            where = f"{self.lds_path}: listener {name!r}"
            sock = (listener.get("address") or {}).get("socket_address") or {}
            address, port = sock.get("address"), sock.get("port_value")
            try:
                family = "ipv6" if ipaddress.ip_address(str(address)).version == 6 else "ipv4"
            except ValueError:
                self.note(where, f"address {address!r} is not an IP address; left out")
                continue
            if not isinstance(port, int):
                self.note(where, "no port_value; left out")
                continue
            for key in sorted(set(listener) - _LISTENER_KEYS):
                self.note(where, f"{key} cannot be expressed in an inventory; dropped")
            fact: dict[str, Any] = {
                "name": name,
                "family": family,
                "address": str(address),
                "port": port,
                "where": where,
                "http": [],
                "pass": [],
                "tcp": None,
                "udp": None,
            }
            for lf in listener.get("listener_filters") or []:
                if lf.get("name") == UDP_PROXY:
                    fact["udp"] = self.udp_cluster(lf.get("typed_config") or {}, where)
                elif lf.get("name") != "envoy.filters.listener.tls_inspector":
                    self.note(where, f"listener filter {lf.get('name')} dropped")
            for index, chain in enumerate(listener.get("filter_chains") or []):
                self.chain(fact, chain, f"{where} filter_chains[{index}]")
            facts.append(fact)
        return facts

    def udp_cluster(self, config: dict[str, Any], where: str) -> Optional[str]:
        if config.get("cluster"):  # the deprecated field
            return str(config["cluster"])
        action = ((config.get("matcher") or {}).get("on_no_match") or {}).get("action") or {}
        cluster = (action.get("typed_config") or {}).get("cluster")
        if (
            cluster
            and not (config.get("matcher") or {}).get("matcher_tree")
            and not (config.get("matcher") or {}).get("matcher_list")
        ):
            return str(cluster)
        self.note(where, "a UDP proxy with a matcher tree cannot be expressed; left out")
        return None

    def chain(self, fact: dict[str, Any], chain: dict[str, Any], where: str) -> None:
        match = chain.get("filter_chain_match") or {}
        server_names = [
            str(s).lower() for s in match.get("server_names") or match.get("sni_domains") or []
        ]
        for key in sorted(set(match) - {"server_names", "sni_domains", "transport_protocol"}):
            self.note(where, f"filter_chain_match.{key} cannot be expressed; ignored")
        filters = chain.get("filters") or []
        if not filters:
            self.note(where, "a filter chain without filters; left out")
            return
        first = filters[0]
        for extra in filters[1:]:
            self.note(where, f"network filter {extra.get('name')} dropped")
        config = first.get("typed_config") or {}
        if first.get("name") == TCP_PROXY:
            self.access_log(config)
            cluster = config.get("cluster")
            if not cluster:
                self.note(
                    where, "tcp_proxy without a single cluster (weighted_clusters?); left out"
                )
                return
            if server_names:
                fact["pass"].append(
                    {"sni": server_names, "cluster": str(cluster), "chain": chain.get("name", "")}
                )
            elif fact["tcp"] is None:
                fact["tcp"] = str(cluster)
            else:
                self.note(where, "a second filter chain without server_names; left out")
            return
        if first.get("name") != HCM:
            self.note(where, f"network filter {first.get('name')} cannot be expressed; left out")
            return
        for key in sorted(set(config) - _HCM_KEYS):
            self.note(where, f"http_connection_manager.{key} cannot be expressed; dropped")
        for http_filter in config.get("http_filters") or []:
            if http_filter.get("name") != ROUTER:
                self.note(
                    where, f"HTTP filter {http_filter.get('name')} cannot be expressed; dropped"
                )
        self.access_log(config)
        route_config = self.route_config(config, where)
        cert = self.downstream_cert(chain, where)
        fact["http"].append(
            {
                "server_names": server_names,
                "cert": cert,
                "rc": route_config,
                "tls": cert is not None or chain.get("tls_context") is not None,
            }
        )

    def access_log(self, config: dict[str, Any]) -> None:
        logs = config.get("access_log") or []
        path = None
        for log in logs:
            if log.get("name") == "envoy.access_loggers.file":
                path = (log.get("typed_config") or {}).get("path")
        self.access_logs.append(path)

    def route_config(self, hcm: dict[str, Any], where: str) -> Optional[dict[str, Any]]:
        if hcm.get("route_config") is not None:
            return hcm["route_config"]
        rds = hcm.get("rds") or {}
        source = rds.get("config_source") or {}
        path = (source.get("path_config_source") or {}).get("path") or source.get("path")
        if not path:
            self.note(
                where, "RDS from a management server cannot be imported; its routes are left out"
            )
            return None
        found = self.referenced_file(path, "RDS", where)
        if not found:
            return None
        configs = self.resources(found, "")
        wanted = rds.get("route_config_name")
        for rc in configs:
            if wanted is None or rc.get("name") == wanted:
                return rc
        self.note(where, f"{found} has no route configuration {wanted!r}")
        return None

    def downstream_cert(self, chain: dict[str, Any], where: str) -> Optional[tuple[str, str, str]]:
        """(name, cert, key) of the chain's certificate, or None for plain HTTP."""
        context = None
        socket = chain.get("transport_socket")
        if socket and socket.get("name") == "envoy.transport_sockets.tls":
            context = socket.get("typed_config") or {}
        elif chain.get("tls_context") is not None:  # v2
            context = chain["tls_context"]
        if context is None:
            return None
        common = context.get("common_tls_context") or {}
        if context.get("require_client_certificate") or common.get("validation_context"):
            self.note(where, "client certificate checks cannot be expressed; dropped")
        for cert in common.get("tls_certificates") or []:
            chain_file = (cert.get("certificate_chain") or {}).get("filename")
            key_file = (cert.get("private_key") or {}).get("filename")
            if chain_file and key_file:
                name = os.path.basename(os.path.dirname(chain_file)) or "cert"
                return (name, chain_file, key_file)
            self.note(where, "an inline certificate (not a file) cannot be expressed; left out")
        for sds in common.get("tls_certificate_sds_secret_configs") or []:
            source = sds.get("sds_config") or {}
            path = (source.get("path_config_source") or {}).get("path") or source.get("path")
            found = self.referenced_file(path, "SDS", where)
            if not found:
                continue
            for secret in self.resources(found, ""):
                tls = secret.get("tls_certificate") or {}
                chain_file = (tls.get("certificate_chain") or {}).get("filename")
                key_file = (tls.get("private_key") or {}).get("filename")
                if (sds.get("name") in (None, secret.get("name"))) and chain_file and key_file:
                    return (str(secret.get("name") or sds.get("name")), chain_file, key_file)
        self.note(where, "TLS without a certificate file xdsgen can use; left out")
        return ("missing", "", "")

    # ------------------------------------------------------------------ routes

    def routes(self, vhost: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], bool]:
        """(routes, is_https_redirect_of_everything)."""
        routes: list[dict[str, Any]] = []
        redirect_all = False
        for index, route in enumerate(vhost.get("routes") or []):
            rwhere = f"{where} routes[{index}]"
            match = route.get("match") or {}
            kinds = [k for k in ("prefix", "path") if k in match]
            extra = sorted(set(match) - {"prefix", "path", "case_sensitive"})
            if not kinds or extra:
                self.note(
                    rwhere,
                    f"match on {', '.join(extra) or 'nothing'} cannot be expressed; route left out",
                )
                continue
            if match.get("case_sensitive") is False:
                self.note(rwhere, "case_sensitive: false is dropped (paths match case-sensitively)")
            kind = kinds[0]
            redirect = route.get("redirect")
            if redirect is not None:
                if redirect.get("https_redirect") and kind == "prefix" and match[kind] == "/":
                    redirect_all = True
                    continue
                self.note(
                    rwhere,
                    "this redirect cannot be expressed (only redirect_to_https of a whole "
                    "vhost); left out",
                )
                continue
            action = route.get("route")
            if action is None:
                self.note(rwhere, "direct_response and other actions cannot be expressed; left out")
                continue
            cluster = action.get("cluster")
            if not cluster:
                self.note(rwhere, "weighted_clusters/cluster_header cannot be expressed; left out")
                continue
            entry: dict[str, Any] = {
                kind: match[kind],
                "upstream": self.upstream_name(str(cluster)),
            }
            if action.get("prefix_rewrite") is not None:
                entry["rewrite"] = action["prefix_rewrite"]
            upgrades = [u.get("upgrade_type") for u in action.get("upgrade_configs") or []]
            if "websocket" in upgrades or route.get("use_websocket") or action.get("use_websocket"):
                entry["websocket"] = True
            timeout = duration_text(action.get("timeout"))
            if timeout is not None:
                entry["timeout"] = timeout
            for key in sorted(
                set(action)
                - {"cluster", "prefix_rewrite", "upgrade_configs", "timeout", "use_websocket"}
            ):
                self.note(rwhere, f"route.{key} cannot be expressed; dropped")
            for key in sorted(set(route) - {"match", "route", "name", "use_websocket", "redirect"}):
                self.note(rwhere, f"{key} cannot be expressed; dropped")
            routes.append(entry)
        return routes, redirect_all and not routes

    # ------------------------------------------------------------------ assembling

    def run(self) -> ImportResult:
        upstreams = self.clusters()
        facts = self.listeners()
        listen: dict[str, dict[str, Any]] = {}
        vhosts: dict[tuple[str, ...], dict[str, Any]] = {}
        vhost_order: list[tuple[tuple[str, ...], Optional[int], int]] = []
        passthrough: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}
        port_maps: dict[str, dict[tuple[int, str], list[str]]] = {"tcp": {}, "udp": {}}
        certificates: dict[str, dict[str, str]] = {}
        seen = 0

        def family_listen(fact: dict[str, Any]) -> dict[str, Any]:
            spec = listen.setdefault(fact["family"], {"address": fact["address"]})
            if spec["address"] != fact["address"]:
                self.note(
                    fact["where"],
                    f"listens on {fact['address']}, but this family already uses "
                    f"{spec['address']}: the draft uses {spec['address']}",
                )
            return spec

        for fact in facts:
            family = fact["family"]
            if fact["udp"] is not None:
                family_listen(fact)
                port_maps["udp"].setdefault((fact["port"], fact["udp"]), []).append(family)
                continue
            if fact["tcp"] is not None and not fact["http"] and not fact["pass"]:
                family_listen(fact)
                port_maps["tcp"].setdefault((fact["port"], fact["tcp"]), []).append(family)
                continue
            if fact["tcp"] is not None:
                self.note(
                    fact["where"],
                    "a default tcp_proxy chain next to other chains cannot be expressed; left out",
                )
            if not fact["http"] and not fact["pass"]:
                continue
            is_https = bool(fact["pass"]) or any(h["tls"] for h in fact["http"])
            kind = "https" if is_https else "http"
            spec = family_listen(fact)
            if kind in spec and spec[kind] != fact["port"]:
                self.note(
                    fact["where"],
                    f"a second {kind} listener for {family} (port {fact['port']}; the draft "
                    f"keeps port {spec[kind]}): its vhosts are merged into the first",
                )
            spec.setdefault(kind, fact["port"])
            for pass_chain in fact["pass"]:
                key = (tuple(pass_chain["sni"]), pass_chain["cluster"])
                order = _index(_PASS_INDEX, pass_chain["chain"], 10**6 + seen)
                pass_entry = passthrough.setdefault(key, {"families": [], "order": order})
                seen += 1
                if family not in pass_entry["families"]:
                    pass_entry["families"].append(family)
            done_rcs: set[str] = set()
            for chain in fact["http"]:
                cert_name = None
                if chain["cert"] is not None and chain["cert"][1]:
                    cert_name = self.certificate(certificates, chain["cert"])
                rc = chain["rc"]
                if rc is None:
                    continue
                # xdsgen's own https listeners share one route configuration between the
                # chains of several certificates: read it once per listener.
                if rc.get("name") is not None:
                    if rc["name"] in done_rcs:
                        continue
                    done_rcs.add(rc["name"])
                for vhost in rc.get("virtual_hosts") or []:
                    where = f"{fact['where']} route {rc.get('name')!r} vhost {vhost.get('name')!r}"
                    domains = tuple(str(d).lower() for d in vhost.get("domains") or [])
                    if not domains:
                        continue
                    for key in sorted(set(vhost) - {"name", "domains", "routes"}):
                        self.note(where, f"{key} cannot be expressed; dropped")
                    routes, redirect = self.routes(vhost, where)
                    entry: Optional[dict[str, Any]] = vhosts.get(domains)
                    if entry is None:
                        entry = vhosts[domains] = {
                            "domains": list(vhost.get("domains")),
                            "families": [],
                            "http_routes": None,
                            "https_routes": None,
                            "redirect": False,
                            "tls": None,
                            "where": where,
                        }
                        vhost_order.append(
                            (
                                domains,
                                _index(_VHOST_INDEX, str(vhost.get("name", "")), None),
                                len(vhost_order),
                            )
                        )
                    if family not in entry["families"]:
                        entry["families"].append(family)
                    if kind == "https":
                        entry["https_routes"] = entry["https_routes"] or routes
                        entry["tls"] = (
                            entry["tls"] or self.cert_for(fact, domains, certificates) or cert_name
                        )
                    elif redirect:
                        entry["redirect"] = True
                    else:
                        entry["http_routes"] = entry["http_routes"] or routes

        inventory: dict[str, Any] = {"version": 1}
        envoy: dict[str, Any] = {"config_dir": self.base_dir}
        referenced = {d for d in self.referenced_dirs if d}
        if len(referenced) == 1 and referenced != {self.base_dir}:
            envoy["container_config_dir"] = referenced.pop()
        logs = {log or "off" for log in self.access_logs}
        if len(logs) > 1:
            self.note(
                self.lds_path,
                f"filter chains log to {', '.join(sorted(logs))}: the draft uses "
                f"{self.access_logs[0] or 'off'} for all",
            )
        log = self.access_logs[0] if self.access_logs else None
        if log is None:
            envoy["access_log"] = "off"
        elif log != "/dev/stdout":
            envoy["access_log"] = log
        inventory["envoy"] = envoy
        inventory["listen"] = {family: listen[family] for family in sorted(listen)}
        all_families = sorted(listen)
        inventory["upstreams"] = upstreams
        if certificates:
            inventory["certificates"] = certificates

        http = []
        ordered = sorted(vhost_order, key=lambda t: (t[1] if t[1] is not None else 10**6, t[2]))
        for domains, _, _ in ordered:
            entry = vhosts[domains]
            item: dict[str, Any] = {"domains": entry["domains"]}
            routes = (
                entry["https_routes"] if entry["https_routes"] is not None else entry["http_routes"]
            )
            if (
                entry["https_routes"] is not None
                and entry["http_routes"] is not None
                and entry["http_routes"] != entry["https_routes"]
            ):
                self.note(
                    entry["where"],
                    "its http and https routes differ: the draft uses the https routes",
                )
            if entry["tls"]:
                item["tls"] = entry["tls"]
            if entry["redirect"]:
                if entry["tls"]:
                    item["redirect_to_https"] = True
                else:
                    self.note(
                        entry["where"], "redirects to https, but no https vhost serves it; left out"
                    )
            if (
                entry["https_routes"] is not None
                and entry["http_routes"] is None
                and not entry["redirect"]
                and any("http" in listen.get(f, {}) for f in entry["families"])
            ):
                self.note(entry["where"], "served on https only: an inventory vhost is on http too")
            if not routes:
                self.note(entry["where"], "no route could be imported; vhost left out")
                continue
            if sorted(entry["families"]) != all_families:
                item["families"] = sorted(entry["families"])
            item["routes"] = routes
            http.append(item)
        if http:
            inventory["http"] = http
        if passthrough:
            items = []
            for (sni, cluster), entry in sorted(passthrough.items(), key=lambda kv: kv[1]["order"]):
                item = {"sni": list(sni), "upstream": self.upstream_name(cluster)}
                if sorted(entry["families"]) != all_families:
                    item["families"] = sorted(entry["families"])
                items.append(item)
            inventory["tls_passthrough"] = items
        for kind in ("tcp", "udp"):
            if port_maps[kind]:
                items = []
                for (port, cluster), families in sorted(port_maps[kind].items()):
                    item = {"port": port, "upstream": self.upstream_name(cluster)}
                    if sorted(families) != all_families:
                        item["families"] = sorted(families)
                    items.append(item)
                inventory[kind] = items
        used = {r["upstream"] for v in http for r in v["routes"]}
        used |= {p["upstream"] for p in inventory.get("tls_passthrough", [])}
        used |= {p["upstream"] for kind in ("tcp", "udp") for p in inventory.get(kind, [])}
        for name in sorted(used - set(upstreams)):
            self.note(
                self.lds_path,
                f"upstream {name!r} is used but not in {self.cds_path}: add it under upstreams",
            )
        if self.v2:
            self.notes.insert(
                0,
                "v2 names (envoy.api.v2.*, envoy.http_connection_manager, config:) were read as v3",
            )
        return ImportResult(inventory, self.notes, self.v2)

    def certificate(
        self, certificates: dict[str, dict[str, str]], cert: tuple[str, str, str]
    ) -> str:
        name, chain_file, key_file = cert
        for existing, spec in certificates.items():
            if spec == {"cert": chain_file, "key": key_file}:
                return existing
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".-") or "cert"
        candidate, n = base[:60], 2
        while candidate in certificates:
            candidate, n = f"{base[:60]}_{n}", n + 1
        certificates[candidate] = {"cert": chain_file, "key": key_file}
        return candidate

    def cert_for(
        self, fact: dict[str, Any], domains: tuple[str, ...], certificates: dict[str, Any]
    ) -> Optional[str]:
        """A vhost in the https route config: the certificate of the chain whose server
        names cover its domains."""
        for chain in fact["http"]:
            if chain["cert"] and chain["cert"][1] and set(domains) <= set(chain["server_names"]):
                return self.certificate(certificates, chain["cert"])
        for chain in fact["http"]:
            if chain["cert"] and chain["cert"][1]:
                return self.certificate(certificates, chain["cert"])
        return None


def _index(pattern: re.Pattern[str], text: str, default: Optional[int]) -> Optional[int]:
    match = pattern.search(text or "")
    return int(match.group(1)) if match else default


def duration_text(value: Any) -> Optional[str]:
    """A protobuf Duration as YAML gives it ("0.25s", or {seconds, nanos}) -> inventory text."""
    if value is None:
        return None
    if isinstance(value, dict):
        seconds = int(value.get("seconds", 0))
        nanos = int(value.get("nanos", 0))
        if nanos:
            return f"{seconds}.{nanos:09d}".rstrip("0") + "s"
        return f"{seconds}s"
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?s", text):
        return text
    return None


def import_files(lds: str, cds: str) -> ImportResult:
    return _Importer(lds, cds).run()


def to_yaml(result: ImportResult, lds: str, cds: str) -> str:
    import yaml

    header = [
        f"# Inventory draft made by `xdsgen import {lds} {cds}`.",
        "# Read it, then check it with `xdsgen validate`.",
        "# Editor help: xdsgen schema > inventory.schema.json",
        "# yaml-language-server: $schema=inventory.schema.json",
    ]
    if result.notes:
        header.append("# Not carried over (see also the notes printed by the import):")
        header.extend(f"#   - {note}" for note in result.notes)
    body = yaml.safe_dump(
        result.inventory, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True
    )
    return "\n".join(header) + "\n" + body


def import_to(
    lds: str, cds: str, output: Optional[str], force: bool = False
) -> tuple[ImportResult, str, list[Any]]:
    """Import, write the draft (to `output`, or only return it), and check it.

    Returns the result, the draft's text and the problems `xdsgen validate` would report
    (an empty list when the draft is a valid inventory as it stands).
    """
    import tempfile

    from xdsgen.errors import InventoryError, UsageProblem
    from xdsgen.pipeline import load_model

    if output and os.path.exists(output) and not force:
        raise UsageProblem(f"{output} exists: choose another file, or --force to replace it")
    result = import_files(lds, cds)
    text = to_yaml(result, lds, cds)
    if output:
        from xdsgen.files import write_atomic

        write_atomic(output, text)
        check_path, cleanup = output, None
    else:
        fd, check_path = tempfile.mkstemp(prefix="xdsgen-import-", suffix=".yaml")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        cleanup = check_path
    try:
        load_model(check_path)
        problems: list[Any] = []
    except InventoryError as exc:
        problems = list(exc.problems)
    finally:
        if cleanup:
            os.unlink(cleanup)
    return result, text, problems
