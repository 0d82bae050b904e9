"""BackendTrafficPolicy (gateway.envoyproxy.io/v1alpha1): how Envoy Gateway talks to the
upstreams, as xdsgen's clusters and routes say it.

One policy on the Gateway carries what every route shares (round robin, where Envoy
Gateway's default is least request; the default connect timeout). A rule whose upstream,
route or vhost says more gets a policy of its own, targeted by sectionName (the rule's
name); rules of a kind with the same settings share one, named after the first of them.
A route's policy replaces the Gateway's (no merging), so each repeats the round robin.

- health_check: healthCheck.active (HTTP: any 2xx is healthy, as in xdsgen; or TCP),
  panicThreshold 0 (xdsgen turns Envoy's panic mode off with checks);
- ejection (several endpoints): healthCheck.passive with gateway errors only: the 5xx
  count is set out of reach, since a backend's own 500s are its answers;
- retries: retry with xdsgen's triggers (Envoy Gateway retries on another host too);
- PROXY protocol on a TCP map or passthrough: proxyProtocol;
- timeouts: the connect timeout, and the stream idle timeout where xdsgen sets one (none
  on WebSocket and timeout 0s routes; Envoy's 5 minutes on a route with a timeout, which
  Envoy Gateway would otherwise raise to an hour);
- compress: compressor Brotli then Gzip; error_page: responseOverride of Envoy's own
  502/503/504 (source Local) with the page from its ConfigMap (pages.py).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Optional

from xdsgen.export.context import GATEWAY_GROUP
from xdsgen.export.pages import EG_API, page_ref
from xdsgen.export.routes import gateway_duration
from xdsgen.export.source import DEFAULT_CONNECT_TIMEOUT_TEXT, Upstream

if TYPE_CHECKING:
    from xdsgen.export.context import Context, Rule

# Out of reach: Envoy ejects on consecutive 5xx unless told otherwise (int32 in the CRD).
UNREACHABLE_5XX = 2**31 - 1
ENVOY_STREAM_IDLE = "5m"  # Envoy's default stream idle timeout, which xdsgen keeps
# RetryOn triggers Envoy Gateway v1.9.0 accepts.
RETRY_TRIGGERS = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
_EG_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Envoy's success-rate ejection (which xdsgen turns off) needs at least this many hosts.
SUCCESS_RATE_MINIMUM_HOSTS = 5


def backend_policies(ctx: Context) -> list[dict[str, Any]]:
    if not ctx.listeners:
        return []
    gateway_ref = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": ctx.gateway}
    default_timeout = gateway_duration(DEFAULT_CONNECT_TIMEOUT_TEXT)[0]
    default = _base(default_timeout)
    objects = [_policy(ctx, f"{ctx.gateway}-upstreams", [gateway_ref], default)]
    for name in ctx.used_upstreams():
        upstream_differences(ctx, ctx.source.upstreams[name])
    groups: dict[str, tuple[dict[str, Any], list[Rule]]] = {}
    for rule in sorted(ctx.rules, key=lambda r: (r.kind, r.route, r.name)):
        if rule.upstream is None:
            continue
        spec = rule_spec(ctx, rule)
        if spec != default:
            groups.setdefault(rule.kind + json.dumps(spec, sort_keys=True), (spec, []))[1].append(
                rule
            )
    for spec, rules in groups.values():
        first = rules[0]
        wish = f"{first.route}-{first.name}"
        objects.append(_policy(ctx, wish, [rule.ref() for rule in rules], spec))
    return objects


def _base(connect_timeout: str) -> dict[str, Any]:
    return {
        "loadBalancer": {"type": "RoundRobin"},
        "timeout": {"tcp": {"connectTimeout": connect_timeout}},
    }


def _policy(
    ctx: Context, wish: str, refs: list[dict[str, Any]], spec: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": EG_API,
        "kind": "BackendTrafficPolicy",
        "metadata": ctx.meta(ctx.object_names(wish)),
        "spec": {"targetRefs": refs, **spec},
    }


def rule_spec(ctx: Context, rule: Rule) -> dict[str, Any]:
    """What one rule's policy says (without targetRefs), in a stable key order."""
    assert rule.upstream is not None
    upstream = ctx.source.upstreams[rule.upstream]
    spec: dict[str, Any] = {"loadBalancer": {"type": "RoundRobin"}}
    health = _health(ctx, upstream)
    if health:
        spec["healthCheck"] = health
    route = rule.http
    if route is not None and route.retries:
        spec["retry"] = _retry(ctx, route.path, route.retries, route.retry_on)
    if rule.proxy_protocol:
        spec["proxyProtocol"] = {"version": rule.proxy_protocol}
        ctx.carried.add(f"{rule.path}.proxy_protocol")
    timeout: dict[str, Any] = {
        "tcp": {"connectTimeout": _duration(ctx, upstream.connect_timeout, upstream.path)}
    }
    idle = _stream_idle(route)
    if idle is not None:
        timeout["http"] = {"streamIdleTimeout": idle}
    spec["timeout"] = timeout
    vhost = rule.vhost
    if vhost is not None and vhost.compress:
        spec["compressor"] = [{"type": "Brotli"}, {"type": "Gzip"}]
    if vhost is not None and vhost.error_page is not None:
        page = vhost.error_page
        spec["responseOverride"] = [
            {
                "match": {
                    "statusCodes": [{"type": "Value", "value": code} for code in page.statuses]
                },
                "source": "Local",  # Envoy's own answers only: a backend's 503 is its own
                "response": {
                    "contentType": page.content_type,
                    "body": {"type": "ValueRef", "valueRef": page_ref(ctx, vhost, page)},
                },
            }
        ]
    return spec


