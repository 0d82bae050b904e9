"""The comparer's questions about the edge features (issue 15): does the draft check,
eject, fail over, speak HTTP/2 and compress as the original does? Each answer that
differs is a difference naming both sides."""

from __future__ import annotations

from typing import Optional

from xdsgen.importer.differences import Report, Resource
from xdsgen.importer.read_resilience import describe_outlier
from xdsgen.importer.semantics import Cluster, HealthCheck, Vhost


def _check(check: Optional[HealthCheck]) -> str:
    return "no active health checks" if check is None else f"health checks {check.describe()}"


def _panic(value: Optional[float]) -> str:
    if value is None:
        return "panic mode below 50% healthy (Envoy's default)"
    return "no panic mode" if value == 0 else f"panic mode below {value:g}% healthy"


def _spill(value: Optional[int]) -> str:
    if value is None:
        return "priority levels overprovisioned 1.4x (Envoy's default)"
    return f"priority levels overprovisioned {value / 100:g}x"


def compare_cluster(report: Report, ours: Cluster, theirs: Cluster, resource: Resource) -> None:
    """Differences in how the two clusters meet failures."""

    def differ(topic: str, message: str) -> None:
        report.differ(topic, ours.where, message, None, None, resource)

    if sorted(ours.backup) != sorted(theirs.backup):
        differ(
            "routing",
            f"backup endpoints {', '.join(ours.backup) or 'none'}; the draft "
            f"{', '.join(theirs.backup) or 'none'}",
        )
    if ours.health != theirs.health:
        differ("health-checks", f"{_check(ours.health)}; the draft {_check(theirs.health)}")
    if ours.outlier != theirs.outlier:
        differ(
            "health-checks",
            f"{describe_outlier(ours.outlier)}; the draft {describe_outlier(theirs.outlier)}",
        )
    if ours.panic_threshold != theirs.panic_threshold:
        differ(
            "health-checks",
            f"{_panic(ours.panic_threshold)}; the draft {_panic(theirs.panic_threshold)}",
        )
    if ours.backup and ours.overprovisioning != theirs.overprovisioning:
        differ(
            "routing",
            f"{_spill(ours.overprovisioning)}; the draft {_spill(theirs.overprovisioning)}",
        )
    if ours.http2 != theirs.http2:
        said = {True: "HTTP/2", False: "HTTP/1.1"}
        differ(
            "upstream",
            f"it speaks {said[ours.http2]} to the upstream; the draft {said[theirs.http2]}",
        )


def compare_compression(
    report: Report,
    ours: Optional[Vhost],
    theirs: Optional[Vhost],
    shown: str,
    context: str,
    resource: Resource,
) -> None:
    if ours is None or theirs is None or ours.compression == theirs.compression:
        return

    def said(vhost: Vhost) -> str:
        return ", ".join(vhost.compression) if vhost.compression else "no compression"

    report.differ(
        "responses",
        ours.where,
        f"{shown} ({context}): responses get {said(ours)}; the draft {said(theirs)}",
        None,
        None,
        resource,
    )
