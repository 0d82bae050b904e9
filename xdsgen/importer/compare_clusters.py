"""The comparer's questions about an upstream cluster and the draft's: its endpoints,
connect timeout, PROXY protocol and TLS to the upstream, and how it meets failures
(compare_resilience)."""

from __future__ import annotations

from xdsgen.importer.compare_resilience import compare_cluster
from xdsgen.importer.differences import Report, Resource
from xdsgen.importer.semantics import Cluster
from xdsgen.importer.shapes import nanos_text
from xdsgen.importer.wording import tls_text


def compare_upstream(report: Report, ours: Cluster, theirs: Cluster, resource: Resource) -> None:
    """Differences between a cluster of the original and the draft's cluster for it."""
    if sorted(ours.endpoints) != sorted(theirs.endpoints):
        report.differ(
            "upstream",
            ours.where,
            f"endpoints {', '.join(ours.endpoints)}; the draft {', '.join(theirs.endpoints)}",
            None,
            None,
            resource,
        )
    if ours.connect_timeout != theirs.connect_timeout:
        report.differ(
            "timeouts",
            ours.where,
            f"connect timeout {nanos_text(ours.connect_timeout)}; the draft "
            f"{nanos_text(theirs.connect_timeout)}",
            None,
            None,
            resource,
        )
    compare_cluster(report, ours, theirs, resource)
    if ours.proxy_protocol != theirs.proxy_protocol:
        report.differ(
            "upstream",
            ours.where,
            f"PROXY protocol to the upstream: {ours.proxy_protocol or 'none'}; the "
            f"draft {theirs.proxy_protocol or 'none'}",
            None,
            None,
            resource,
        )
    if ours.tls != theirs.tls:
        report.differ(
            "upstream",
            ours.where,
            f"TLS to the upstream: {tls_text(ours.tls)}; the draft {tls_text(theirs.tls)}",
            None,
            None,
            resource,
        )
