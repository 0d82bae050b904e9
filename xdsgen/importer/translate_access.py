"""Access (issue 14) in the draft: allow lists, authenticators, trusted proxies, the PROXY
protocol, hsts/security_headers and header changes, from what read_access found.

Routes get their own settings first; `lift` then moves what every route of a vhost shares
up to the vhost (xdsgen merges a vhost's settings into each route when it renders, so
both say the same; the lifted draft reads like an inventory a person writes).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from typing import Any, Optional
from urllib.parse import urlsplit

from xdsgen.importer.read_access import EVERYONE, Filter
from xdsgen.importer.semantics import Access, Cluster, Config

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
HSTS = "strict-transport-security"
HSTS_DEFAULT = 31536000
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "content-security-policy": "frame-ancestors 'self'",
    "referrer-policy": "strict-origin-when-cross-origin",
}
CLIENT_HEADERS = {"x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-port", "host"}
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_SUFFIX_AUTH = re.compile(r"_auth$")
_SUFFIX_PROXY = re.compile(r"_proxy_v[12]$")


class AccessTranslator:
    def __init__(self, config: Config):
        self.config = config
        self.authenticators: dict[tuple[str, ...], str] = {}  # auth fact -> name
        self.auth_specs: dict[str, Any] = {}
        self.auth_clusters: dict[str, str] = {}  # original cluster -> the draft's
        self.proxy_copies: dict[str, tuple[str, str]] = {}  # cluster -> (base cluster, v)
        self.bases: dict[str, str] = {}  # PROXY protocol copy -> the draft's upstream

    # ------------------------------------------------------------------ clusters

    def prepare(self) -> None:
        """Which clusters are auth services or PROXY protocol copies (not upstreams)."""
        clusters = self.config.clusters
        for cluster in clusters.values():
            if cluster.proxy_protocol and cluster.endpoints:
                base = _base_of(cluster, clusters)
                self.proxy_copies[cluster.name] = (base, cluster.proxy_protocol)
        taken: set[str] = set()
        for fact in self.forward_facts():
            wanted = _SUFFIX_AUTH.sub("", fact[1]) or "auth"
            name = _unique(wanted, taken, "auth")
            self.authenticators[fact] = name

    def forward_facts(self) -> list[tuple[str, ...]]:
        found: list[tuple[str, ...]] = []
        for listener in self.config.listeners:
            for chain in [*listener.chains, listener.default_chain]:
                hcm = chain.hcm if chain else None
                for item in hcm.filters.values() if hcm else []:
                    if isinstance(item, Filter) and item.forward and item.forward not in found:
                        found.append(item.forward)
        return found

    def skips(self, cluster: Cluster, used: set[str]) -> bool:
        """A cluster the draft makes itself: a PROXY protocol copy, or an auth service
        nothing else uses."""
        if cluster.name in self.proxy_copies:
            return self.proxy_copies[cluster.name][0] != cluster.name
        forward = {fact[1] for fact in self.authenticators}
        return cluster.name in forward and cluster.name not in used

    def map_derived(self, upstream_names: dict[str, str]) -> None:
        """The draft's names of the clusters xdsgen derives (for the comparer)."""
        for copy, (base, version) in self.proxy_copies.items():
            if base in upstream_names:
                self.bases[copy] = upstream_names[base]
                upstream_names[copy] = f"{upstream_names[base]}_proxy_{version}"
        for fact, name in self.authenticators.items():
            self.auth_clusters[fact[1]] = f"{name}_auth"
            upstream_names.setdefault(fact[1], f"{name}_auth")

    def upstream_of(self, cluster: str, upstream_names: dict[str, str]) -> Optional[str]:
        """The draft's upstream a map or passthrough to this cluster names."""
        if cluster in self.proxy_copies:
            return self.bases.get(cluster)
        return upstream_names.get(cluster)

    def proxy_protocol(self, cluster: Optional[str]) -> Optional[str]:
        return self.proxy_copies.get(cluster or "", (None, None))[1]

    # ------------------------------------------------------------------ routes

    def route_keys(self, access: Access) -> dict[str, Any]:
        entry: dict[str, Any] = {}
        if access.allow is not None:
            entry["allow"] = list(access.allow)
        if access.auth is not None:
            entry["auth"] = self.auth_name(access.auth)
        request, response = _changes(access.request_headers), _changes(access.response_headers)
        hsts = response["set"].pop(HSTS, None)
        if hsts is not None and re.fullmatch(r"max-age=[0-9]{1,9}", hsts):
            number = int(hsts.split("=")[1])
            entry["_hsts"] = True if number == HSTS_DEFAULT else number
        elif hsts is not None:
            response["set"][HSTS] = hsts
        # The security_headers preset: each of its headers added where absent, unless the
        # route changes it itself (lift decides for the whole vhost).
        changed = set(response["set"]) | set(response["removed"])
        preset = {k for k, v in SECURITY_HEADERS.items() if response["default"].get(k) == v}
        if preset and preset | changed >= set(SECURITY_HEADERS):
            entry["_security"] = True
        headers: dict[str, Any] = {}
        for side, changes in (("request", request), ("response", response)):
            found: dict[str, Any] = {}
            settable = {
                k: v
                for k, v in changes["set"].items()
                if _HEADER_RE.match(k) and (side == "response" or k not in CLIENT_HEADERS)
            }
            if settable:
                found["set"] = {k: v.replace("%%", "%") for k, v in sorted(settable.items())}
            removed = [k for k in changes["removed"] if _HEADER_RE.match(k)]
            if removed:
                found["remove"] = sorted(removed)
            if found:
                headers[side] = found
        if headers:
            entry["headers"] = headers
        return entry

    def auth_name(self, fact: tuple[str, ...]) -> str:
        if fact not in self.authenticators:
            taken = {n.lower() for n in self.authenticators.values()}
            wanted = (
                os.path.splitext(os.path.basename(fact[1]))[0] if fact[0] == "basic" else fact[1]
            )
            self.authenticators[fact] = _unique(wanted, taken, "auth")
        name = self.authenticators[fact]
        if name not in self.auth_specs:
            self.auth_specs[name] = self.auth_spec(fact)
        return name

    def auth_spec(self, fact: tuple[str, ...]) -> dict[str, Any]:
        if fact[0] == "basic":
            return {"basic": fact[1]}
        _, cluster, uri, prefix, headers = fact
        spec: dict[str, Any] = {"url": self.url(cluster, uri, prefix)}
        if headers:
            spec["headers_to_upstream"] = headers.split(",")
        return {"forward": spec}

    def url(self, cluster: str, uri: str, prefix: str) -> str:
        """The URL the draft's auth cluster and path prefix come from: the original's uri
        when it says the same, else made from the cluster's first endpoint."""
        parts = urlsplit(uri if "://" in uri else "")
        if parts.scheme in ("http", "https") and parts.path.rstrip("/") == prefix:
            return uri
        found = self.config.clusters.get(cluster)
        scheme = "https" if found is not None and found.tls is not None else "http"
        endpoint = found.endpoints[0] if found is not None and found.endpoints else uri
        return f"{scheme}://{endpoint}{prefix or '/'}"

    def auth_section(self) -> dict[str, Any]:
        return {name: self.auth_specs[name] for name in sorted(self.auth_specs)}

    def trusted(self) -> list[str]:
        found = Counter(
            chain.hcm.trusted
            for listener in self.config.listeners
            for chain in listener.chains
            if chain.hcm is not None and chain.hcm.trusted
        )
        return list(found.most_common(1)[0][0]) if found else []


