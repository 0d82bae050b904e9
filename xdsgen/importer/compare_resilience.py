"""The comparer's questions about the edge features (issue 15): does the draft check,
eject, fail over, retry, speak HTTP/2 and compress as the original does? Each answer that
differs is a difference naming both sides; where it is a field xdsgen renders itself, the
difference offers the patch that replaces xdsgen's with the original's (carrying.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from xdsgen.importer.carrying import replacing
from xdsgen.importer.compare_access import _route_resource, _where_in_vhost
from xdsgen.importer.differences import Report, Resource
from xdsgen.importer.read_resilience import (
    IDLE_TIMEOUT,
    OVERPROVISIONING,
    PANIC,
    RETRY,
    describe_outlier,
)
from xdsgen.importer.semantics import Action, Carry, Cluster, HealthCheck, Proxy, Route, Vhost
from xdsgen.importer.wording import action_text, topic


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

    def differ(topic: str, message: str, carried: Optional[Carry] = None) -> None:
        report.differ(topic, ours.where, message, None, ours, resource, carried)

    def field(key: str, path: tuple[str, ...], original: Any = None) -> Optional[Carry]:
        source = ours.raw if original is None else original
        return replacing("cluster", key, path, source, theirs.raw)

    if sorted(ours.backup) != sorted(theirs.backup):
        differ(
            "routing",
            f"backup endpoints {', '.join(ours.backup) or 'none'}; the draft "
            f"{', '.join(theirs.backup) or 'none'}",
        )
    if ours.health != theirs.health:
        differ(
            "health-checks",
            f"{_check(ours.health)}; the draft {_check(theirs.health)}",
            field("health_checks", ("health_checks",)),
        )
    if ours.outlier != theirs.outlier:
        differ(
            "health-checks",
            f"{describe_outlier(ours.outlier)}; the draft {describe_outlier(theirs.outlier)}",
            field("outlier_detection", ("outlier_detection",)),
        )
    if ours.panic_threshold != theirs.panic_threshold:
        differ(
            "health-checks",
            f"{_panic(ours.panic_threshold)}; the draft {_panic(theirs.panic_threshold)}",
            field(PANIC, ("common_lb_config", "healthy_panic_threshold")),
        )
    if ours.backup and ours.overprovisioning != theirs.overprovisioning:
        # The factor as read: an EDS cluster's comes from its load assignment.
        factor = ours.overprovisioning
        policy = {} if factor is None else {"overprovisioning_factor": factor}
        differ(
            "routing",
            f"{_spill(ours.overprovisioning)}; the draft {_spill(theirs.overprovisioning)}",
            field(OVERPROVISIONING, _FACTOR, {"load_assignment": {"policy": policy}}),
        )
    if ours.http2 != theirs.http2:
        said = {True: "HTTP/2", False: "HTTP/1.1"}
        differ(
            "upstream",
            f"it speaks {said[ours.http2]} to the upstream; the draft {said[theirs.http2]}",
        )


_FACTOR = ("load_assignment", "policy", "overprovisioning_factor")


def route_fields(
    ours_route: Optional[Route],
    theirs_route: Optional[Route],
    ours: Optional[Action],
    theirs: Optional[Action],
) -> Optional[list[tuple[str, Optional[Carry]]]]:
    """When two routes do the same but maybe for settings xdsgen renders itself (the retry
    policy, the idle timeout): each such field, with the patch that carries it (None when
    none can); None when the routes differ otherwise."""
    if ours_route is None or theirs_route is None:
        return None
    if ours == theirs:
        return []
    if not isinstance(ours, Proxy) or not isinstance(theirs, Proxy):
        return None
    if replace(ours, retry=None, idle_timeout=None) != replace(
        theirs, retry=None, idle_timeout=None
    ):
        return None
    out = []
    for key, differs in (
        (RETRY, ours.retry != theirs.retry),
        (IDLE_TIMEOUT, ours.idle_timeout != theirs.idle_timeout),
    ):
        if differs:
            path = tuple(key.split("."))
            out.append((key, replacing("route", key, path, ours_route.raw, theirs_route.raw)))
    return out


def compare_route_fields(
    comparer: Any,
    fields: list[tuple[str, Optional[Carry]]],
    ours: Route,
    theirs: Route,
    context: str,
    shown: str,
) -> None:
    """A difference for each setting of `route_fields`, with the patch that carries it."""
    what = _where_in_vhost(ours, theirs, ours.value)
    mine = comparer.original_action(ours)
    message = (
        f"{shown}, {what}: the original {action_text(mine, ours.vhost)}; the draft "
        f"{action_text(theirs.action, theirs.vhost)}"
    )
    for key, carried in fields:
        comparer.add(
            topic(mine, theirs.action),
            ours.where,
            context,
            message + (f" ({key})" if len(fields) > 1 else ""),
            _route_resource(theirs.vhost, theirs),
            ours.raw,
            ours,
            carried,
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
