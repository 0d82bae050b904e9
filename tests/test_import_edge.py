"""`xdsgen import` of the edge features (issue 15): health checks, retries, backup
endpoints (priority 1), HTTP/2 upstreams and compression land in their inventory keys;
a difference stays only where the draft really behaves otherwise."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from test_import import cds, http_lds, lines, write

from xdsgen.importer import import_files
from xdsgen.pipeline import load_model, render, write_plain

TYPE = "type.googleapis.com/"
ROUTE = {"match": {"prefix": "/"}, "route": {"cluster": "app"}}


def endpoint(port: int) -> dict[str, Any]:
    return {
        "endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}
    }


def cluster(**extra: Any) -> dict[str, Any]:
    doc = cds("app", **extra)
    doc["resources"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"].append(endpoint(3001))
    return doc


def xdsgen_like_check(**changes: Any) -> dict[str, Any]:
    check = {
        "timeout": "2s",
        "interval": "5s",
        "no_traffic_interval": "5s",
        "unhealthy_threshold": 2,
        "healthy_threshold": 1,
        "http_health_check": {
            "path": "/healthz",
            "expected_statuses": [{"start": 200, "end": 300}],
        },
    }
    check.update(changes)
    return check


OUTLIER = {
    "consecutive_gateway_failure": 3,
    "enforcing_consecutive_gateway_failure": 100,
    "enforcing_consecutive_5xx": 0,
    "enforcing_success_rate": 0,
    "interval": "5s",
    "base_ejection_time": "30s",
    "max_ejection_percent": 100,
}


def test_a_check_xdsgen_can_say_imports_without_a_difference(tmp_path: Path) -> None:
    paths = write(
        tmp_path,
        lds_yaml=http_lds([ROUTE]),
        cds_yaml=cluster(
            health_checks=[xdsgen_like_check()],
            outlier_detection=OUTLIER,
            common_lb_config={"healthy_panic_threshold": {"value": 0}},
        ),
    )
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert result.inventory["upstreams"]["app"]["health_check"] == {
        "path": "/healthz",
        "interval": "5s",
        "timeout": "2s",
        "unhealthy_threshold": 2,
        "healthy_threshold": 1,
    }


def test_what_a_check_does_otherwise_is_named(tmp_path: Path) -> None:
    check = xdsgen_like_check(no_traffic_interval="60s")
    del check["http_health_check"]["expected_statuses"]  # Envoy's default: 200 only
    paths = write(tmp_path, lds_yaml=http_lds([ROUTE]), cds_yaml=cluster(health_checks=[check]))
    result = import_files(paths)
    assert "health_check" in result.inventory["upstreams"]["app"]
    found = lines(result)
    assert any(
        "health checks GET /healthz every 5s (60s without traffic), 2 down / 1 up, only 200 "
        "healthy; the draft health checks GET /healthz every 5s, 2 down / 1 up" in line
        for line in found
    ), found
    assert any(
        "panic mode below 50% healthy (Envoy's default); the draft no panic" in x for x in found
    )
    assert any(
        "ejects no endpoint; the draft ejects an endpoint after 3 gateway" in x for x in found
    )


def test_priority_1_is_the_backup_and_h2_carries_over(tmp_path: Path) -> None:
    doc = cluster(
        typed_extension_protocol_options={
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        outlier_detection=OUTLIER,
    )
    assignment = doc["resources"][0]["load_assignment"]
    assignment["endpoints"].append({"priority": 1, "lb_endpoints": [endpoint(3002)]})
    assignment["policy"] = {"overprovisioning_factor": 10000}
    paths = write(tmp_path, lds_yaml=http_lds([ROUTE]), cds_yaml=doc)
    result = import_files(paths)
    assert result.equivalent, lines(result)
    app = result.inventory["upstreams"]["app"]
    assert app["backup"] == ["127.0.0.1:3002"] and app["h2"] is True
    # Envoy's gradual spill-over (no overprovisioning_factor) is named.
    del assignment["policy"]
    result = import_files(write(tmp_path, lds_yaml=http_lds([ROUTE]), cds_yaml=doc))
    assert any("overprovisioned 1.4x (Envoy's default)" in line for line in lines(result))


def test_retries_import_and_other_retry_conditions_are_named(tmp_path: Path) -> None:
    safe = {
        "retry_on": "connect-failure,refused-stream,reset-before-request",
        "num_retries": 2,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                    "PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }
    route = {"match": {"prefix": "/"}, "route": {"cluster": "app", "retry_policy": safe}}
    paths = write(tmp_path, lds_yaml=http_lds([route]), cds_yaml=cds("app"))
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert result.inventory["http"][0]["routes"] == [
        {"prefix": "/", "upstream": "app", "retries": 2}
    ]
    risky = copy.deepcopy(route)
    risky["route"]["retry_policy"] = {"retry_on": "5xx", "num_retries": 3}
    result = import_files(write(tmp_path, lds_yaml=http_lds([risky]), cds_yaml=cds("app")))
    assert result.inventory["http"][0]["routes"][0]["retries"] == 3
    found = lines(result)
    assert any(
        "the original proxies to 'app' (3 retries on 5xx (maybe the same endpoint)); the draft "
        "proxies to 'app' (3 retries on connect-failure,refused-stream,reset-before-request)"
        in line
        for line in found
    ), found


def test_compression_for_every_vhost_becomes_compress_true(tmp_path: Path) -> None:
    def compressor(library: str) -> dict[str, Any]:
        return {
            "name": f"envoy.filters.http.compressor.{library}",
            "typed_config": {
                "@type": TYPE + "envoy.extensions.filters.http.compressor.v3.Compressor",
                "compressor_library": {
                    "name": library,
                    "typed_config": {
                        "@type": f"type.googleapis.com/envoy.extensions.compression.{library}."
                        f"compressor.v3.{library.capitalize()}"
                    },
                },
            },
        }

    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }
    both = http_lds([ROUTE], http_filters=[compressor("brotli"), compressor("gzip"), router])
    result = import_files(write(tmp_path, lds_yaml=both, cds_yaml=cds("app")))
    assert result.equivalent, lines(result)
    assert result.inventory["http"][0]["compress"] is True
    # gzip alone: compressed in the draft too, but brotli to the clients that prefer it.
    gzip_only = http_lds([ROUTE], http_filters=[compressor("gzip"), router])
    result = import_files(write(tmp_path, lds_yaml=gzip_only, cds_yaml=cds("app")))
    assert result.inventory["http"][0]["compress"] is True
    found = lines(result)
    assert any("responses get gzip; the draft brotli, gzip" in line for line in found), found


def test_features_import_cannot_read_are_named(tmp_path: Path) -> None:
    """HTTP/3 listeners and error pages stay differences, named for what they are."""
    cases = Path(__file__).parent / "cases"
    for case, expected in (
        ("http3", "an HTTP/3 (QUIC) listener: not in the draft"),
        ("error-pages", "HTTP filter envoy.filters.http.custom_response"),
    ):
        config = tmp_path / case
        write_plain(str(config), render(load_model(str(cases / case / "inventory.yaml"))))
        result = import_files([str(config / "lds.yaml"), str(config / "cds.yaml")])
        assert not result.equivalent
        assert any(expected in line for line in lines(result)), lines(result)
