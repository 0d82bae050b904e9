"""Every timeout a request meets on its way through Envoy, as `explain` shows it and
README's "Timeouts" table documents: the ones xdsgen sets and Envoy's defaults it keeps.

xdsgen sets: the upstream's connect timeout (connect_timeout, 5s), the route's response
timeout when the inventory gives one (timeout), no stream idle timeout on WebSocket routes
and on routes with timeout: 0s (long polling, downloads: Envoy would cut a stream silent
for 5 minutes, the cause of envoy#8662 and #20062), and the health checks' interval and
timeout. Envoy's defaults it keeps: a response timeout of 15s, a stream idle timeout of
5 minutes, an idle HTTP connection closed after 1 hour, an idle TCP port map connection
closed after 1 hour, a UDP session forgotten after 1 minute.
"""

from __future__ import annotations

from typing import Optional

from xdsgen.model.ir import Cluster, Route

ENVOY_ROUTE_TIMEOUT = "15s"
ENVOY_STREAM_IDLE_TIMEOUT = "5m"
ENVOY_TCP_IDLE_TIMEOUT = "1h"
ENVOY_UDP_IDLE_TIMEOUT = "1m"
DEFAULT = "Envoy's default"


def route_timeouts(route: Route, cluster: Optional[Cluster]) -> str:
    if route.timeout is None:
        response = f"response {ENVOY_ROUTE_TIMEOUT} ({DEFAULT})"
    elif route.timeout == "0s":
        response = "response none (timeout: 0s)"
    else:
        response = f"response {route.timeout}"
    if route.idle_timeout == "0s":
        idle = "stream idle none (" + ("websocket" if route.websocket else "timeout: 0s") + ")"
    else:
        idle = f"stream idle {ENVOY_STREAM_IDLE_TIMEOUT} ({DEFAULT})"
    parts = [response, idle]
    if cluster is not None:
        parts.append(f"connect {cluster.connect_timeout}")
    return ", ".join(parts)


def port_map_timeouts(kind: str, cluster: Optional[Cluster]) -> str:
    if kind == "udp":
        return f"session idle {ENVOY_UDP_IDLE_TIMEOUT} ({DEFAULT})"
    parts = [f"idle {ENVOY_TCP_IDLE_TIMEOUT} ({DEFAULT})"]
    if cluster is not None:
        parts.append(f"connect {cluster.connect_timeout}")
    return ", ".join(parts)


def health_text(cluster: Cluster) -> Optional[str]:
    """How the upstream's endpoints are checked, or None without active checks."""
    check = cluster.health_check
    if check is None:
        return None
    what = f"GET {check.http_path}" if check.http_path is not None else "TCP connect"
    return (
        f"{what} every {check.interval}, timeout {check.timeout}; down after "
        f"{check.unhealthy_threshold} failures, up after {check.healthy_threshold}"
    )
