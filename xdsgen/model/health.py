"""Upstreams that fail well: active health checks, outlier ejection, backup endpoints
(Envoy priority 1) and HTTP/2 to the upstream.

Envoy's defaults are made for big fleets, not for two servers and a standby:
- a host with active checks counts as healthy until proven otherwise only after its first
  check, and an idle cluster is checked once a minute (no_traffic_interval): xdsgen checks
  every `interval` whatever the traffic, so a dead endpoint stops receiving requests
  within interval x unhealthy_threshold;
- with fewer than half the endpoints healthy Envoy panics and sends to all of them
  (healthy_panic_threshold 50%): with checks xdsgen turns panic off, so a dead endpoint
  gets nothing and, with none healthy, Envoy answers 503 itself (the vhost's error page);
- priority levels spill over gradually (overprovisioning factor 1.4: one dead endpoint out
  of two already moves 30% of the requests to the backup): xdsgen keeps a level whole
  while any of its endpoints is healthy, so `backup` is used only when none is;
- outlier detection ejects by gateway failures (connection refused, reset, 502-504) only:
  a backend's own 500s are its answers, not a sign that it is gone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

from xdsgen.hints import endpoint_hint
from xdsgen.model.ir import Cluster, Endpoint, HealthCheck, OutlierDetection
from xdsgen.model.problems import Problems
from xdsgen.model.values import domain_problem, duration, is_ip, parse_endpoint, path_problem
from xdsgen.spec import HealthCheckSpec, PassthroughSpec, PortMapSpec, Spec, UpstreamSpec

# Gateway failures in a row that eject an endpoint; an ejection lasts BASE_EJECTION_TIME
# (longer each time it repeats), or until an active check passes again.
CONSECUTIVE_GATEWAY_FAILURES = 3
OUTLIER_INTERVAL = "5s"
BASE_EJECTION_TIME = "30s"
# All may be ejected: then the backup takes over, or Envoy answers 503 itself.
MAX_EJECTION_PERCENT = 100
# Percent: a level with one healthy endpoint out of up to 100 still counts as whole.
WHOLE_LEVEL_FACTOR = 10000


def build(spec: Spec, clusters: dict[str, Cluster], problems: Problems) -> dict[str, Cluster]:
    """The clusters with their backup endpoints, checks, ejection and HTTP/2 settled."""
    built = dict(clusters)
    for name, upstream in spec.upstreams.items():
        cluster = clusters.get(name)
        if cluster is None:
            continue
        backup = _backup(upstream, cluster, problems)
        check = _health_check(upstream.health_check, upstream.h2, problems)
        several = len(cluster.endpoints) + len(backup) > 1
        built[name] = replace(
            cluster,
            backup=backup,
            health_check=check,
            outlier=_outlier() if several else None,
            http2=upstream.h2,
            panic_threshold=0 if check is not None else None,
            overprovisioning_factor=WHOLE_LEVEL_FACTOR if backup else None,
        )
    _check_uses(spec, problems)
    return built


def _outlier() -> OutlierDetection:
    return OutlierDetection(
        consecutive_gateway_failure=CONSECUTIVE_GATEWAY_FAILURES,
        interval=OUTLIER_INTERVAL,
        base_ejection_time=BASE_EJECTION_TIME,
        max_ejection_percent=MAX_EJECTION_PERCENT,
    )


def _backup(upstream: UpstreamSpec, cluster: Cluster, problems: Problems) -> tuple[Endpoint, ...]:
    found: list[Endpoint] = []
    static = cluster.discovery == "STATIC"
    for text, path in upstream.backup:
        parsed = parse_endpoint(text)
        if isinstance(parsed, str):
            problems.error(path, parsed, endpoint_hint(text))
        elif parsed in cluster.endpoints:
            problems.error(
                path,
                f"{text!r} is also in endpoints",
                "an endpoint is either a primary or a backup: remove one of them",
            )
        elif parsed in found:
            problems.error(path, f"{text!r} is listed twice", "list each backup endpoint once")
        elif is_ip(parsed.host) != static:
            problems.error(
                path,
                "backup and endpoints mix IP addresses and host names",
                "Envoy resolves either all endpoints of an upstream by DNS or none; use the "
                "same kind in both lists",
            )
        else:
            found.append(parsed)
    return tuple(found)


def _health_check(
    check: Optional[HealthCheckSpec], http2: bool, problems: Problems
) -> Optional[HealthCheck]:
    if check is None:
        return None
    if check.http_path is None and not check.tcp:
        problems.error(
            check.path,
            "a health check needs path (an HTTP GET) or tcp: true (a connection)",
            "e.g. health_check: {path: /healthz}",
        )
        return None
    if check.http_path is not None and check.tcp:
        problems.error(
            (*check.path, "tcp"),
            "path and tcp: true are two kinds of check: choose one",
            "path checks the HTTP answer, tcp only that the port accepts connections",
        )
        return None
    if check.http_path is not None:
        found = path_problem("path", check.http_path)
        if found:
            problems.error((*check.path, "path"), *found)
    if check.host is not None and domain_problem(check.host):
        problems.error((*check.path, "host"), str(domain_problem(check.host)))
    interval = duration(check.interval, (*check.path, "interval"), problems)
    timeout = duration(check.timeout, (*check.path, "timeout"), problems)
    for key, value in (("interval", interval), ("timeout", timeout)):
        if value == "0s":
            problems.error((*check.path, key), f"a health check {key} of 0s", "e.g. 5s")
    return HealthCheck(
        interval=interval or "5s",
        timeout=timeout or "2s",
        unhealthy_threshold=check.unhealthy_threshold,
        healthy_threshold=check.healthy_threshold,
        http_path=check.http_path,
        host=check.host,
        http2=http2 and check.http_path is not None,
    )


def _check_uses(spec: Spec, problems: Problems) -> None:
    """HTTP/2 and HTTP checks mean HTTP: say so where an upstream is used otherwise."""
    for vhost in spec.http:
        for route in vhost.routes:
            upstream = spec.upstreams.get(route.upstream)
            if upstream is not None and upstream.h2 and route.websocket:
                problems.warn(
                    (*route.path, "websocket"),
                    f"upstream {route.upstream!r} speaks HTTP/2 (h2: true): Envoy forwards a "
                    "WebSocket to it as an HTTP/2 CONNECT, which few backends accept",
                    "use an upstream without h2 for WebSocket routes",
                )
    items: list[Union[PortMapSpec, PassthroughSpec]] = [*spec.tcp, *spec.udp, *spec.tls_passthrough]
    for item in items:
        upstream = spec.upstreams.get(item.upstream)
        if upstream is None:
            continue
        if upstream.h2:
            problems.warn(
                (*upstream.path, "h2"),
                f"h2 applies to HTTP routes only: {format_item(item.path)} passes bytes to "
                f"{item.upstream!r} as they come",
            )
        check = upstream.health_check
        if check is not None and check.http_path is not None:
            problems.warn(
                (*check.path, "path"),
                f"{item.upstream!r} is also used by {format_item(item.path)}: an HTTP check "
                "fails on a port that does not speak HTTP",
                "use tcp: true, or a separate upstream for the port map",
            )
        elif check is not None and item.path[0] == "udp":
            problems.warn(
                check.path,
                f"health checks connect over TCP: the UDP service of {format_item(item.path)} "
                "may not answer them",
            )


def format_item(path: tuple[object, ...]) -> str:
    return f"{path[0]}[{path[1]}]"
