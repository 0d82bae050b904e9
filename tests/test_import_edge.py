"""`xdsgen import` of the edge features (issue 15): health checks, retries, backup
endpoints (priority 1), HTTP/2 upstreams and compression land in their inventory keys;
a difference stays only where the draft really behaves otherwise, and is carried over as
a patch that replaces what xdsgen renders for it where Envoy accepts that."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from test_import import cds, http_lds, lines, write

from xdsgen.importer import import_files
from xdsgen.importer.carrying import replacing
from xdsgen.importer.read_resilience import XDSGEN_COMPRESSION
from xdsgen.model.compression import COMPRESSORS
from xdsgen.patching import merge
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
    result = import_files(paths, patches=False)
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
    # With patches: the check stays said by health_check; the patch replaces what xdsgen
    # renders with the original's check and removes the panic setting and the ejection
    # xdsgen adds.
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert "health_check" in result.inventory["upstreams"]["app"]
    assert result.inventory["patches"] == [
        {
            "cluster": "app",
            "merge": {
                "health_checks": [check],
                "common_lb_config": {"healthy_panic_threshold": None},
                "outlier_detection": None,
            },
        }
    ]


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
    # Envoy's gradual spill-over (no overprovisioning_factor) is named, and carried by a
    # patch that removes xdsgen's factor.
    del assignment["policy"]
    paths = write(tmp_path, lds_yaml=http_lds([ROUTE]), cds_yaml=doc)
    result = import_files(paths, patches=False)
    assert any("overprovisioned 1.4x (Envoy's default)" in line for line in lines(result))
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert result.inventory["upstreams"]["app"]["backup"] == ["127.0.0.1:3002"]
    assert result.inventory["patches"] == [
        {
            "cluster": "app",
            "merge": {"load_assignment": {"policy": {"overprovisioning_factor": None}}},
        }
    ]


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
    paths = write(tmp_path, lds_yaml=http_lds([risky]), cds_yaml=cds("app"))
    result = import_files(paths, patches=False)
    assert result.inventory["http"][0]["routes"][0]["retries"] == 3
    found = lines(result)
    assert any(
        "the original proxies to 'app' (3 retries on 5xx (maybe the same endpoint)); the draft "
        "proxies to 'app' (3 retries on connect-failure,refused-stream,reset-before-request)"
        in line
        for line in found
    ), found
    # A patch carries the original's policy: it replaces the one `retries` renders
    # (xdsgen's host predicate and attempts removed), `retries` staying in the draft.
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert result.inventory["http"][0]["routes"][0]["retries"] == 3
    (patch,) = result.patches
    assert patch.line() == "patched: route vhost0_any/0: route.retry_policy"
    assert patch.merge == {
        "route": {
            "retry_policy": {
                "num_retries": 3,
                "retry_on": "5xx",
                "retry_host_predicate": None,
                "host_selection_retry_max_attempts": None,
            }
        }
    }


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
    # gzip alone: compressed in the draft too, but brotli to the clients that prefer it;
    # a patch carries the original's filters (the draft's vhost then uses its gzip).
    gzip_only = http_lds([ROUTE], http_filters=[compressor("gzip"), router])
    paths = write(tmp_path, lds_yaml=gzip_only, cds_yaml=cds("app"))
    result = import_files(paths, patches=False)
    assert result.inventory["http"][0]["compress"] is True
    found = lines(result)
    assert any("responses get gzip; the draft brotli, gzip" in line for line in found), found
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert result.inventory["http"][0]["compress"] is True
    assert result.inventory["patches"] == [
        {"connection_manager": "http_ipv4", "merge": {"http_filters": [compressor("gzip"), router]}}
    ]
    # Settings of a compressor are carried the same way.
    tuned = compressor("gzip")
    tuned["typed_config"]["compressor_library"]["typed_config"]["compression_level"] = "BEST_SPEED"
    tuned["typed_config"]["response_direction_config"] = {
        "common_config": {"min_content_length": 100}
    }
    paths = write(
        tmp_path, lds_yaml=http_lds([ROUTE], http_filters=[tuned, router]), cds_yaml=cds("app")
    )
    assert any(
        "compressor envoy.filters.http.compressor.gzip settings" in line
        for line in lines(import_files(paths, patches=False))
    )
    result = import_files(paths)
    assert result.equivalent, lines(result)
    assert result.inventory["patches"][0]["merge"]["http_filters"] == [tuned, router]


def test_features_import_cannot_read_are_named(tmp_path: Path) -> None:
    """HTTP/3 listeners and error pages are differences, named for what they are; an
    error page is carried over as patches (its filter and the vhost's config for it)."""
    cases = Path(__file__).parent / "cases"
    for case, expected in (
        ("http3", "an HTTP/3 (QUIC) listener: not in the draft"),
        ("error-pages", "HTTP filter envoy.filters.http.custom_response"),
    ):
        config = tmp_path / case
        write_plain(str(config), render(load_model(str(cases / case / "inventory.yaml"))))
        result = import_files([str(config / "lds.yaml"), str(config / "cds.yaml")], False)
        assert not result.equivalent
        assert any(expected in line for line in lines(result)), lines(result)
    result = import_files([str(config / "lds.yaml"), str(config / "cds.yaml")])
    assert [p.line() for p in result.patches] == [
        "patched: connection manager http_ipv4: http_filters",
        "patched: route config http_ipv4: max_direct_response_body_size_bytes",
        "patched: vhost vhost0_app.example.com: typed_per_filter_config",
    ]
    # Maintenance (a direct response for every request) is not: its vhosts stay named.
    assert not result.equivalent
    assert not any("custom_response" in line for line in lines(result)), lines(result)


# --------------------------------------------------------------------------- patches


def test_a_patch_replaces_what_xdsgen_renders_with_the_originals() -> None:
    draft = {
        "cluster": "app",
        "outlier_detection": {"consecutive_gateway_failure": 3, "interval": "5s"},
    }
    original = {"cluster": "app", "outlier_detection": {"consecutive_5xx": 2, "interval": "5s"}}
    path = ("outlier_detection",)
    carried = replacing("cluster", "outlier_detection", path, original, draft)
    assert carried is not None
    # null removes what xdsgen puts there; the rest of the resource is left alone.
    assert carried.merge == {
        "outlier_detection": {
            "consecutive_5xx": 2,
            "interval": "5s",
            "consecutive_gateway_failure": None,
        }
    }
    assert merge(draft, carried.merge) == original
    # A field the original has not is removed whole.
    removed = replacing("cluster", "outlier_detection", path, {"cluster": "app"}, draft)
    assert removed is not None and removed.merge == {"outlier_detection": None}
    assert merge(draft, removed.merge) == {"cluster": "app"}
    # A field only the original has is added as it is.
    added = replacing("cluster", "outlier_detection", path, original, {"cluster": "app"})
    assert added is not None and added.merge == {"outlier_detection": original["outlier_detection"]}
    # A value Envoy could not read as it is (a null in it) is no patch.
    v2 = {"outlier_detection": {"consecutive_5xx": None}}
    assert replacing("cluster", "outlier_detection", path, v2, draft) is None


def test_a_route_retrying_and_cutting_otherwise_names_and_patches_each(tmp_path: Path) -> None:
    route = copy.deepcopy(ROUTE)
    route["route"]["idle_timeout"] = "30s"
    route["route"]["retry_policy"] = {"retry_on": "5xx", "num_retries": 3}
    paths = write(tmp_path, lds_yaml=http_lds([route]), cds_yaml=cds("app"))
    bare = import_files(paths, patches=False)
    assert [line.rsplit(" (", 1)[-1] for line in lines(bare)] == [
        "route.retry_policy)",
        "route.idle_timeout)",
    ]
    result = import_files(paths)
    assert result.equivalent, lines(result)
    (patch,) = result.patches
    assert patch.line() == "patched: route vhost0_any/0: route.idle_timeout, route.retry_policy"
    assert patch.merge["route"]["idle_timeout"] == "30s"


def test_panic_mode_and_the_rest_of_common_lb_config(tmp_path: Path) -> None:
    check = xdsgen_like_check()
    # A threshold without a value is 0%: no panic mode, as xdsgen's with a check.
    doc = cluster(
        health_checks=[check],
        outlier_detection=OUTLIER,
        common_lb_config={"healthy_panic_threshold": {}},
    )
    result = import_files(write(tmp_path, lds_yaml=http_lds([ROUTE]), cds_yaml=doc))
    assert result.equivalent and result.patches == [], lines(result)
    # The config's other settings are carried; the threshold is xdsgen's already.
    doc = cluster(
        health_checks=[check],
        outlier_detection=OUTLIER,
        common_lb_config={"healthy_panic_threshold": {"value": 0}, "update_merge_window": "2s"},
    )
    result = import_files(write(tmp_path, lds_yaml=http_lds([ROUTE]), cds_yaml=doc))
    assert result.equivalent, lines(result)
    assert result.inventory["patches"] == [
        {"cluster": "app", "merge": {"common_lb_config": {"update_merge_window": "2s"}}}
    ]


def test_a_backups_load_policy_keeps_xdsgens_factor_and_carries_the_rest(
    tmp_path: Path,
) -> None:
    doc = cluster(outlier_detection=OUTLIER)
    assignment = doc["resources"][0]["load_assignment"]
    assignment["endpoints"].append({"priority": 1, "lb_endpoints": [endpoint(3002)]})
    drops = [{"category": "throttle", "drop_percentage": {"numerator": 0}}]
    assignment["policy"] = {"overprovisioning_factor": 10000, "drop_overloads": drops}
    result = import_files(write(tmp_path, lds_yaml=http_lds([ROUTE]), cds_yaml=doc))
    assert result.equivalent, lines(result)
    assert result.inventory["upstreams"]["app"]["backup"] == ["127.0.0.1:3002"]
    assert result.inventory["patches"] == [
        {"cluster": "app", "merge": {"load_assignment": {"policy": {"drop_overloads": drops}}}}
    ]


def test_xdsgens_compression_libraries_are_the_models() -> None:
    """An original compressing with other libraries is offered its filter list."""
    libraries = tuple(c.library.rsplit(".", 1)[-1].lower() for c in COMPRESSORS)
    assert libraries == XDSGEN_COMPRESSION
