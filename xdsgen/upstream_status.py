"""How each upstream is doing, as `xdsgen status` shows it: health per endpoint, requests
and 5xx that agree, bytes and datagrams.

From Envoy's admin: /clusters?format=json (each endpoint's health flags, priority and
counters), /stats (per cluster counters) and /config_dump (which clusters have active
health checks: without them "healthy" would only mean "not ejected", so it says
"no check").

The counters, and why these:
- requests is upstream_rq_completed: every request answered for the upstream, including
  the 503 Envoy answers itself when no endpoint can be reached. upstream_rq_total counts
  only requests sent on a connection (so a dead upstream showed "requests 0" next to
  "5xx 4") and counts each retry again.
- 5xx is upstream_rq_5xx: the backend's and Envoy's own 5xx answers, each once.
- sent and received are bytes on the upstream connections (upstream_cx_tx/rx_bytes_total:
  HTTP and TCP port maps alike), or datagrams for a UDP port map
  (udp.sess_tx_datagrams / sess_rx_datagrams).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

PRIMARY, BACKUP = "primary", "backup"
_FLAGS = (
    ("failed_active_health_check", "failed check"),
    ("failed_outlier_check", "ejected"),
    ("failed_eds_health", "unhealthy (EDS)"),
    ("pending_active_hc", "not checked yet"),
    ("pending_dynamic_removal", "being removed"),
    ("excluded_via_immediate_hc_fail", "excluded"),
    ("active_hc_timeout", "check timed out"),
)


@dataclass
class EndpointStatus:
    address: str
    role: str  # primary or backup
    health: str  # healthy, no check, failed check, ejected, ... (joined with ", ")
    healthy: bool
    requests: int  # rq_total on this endpoint (each attempt)
    errors: int  # rq_error: 5xx and connection failures on this endpoint
    connect_failures: int


@dataclass
class Upstream:
    name: str
    endpoints: int
    healthy: int
    health: str  # healthy, 2/3 healthy, unhealthy, no check, 1/2 ejected, no endpoints
    active_connections: int
    connections: int
    requests: int
    errors_5xx: int
    connect_failures: int
    in_inventory: Optional[bool] = None  # None when no inventory was given
    checked: bool = False  # Envoy runs active health checks on it
    retries: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    udp: bool = False  # a UDP port map's upstream: datagrams, not bytes
    datagrams_sent: int = 0
    datagrams_received: int = 0
    per_endpoint: list[EndpointStatus] = field(default_factory=list)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def checked_clusters(dump: dict[str, Any]) -> set[str]:
    """Names of the clusters Envoy runs active health checks on (from /config_dump)."""
    found = set()
    for config in _dicts(dump.get("configs")):
        if not str(config.get("@type", "")).endswith("ClustersConfigDump"):
            continue
        for key in ("static_clusters", "dynamic_active_clusters"):
            for item in _dicts(config.get(key)):
                cluster = item.get("cluster")
                if isinstance(cluster, dict) and cluster.get("health_checks"):
                    found.add(str(cluster.get("name", "")))
    return found


def _address(host: dict[str, Any]) -> str:
    sock = host.get("address", {}).get("socket_address", {}) if isinstance(host, dict) else {}
    address, port = str(sock.get("address", "?")), sock.get("port_value", "?")
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def endpoint_status(host: dict[str, Any], checked: bool) -> EndpointStatus:
    flags = host.get("health_status")
    flags = flags if isinstance(flags, dict) else {}
    problems = [text for key, text in _FLAGS if flags.get(key) is True]
    eds = flags.get("eds_health_status", "HEALTHY")
    if eds not in ("HEALTHY", "DEGRADED", "UNKNOWN"):
        problems.append(str(eds).lower())
    counters = {
        str(s.get("name")): _int(s.get("value"))
        for s in _dicts(host.get("stats"))
        if s.get("type", "COUNTER") == "COUNTER"
    }
    healthy = not problems
    return EndpointStatus(
        address=_address(host),
        role=BACKUP if _int(host.get("priority")) > 0 else PRIMARY,
        health=", ".join(problems) if problems else ("healthy" if checked else "no check"),
        healthy=healthy,
        requests=counters.get("rq_total", 0),
        errors=counters.get("rq_error", 0),
        connect_failures=counters.get("cx_connect_fail", 0),
    )


def _summary(per_endpoint: list[EndpointStatus], checked: bool) -> str:
    total = len(per_endpoint)
    healthy = sum(1 for e in per_endpoint if e.healthy)
    if not total:
        return "no endpoints"
    if not checked:
        return "no check" if healthy == total else f"{total - healthy}/{total} ejected"
    if healthy == total:
        return "healthy"
    return "unhealthy" if healthy == 0 else f"{healthy}/{total} healthy"


def upstream_status(
    cluster: dict[str, Any],
    stats: dict[str, Any],
    checked: set[str],
    inventory_clusters: Optional[set[str]],
) -> Upstream:
    name = str(cluster.get("name", ""))
    is_checked = name in checked
    per_endpoint = [endpoint_status(h, is_checked) for h in _dicts(cluster.get("host_statuses"))]

    def stat(key: str) -> int:
        return _int(stats.get(f"cluster.{name}.{key}"))

    return Upstream(
        name=name,
        endpoints=len(per_endpoint),
        healthy=sum(1 for e in per_endpoint if e.healthy),
        health=_summary(per_endpoint, is_checked),
        active_connections=stat("upstream_cx_active"),
        connections=stat("upstream_cx_total"),
        requests=stat("upstream_rq_completed"),
        errors_5xx=stat("upstream_rq_5xx"),
        connect_failures=stat("upstream_cx_connect_fail"),
        in_inventory=(name in inventory_clusters) if inventory_clusters is not None else None,
        checked=is_checked,
        retries=stat("upstream_rq_retry"),
        bytes_sent=stat("upstream_cx_tx_bytes_total"),
        bytes_received=stat("upstream_cx_rx_bytes_total"),
        udp=f"cluster.{name}.udp.sess_tx_datagrams" in stats,
        datagrams_sent=stat("udp.sess_tx_datagrams"),
        datagrams_received=stat("udp.sess_rx_datagrams"),
        per_endpoint=per_endpoint,
    )


def missing(name: str) -> Upstream:
    """An upstream of the inventory that Envoy does not have."""
    return Upstream(name, 0, 0, "not in Envoy", 0, 0, 0, 0, 0, in_inventory=True)


def size(count: int) -> str:
    """Bytes for a person: 512B, 1.2K, 3.4M (1024-based, at most 5 characters)."""
    value = float(count)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{int(value)}{unit}" if unit == "B" or value >= 100 else f"{value:.1f}{unit}"
        value /= 1024
    return f"{count}B"


def traffic(upstream: Upstream) -> tuple[str, str]:
    """The sent and received columns: datagrams for UDP, bytes otherwise."""
    if upstream.udp:
        return f"{upstream.datagrams_sent} dgrams", f"{upstream.datagrams_received} dgrams"
    return size(upstream.bytes_sent), size(upstream.bytes_received)
