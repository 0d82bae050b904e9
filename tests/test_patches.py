"""Patches: Envoy config the inventory cannot say, merged into named generated resources.
Real Envoy serves what they say; a patch whose target is not generated is an error; Envoy's
own validation refuses a wrong one before anything is written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import HttpBackend, free_ports, http_get, write_inventory
from test_apply_helpers import Live, file_facts, run_xdsgen, start_live

from xdsgen.patching import merge


def test_merge_is_rfc_7386() -> None:
    """The examples of RFC 7386, section 3 (lists replace; null removes)."""
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, expected in cases:
        assert merge(target, patch) == expected, (target, patch)


def inventory(tmp_path: Path, patches: list[dict[str, Any]], **extra: Any) -> Path:
    return write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config"), "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
            "patches": patches,
            **extra,
        },
    )


def test_a_patch_on_nothing_generated_is_an_error(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        [
            {"cluster": "ap", "merge": {"lb_policy": "RANDOM"}},
            {"route": "vhost0_any/7", "merge": {}},
            {"connection_manager": "https_ipv4", "merge": {}},
        ],
    )
    result = run_xdsgen("validate", str(path))
    assert result.returncode == 1
    text = path.read_text().splitlines()

    def at(key: str) -> str:
        number = next(i for i, line in enumerate(text, 1) if f"- {key}:" in line)
        return f"{path}:{number}:3"

    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert lines == [
        f"{at('cluster')}: error: patches[0].cluster: cluster 'ap' is not generated from this "
        "inventory: the patch would change nothing (did you mean 'app'?)",
        f"{at('route')}: error: patches[1].route: route 'vhost0_any/7' is not generated from "
        "this inventory: the patch would change nothing (did you mean 'vhost0_any/0'?)",
        f"{at('connection_manager')}: error: patches[2].connection_manager: connection manager "
        "'https_ipv4' is not generated from this inventory: the patch would change nothing "
        "(did you mean 'http_ipv4'?)",
    ]


def test_two_targets_in_one_patch_are_refused(tmp_path: Path) -> None:
    path = inventory(tmp_path, [{"cluster": "app", "listener": "http_ipv4", "merge": {}}])
    result = run_xdsgen("validate", str(path))
    assert result.returncode == 1 and "patches[0]" in result.stderr


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("patches")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config")
    seed.close()


@pytest.mark.envoy
def test_envoy_serves_what_the_patches_say(live: Live) -> None:
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    try:
        path = live.inventory(
            "patched",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint},
            http=[
                {
                    "domains": ["app.example.com"],
                    "routes": [
                        {"prefix": "/api/", "upstream": "app"},
                        {"prefix": "/", "upstream": "app"},
                    ],
                }
            ],
            patches=[
                {
                    "route": "vhost0_app.example.com/0",
                    "merge": {
                        "request_headers_to_add": [{"header": {"key": "x-patched", "value": "yes"}}]
                    },
                },
                {"connection_manager": "http_ipv4", "merge": {"server_name": "edge-proxy"}},
                {
                    "cluster": "app",
                    "merge": {"circuit_breakers": {"thresholds": [{"max_retries": 7}]}},
                },
            ],
        )
        plan = run_xdsgen("apply", str(path), "--dry-run")
        assert plan.returncode == 5
        result = run_xdsgen("apply", str(path))
        assert result.returncode == 0, result.stderr
        status, headers, body = http_get("127.0.0.1", http4, "/api/x", {"Host": "app.example.com"})
        assert status == 200 and headers["server"] == "edge-proxy"
        assert json.loads(body)["headers"].get("x-patched") == "yes"
        _, _, body = http_get("127.0.0.1", http4, "/other", {"Host": "app.example.com"})
        assert "x-patched" not in {k.lower() for k in json.loads(body)["headers"]}
        dump = json.loads(live.envoy.admin("/config_dump?resource=dynamic_active_clusters"))
        (cluster,) = [c["cluster"] for c in dump["configs"] if c["cluster"]["name"] == "app"]
        assert cluster["circuit_breakers"]["thresholds"][0]["max_retries"] == 7
        explained = run_xdsgen("explain", str(path), "app.example.com/api/x")
        assert (
            "  patch  connection manager http_ipv4; route vhost0_app.example.com/0; "
            "cluster app" in explained.stdout
        ), explained.stdout
        assert run_xdsgen("apply", str(path), "-v").stdout.strip() == "unchanged"
    finally:
        app.close()


@pytest.mark.envoy
def test_envoy_validates_a_patch_before_anything_is_written(live: Live) -> None:
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    try:
        good = live.inventory(
            "patch-good",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        )
        assert run_xdsgen("apply", str(good)).returncode == 0
        before = file_facts(live.config)
        bad = live.inventory(
            "patch-bad",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
            patches=[{"cluster": "app", "merge": {"lb_policy": "NO_SUCH_POLICY"}}],
        )
        result = run_xdsgen("apply", str(bad))
        assert result.returncode == 3, result.stderr
        assert "NO_SUCH_POLICY" in result.stderr and "Traceback" not in result.stderr
        assert file_facts(live.config) == before
    finally:
        app.close()