def lift(
    item: dict[str, Any], routes: list[dict[str, Any]], tls: bool, redirect_allow: Any
) -> None:
    """Move what every route of a vhost says alike up to the vhost (see the module's doc)."""
    allows = [json.dumps(r.get("allow")) for r in routes]
    if redirect_allow is not None:
        candidate = json.loads(redirect_allow)
    elif allows:
        # The allow most routes share; in a tie none, then one that is not everyone.
        counts = Counter(allows)
        best = max(counts.values())
        tied = [a for a in dict.fromkeys(allows) if counts[a] == best]
        everyone = json.dumps(list(EVERYONE))
        candidate = json.loads(
            "null" if "null" in tied else next((a for a in tied if a != everyone), tied[0])
        )
    else:
        candidate = None
    if candidate is not None:
        item["allow"] = candidate
        for route in routes:
            if route.get("allow") == candidate:
                del route["allow"]
            elif "allow" not in route:
                route["allow"] = list(EVERYONE)
    values = {json.dumps(r.get("auth")) for r in routes}
    if len(values) == 1 and routes and "auth" in routes[0]:
        item["auth"] = routes[0]["auth"]
        for route in routes:
            del route["auth"]
    _lift_headers(item, routes)
    hsts = {json.dumps(r.pop("_hsts", None)) for r in routes}
    if tls and len(hsts) == 1 and hsts != {"null"}:
        item["hsts"] = json.loads(hsts.pop())
    security = [r.pop("_security", False) for r in routes]
    if security and all(security):
        item["security_headers"] = True


