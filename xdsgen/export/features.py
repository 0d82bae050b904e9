"""Views of the edge (issue 15) and access (issue 14) features, for the exporters: part
of the source layer (xdsgen.export.source builds them; nothing else here reads the
model). Each is a small frozen value, decided by the model already: durations in the
protobuf form the model has ("5s", "0.25s"), CIDRs as text, header values in Envoy's
header format (a literal % written %%, as Envoy Gateway passes them on to Envoy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from xdsgen.model import Model


@dataclass(frozen=True)
class HealthCheck:
    interval: str
    timeout: str
    unhealthy_threshold: int
    healthy_threshold: int
    http_path: Optional[str]  # None: a TCP connect check
    host: Optional[str]  # the HTTP check's Host header (None: Envoy's choice)
    http2: bool  # the check speaks HTTP/2 (an h2 upstream)
    expected_statuses: tuple[int, int] = (200, 300)  # [start, end): any 2xx is healthy


@dataclass(frozen=True)
class Ejection:
    """Outlier detection: gateway failures only (a backend's own 5xx eject nothing)."""

    consecutive_gateway_failure: int
    interval: str
    base_ejection_time: str
    max_ejection_percent: int


@dataclass(frozen=True)
class HeaderChanges:
    """The header changes at one route, as (name, value) pairs in Envoy's format."""

    request_set: tuple[tuple[str, str], ...] = ()
    request_add_if_absent: tuple[tuple[str, str], ...] = ()
    request_remove: tuple[str, ...] = ()
    response_set: tuple[tuple[str, str], ...] = ()
    response_add_if_absent: tuple[tuple[str, str], ...] = ()
    response_remove: tuple[str, ...] = ()

    def without_response(self, name: str) -> HeaderChanges:
        """The same changes, leaving response header `name` alone."""
        from dataclasses import replace

        return replace(
            self,
            response_set=tuple(p for p in self.response_set if p[0] != name),
            response_add_if_absent=tuple(p for p in self.response_add_if_absent if p[0] != name),
            response_remove=tuple(n for n in self.response_remove if n != name),
        )

    def __bool__(self) -> bool:
        return any(
            (
                self.request_set,
                self.request_add_if_absent,
                self.request_remove,
                self.response_set,
                self.response_add_if_absent,
                self.response_remove,
            )
        )


@dataclass(frozen=True)
class Page:
    body: str  # the page as people see it (not escaped)
    content_type: str
    source: str  # the file it was read from, or "(built in)"
    statuses: tuple[int, ...] = ()  # the statuses of Envoy's own answers it replaces


@dataclass(frozen=True)
class Authenticator:
    """An `auth:` entry: basic (an htpasswd file) or forward (an HTTP auth service)."""

    name: str
    kind: str  # basic or forward
    path: str  # auth.NAME
    users_file: Optional[str] = None  # basic
    url: str = ""  # forward: as written
    path_prefix: str = ""  # forward: the URL's path, without the trailing slash
    timeout: str = "1s"
    headers_to_upstream: tuple[str, ...] = ()  # lower case
    host: str = ""  # forward: the auth service's host name or IP
    port: int = 0
    tls: bool = False  # https://
    sni: Optional[str] = None


# --------------------------------------------------------------------------- builders


def health_check(cluster: Any) -> Optional[HealthCheck]:
    check = cluster.health_check
    if check is None:
        return None
    return HealthCheck(
        interval=check.interval,
        timeout=check.timeout,
        unhealthy_threshold=check.unhealthy_threshold,
        healthy_threshold=check.healthy_threshold,
        http_path=check.http_path,
        host=check.host,
        http2=check.http2,
    )


def ejection(cluster: Any) -> Optional[Ejection]:
    outlier = cluster.outlier
    if outlier is None:
        return None
    return Ejection(
        consecutive_gateway_failure=outlier.consecutive_gateway_failure,
        interval=outlier.interval,
        base_ejection_time=outlier.base_ejection_time,
        max_ejection_percent=outlier.max_ejection_percent,
    )


def header_changes(rules: Any) -> Optional[HeaderChanges]:
    """A route's HeaderRules (model/headers.py) as HeaderChanges, or None."""
    if rules is None:
        return None
    from xdsgen import conventions as xds

    def pairs(values: Any, action: str) -> tuple[tuple[str, str], ...]:
        return tuple((h.key, h.value) for h in values if h.action == action)

    found = HeaderChanges(
        request_set=pairs(rules.request_add, xds.OVERWRITE),
        request_add_if_absent=pairs(rules.request_add, xds.ADD_IF_ABSENT),
        request_remove=tuple(rules.request_remove),
        response_set=pairs(rules.response_add, xds.OVERWRITE),
        response_add_if_absent=pairs(rules.response_add, xds.ADD_IF_ABSENT),
        response_remove=tuple(rules.response_remove),
    )
    return found if found else None


def route_access(route: Any) -> tuple[Optional[tuple[str, ...]], str, Optional[str]]:
    """(the CIDRs allowed or None for everyone, their label, the authenticator) of a
    model route, whose vhost's settings the model merged in already."""
    allow: Optional[tuple[str, ...]] = None
    label = ""
    auth = None
    for per_filter in route.filters:
        if per_filter.kind == "allow":
            allow = tuple(str(c) for c in per_filter.cidrs)
            label = per_filter.label
        elif per_filter.kind in ("basic", "forward"):
            auth = per_filter.label
    return allow, label, auth


def page(found: Any) -> Optional[Page]:
    if found is None:
        return None
    import re

    statuses = tuple(c for c in range(100, 600) if re.fullmatch(found.statuses, str(c)))
    return Page(found.body, found.content_type, found.source, statuses)


def chain_access(model: Model, chain: Any) -> tuple[Optional[tuple[str, ...]], Optional[str]]:
    """(allowed CIDRs or None, PROXY protocol version or None) of a TCP filter chain."""
    allow = tuple(str(c) for c in chain.sources) if chain.sources else None
    cluster = next((c for c in model.clusters if c.name == chain.cluster), None)
    return allow, cluster.proxy_protocol if cluster is not None else None


def authenticators(model: Model, data: dict[str, Any]) -> dict[str, Authenticator]:
    """Every authenticator the inventory defines (forward ones as the model built them,
    when a route uses them)."""
    forwards = {}
    for listener in model.listeners:
        for chain in listener.filter_chains:
            for http_filter in chain.http.filters if chain.http else ():
                if http_filter.forward is not None:
                    forwards[http_filter.forward.name] = http_filter.forward
    clusters = {c.name: c for c in model.clusters}
    found = {}
    for name, spec in sorted((data.get("auth") or {}).items()):
        if not isinstance(spec, dict):
            continue
        if "basic" in spec:
            found[name] = Authenticator(
                name, "basic", f"auth.{name}", users_file=str(spec["basic"])
            )
            continue
        forward = forwards.get(name)
        cluster = clusters.get(forward.cluster) if forward is not None else None
        if forward is None or cluster is None:
            continue  # not used by any route: nothing to export
        endpoint = cluster.endpoints[0]
        found[name] = Authenticator(
            name,
            "forward",
            f"auth.{name}",
            url=forward.uri,
            path_prefix=forward.path_prefix,
            timeout=forward.timeout,
            headers_to_upstream=forward.headers_to_upstream,
            host=endpoint.host,
            port=endpoint.port,
            tls=cluster.tls is not None,
            sni=cluster.tls.sni if cluster.tls is not None else None,
        )
    return found


def trusted_proxies(model: Model) -> tuple[str, ...]:
    for listener in model.listeners:
        for chain in listener.http_chains:
            if chain.http is not None and chain.http.trusted_proxies:
                return tuple(str(c) for c in chain.http.trusted_proxies)
    return ()


def http3(model: Model, data: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """family -> (the QUIC listener's port, the port alt-svc advertises)."""
    found = {}
    for listener in model.listeners:
        if listener.kind != "http3":
            continue
        written = (data.get("listen") or {}).get(listener.family) or {}
        setting = written.get("http3")
        advertised = listener.port
        if isinstance(setting, dict) and setting.get("advertised_port"):
            advertised = int(setting["advertised_port"])
        found[listener.family] = (listener.port, advertised)
    return found