def _duration(ctx: Context, text: str, where: str, key: str = "connect_timeout") -> str:
    duration, exact = gateway_duration(text)
    if not exact:
        ctx.report.behaviour(
            f"{where}.{key}",
            f"{text} becomes {duration}: Gateway API durations count whole milliseconds",
        )
    return duration


def _stream_idle(route: Any) -> Optional[str]:
    if route is None:
        return None
    if route.idle_timeout is not None:
        return gateway_duration(route.idle_timeout)[0]
    if route.timeout is not None:
        return ENVOY_STREAM_IDLE
    return None


def _retry(ctx: Context, where: str, count: int, retry_on: Optional[str]) -> dict[str, Any]:
    triggers = [t.strip() for t in (retry_on or "").split(",") if t.strip()]
    for unknown in [t for t in triggers if t not in RETRY_TRIGGERS]:
        ctx.report.behaviour(
            f"{where}.retries",
            f"Envoy Gateway has no retry trigger {unknown}: it is left out",
        )
    return {
        "numRetries": count,
        "retryOn": {"triggers": [t for t in triggers if t in RETRY_TRIGGERS]},
    }


def _health(ctx: Context, upstream: Upstream) -> dict[str, Any]:
    found: dict[str, Any] = {}
    check = upstream.health_check
    where = f"{upstream.path}.health_check"
    if check is not None:
        active: dict[str, Any] = {"type": "HTTP" if check.http_path is not None else "TCP"}
        if check.http_path is not None:
            http: dict[str, Any] = {"path": check.http_path}
            host = (check.host or "").lower()
            if host and len(host) <= 253 and _EG_HOSTNAME.match(host):
                http["hostname"] = host
            start, end = check.expected_statuses
            http["expectedStatuses"] = list(range(start, end))
            active["http"] = http
        else:
            active["tcp"] = {}
        active["interval"] = _duration(ctx, check.interval, where, "interval")
        active["timeout"] = _duration(ctx, check.timeout, where, "timeout")
        active["unhealthyThreshold"] = check.unhealthy_threshold
        active["healthyThreshold"] = check.healthy_threshold
        found["active"] = active
    ejection = upstream.ejection
    if ejection is not None:
        found["passive"] = {
            "consecutiveGatewayErrors": ejection.consecutive_gateway_failure,
            "consecutive5XxErrors": UNREACHABLE_5XX,
            "interval": gateway_duration(ejection.interval)[0],
            "baseEjectionTime": gateway_duration(ejection.base_ejection_time)[0],
            "maxEjectionPercent": ejection.max_ejection_percent,
        }
    if check is not None:
        found["panicThreshold"] = 0
    return found


def upstream_differences(ctx: Context, upstream: Upstream) -> None:
    """What Envoy Gateway does differently with an upstream's health, once per upstream."""
    check = upstream.health_check
    where = f"{upstream.path}.health_check"
    resource = f"Backend/{ctx.backend_ref(upstream.name)['name']}"
    if check is not None and check.http2:
        ctx.report.behaviour(
            f"{where}.path",
            "Envoy Gateway's HTTP health check speaks HTTP/1.1: an upstream that speaks only "
            "HTTP/2 (h2: true, gRPC) fails it and gets no requests",
            "use tcp: true for the check",
            resource=resource,
        )
    if check is not None and check.http_path is not None and check.host:
        host = check.host.lower()
        if len(host) > 253 or not _EG_HOSTNAME.match(host):
            ctx.report.behaviour(
                f"{where}.host",
                f"Envoy Gateway's health check hostname must be a DNS name: {check.host} is "
                "left out, so the check sends the route's host name",
                resource=resource,
            )
    if check is not None:
        ctx.report.note(
            where,
            "Envoy Gateway checks an upstream that has had no traffic yet once a minute "
            "(Envoy's no_traffic_interval), then at the interval",
            resource=resource,
        )
        if check.http_path is not None and not check.host:
            ctx.report.note(
                f"{where}.host",
                "the HTTP check's Host header is the route's host name in Envoy Gateway "
                f"(xdsgen's Envoy sends the upstream's name, {upstream.name})",
                resource=resource,
            )
    if upstream.backup and len(upstream.endpoints) > 1:
        ctx.report.behaviour(
            f"{upstream.path}.backup",
            "Envoy Gateway starts sending part of the requests to the backup as soon as one "
            "endpoint fails (its fallback Backend takes over below 72% healthy); xdsgen uses "
            "the backup only while no endpoint is healthy",
            resource=resource,
        )
    hosts = len(upstream.endpoints) + len(upstream.backup)
    if upstream.ejection is not None and hosts >= SUCCESS_RATE_MINIMUM_HOSTS:
        ctx.report.note(
            upstream.path,
            f"with {hosts} endpoints Envoy's success-rate ejection may also take out an "
            "endpoint whose answers fail more often than the others (xdsgen turns it off)",
            resource=resource,
        )
