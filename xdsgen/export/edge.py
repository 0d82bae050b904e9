"""The edge features (issue 15) in the exports. `export k8s` renders the model itself,
so it carries all of them; Gateway API has no standard field for most, so `export
gateway-api` names each one used, with the Envoy Gateway resource that would say it."""

from __future__ import annotations

from typing import Any

# Inventory keys the exporters know (export/source.py's coverage list).
KEYS = frozenset(
    {
        "envoy.access_log_format",
        "listen.*.http3",
        "listen.*.http3.advertised_port",
        "upstreams.*.backup",
        "upstreams.*.backup[]",
        "upstreams.*.h2",
        "upstreams.*.health_check",
        *(
            f"upstreams.*.health_check.{k}"
            for k in (
                "path",
                "tcp",
                "host",
                "interval",
                "timeout",
                "unhealthy_threshold",
                "healthy_threshold",
            )
        ),
        "http[].error_page",
        "http[].maintenance",
        "http[].compress",
        "http[].routes[].retries",
    }
)
_TRAFFIC_POLICY = "an Envoy Gateway BackendTrafficPolicy"


def gateway_differences(ctx: Any) -> None:
    """What the Gateway export leaves out of the edge features the inventory uses."""
    model = ctx.source.model
    report = ctx.report
    for cluster in model.clusters:
        where = f"upstreams.{cluster.name}"
        if cluster.health_check is not None:
            report.behaviour(
                f"{where}.health_check",
                "active health checks are not exported: every endpoint gets requests",
                f"{_TRAFFIC_POLICY} with healthCheck.active",
            )
        if cluster.backup:
            report.behaviour(
                f"{where}.backup",
                "the backup endpoints are not exported: they are not in the Service",
                f"{_TRAFFIC_POLICY}, or a Backend with fallback: true",
            )
        if cluster.http2:
            report.behaviour(
                f"{where}.h2",
                "HTTP/2 to the upstream is not exported: Envoy Gateway speaks HTTP/1.1 to it",
                "set appProtocol: kubernetes.io/h2c on the Service port",
            )
    for rc in model.route_configs:
        for vh in rc.virtual_hosts:
            where = f"http[{vh.index}]"
            if vh.error_page is not None:
                report.behaviour(
                    f"{where}.error_page",
                    "the error page is not exported: Envoy's own text answers upstream failures",
                    f"{_TRAFFIC_POLICY} with responseOverride",
                )
            if vh.maintenance:
                report.behaviour(
                    f"{where}.maintenance",
                    "maintenance is not exported: the routes proxy to the upstream",
                    "an HTTPRoute with a direct response (Envoy Gateway HTTPRouteFilter)",
                )
            if vh.compressors:
                report.behaviour(
                    f"{where}.compress",
                    "compression is not exported: responses are sent as the backend sends them",
                    f"{_TRAFFIC_POLICY} with compression",
                )
            for route in vh.routes:
                if route.retries:
                    report.behaviour(
                        f"{where}.routes[{route.name}].retries",
                        "retries are not exported: a failed connection fails the request",
                        f"{_TRAFFIC_POLICY} with retry",
                    )
    for listener in model.listeners:
        if listener.kind == "http3":
            report.behaviour(
                f"listen.{listener.family}.http3",
                "HTTP/3 is not exported: the Gateway listens over TCP only",
                "an Envoy Gateway ClientTrafficPolicy with http3: {}",
            )
    if model.envoy.access_log_format != "default":
        report.behaviour(
            "envoy.access_log_format",
            f"the {model.envoy.access_log_format} log format is not exported",
            "an EnvoyProxy resource's telemetry.accessLog format",
        )
