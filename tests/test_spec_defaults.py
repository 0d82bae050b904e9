"""The edge features' defaults are in spec.DEFAULTS, the one defaults table
(test_architecture ties the whole table to the schema's `default`s)."""

from __future__ import annotations

from test_architecture import schema_defaults

from xdsgen.spec import DEFAULTS


def test_the_edge_features_defaults_are_in_the_table() -> None:
    for key in (
        "upstreams.*.health_check.interval",
        "upstreams.*.health_check.unhealthy_threshold",
        "upstreams.*.health_check.healthy_threshold",
        "listen.*.http3",
        "http[].maintenance",
        "http[].compress",
        "http[].routes[].retries",
        "envoy.access_log_format",
    ):
        assert key in schema_defaults() and key in DEFAULTS, key