def _lift_headers(item: dict[str, Any], routes: list[dict[str, Any]]) -> None:
    """Header changes every route makes alike become the vhost's."""
    if not routes:
        return
    lifted: dict[str, Any] = {}
    for side in ("request", "response"):
        changes = [r.get("headers", {}).get(side, {}) for r in routes]
        common_set = {
            k: v
            for k, v in changes[0].get("set", {}).items()
            if all(c.get("set", {}).get(k) == v for c in changes)
        }
        common_remove = [
            k
            for k in changes[0].get("remove", [])
            if all(k in c.get("remove", []) for c in changes)
        ]
        found: dict[str, Any] = {}
        if common_set:
            found["set"] = common_set
        if common_remove:
            found["remove"] = common_remove
        if not found:
            continue
        lifted[side] = found
        for change in changes:
            for key in common_set:
                del change["set"][key]
            change["remove"] = [k for k in change.get("remove", []) if k not in common_remove]
            for key in ("set", "remove"):
                if key in change and not change[key]:
                    del change[key]
    if lifted:
        item["headers"] = lifted
    for route in routes:
        headers = route.get("headers", {})
        for side in ("request", "response"):
            if side in headers and not headers[side]:
                del headers[side]
        if "headers" in route and not headers:
            del route["headers"]


def without_hsts(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "_hsts"} for r in routes]


def _changes(effects: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, Any]:
    found: dict[str, Any] = {"set": {}, "default": {}, "removed": []}
    for name, effect in effects:
        if effect[0] == "set" and len(effect) == 2:
            found["set"][name] = effect[1]
        elif effect[0] == "default":
            found["default"][name] = effect[1]
        elif effect[0] == "removed":
            found["removed"].append(name)
    return found


def _base_of(copy: Cluster, clusters: dict[str, Cluster]) -> str:
    """The plain cluster a PROXY protocol copy copies (xdsgen names it NAME_proxy_vN), or
    itself when there is none."""
    same = [
        c
        for c in clusters.values()
        if not c.proxy_protocol
        and c.endpoints == copy.endpoints
        and (c.connect_timeout, c.tls) == (copy.connect_timeout, copy.tls)
    ]
    stripped = _SUFFIX_PROXY.sub("", copy.name)
    for cluster in same:
        if cluster.name == stripped:
            return cluster.name
    return same[0].name if same else copy.name


def _unique(wanted: str, taken: set[str], fallback: str) -> str:
    base = wanted if NAME_RE.match(wanted) else re.sub(r"[^A-Za-z0-9_.-]", "_", wanted)
    base = base.lstrip(".-")[:60] or fallback
    candidate, number = base, 2
    while candidate.lower() in taken:
        candidate, number = f"{base}_{number}", number + 1
    taken.add(candidate.lower())
    return candidate
