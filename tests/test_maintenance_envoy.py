"""Maintenance on and off with `xdsgen apply` against a real Envoy: only the route file
changes, an open connection keeps working through both switches, and a changed page is a
change apply sees. The access log is in the json format (issue 15)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from edge_harness import KeepAlive
from harness import HttpBackend, free_ports, running_envoy, write_inventory
from test_apply_helpers import run_xdsgen

pytestmark = pytest.mark.envoy

PAGE = "<h1>Upgrading</h1><p>The wiki is back after the upgrade.</p>\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("maintenance")
    page = tmp / "pages" / "upgrade.html"
    page.parent.mkdir()
    page.write_text(PAGE)
    wiki = HttpBackend("wiki")
    (http_port,) = free_ports(1)
    log = tmp / "access.log"
    data = {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp / "config"),
            "access_log": str(log),
            "access_log_format": "json",
        },
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http_port}},
        "upstreams": {"wiki": wiki.endpoint},
        "http": [
            {
                "domains": ["wiki.test"],
                "error_page": "pages/upgrade.html",
                "maintenance": False,
                "routes": [{"prefix": "/", "upstream": "wiki"}],
            }
        ],
    }
    inventory = write_inventory(tmp / "inventory.yaml", data)
    with running_envoy(inventory, tmp) as envoy:
        try:
            yield {
                "envoy": envoy,
                "data": data,
                "tmp": tmp,
                "http": http_port,
                "page": page,
                "log": log,
            }
        finally:
            wiki.close()


def apply(env: dict[str, Any], maintenance: bool, *extra: str) -> Any:
    data = yaml.safe_load(yaml.safe_dump(env["data"]))
    data["http"][0]["maintenance"] = maintenance
    inventory = write_inventory(env["tmp"] / "inventory.yaml", data)
    return run_xdsgen("apply", "--format", "json", *extra, str(inventory))


def changed_kinds(result: Any) -> set[tuple[str, str]]:
    doc = json.loads(result.stdout)
    return {(c["kind"], c["name"]) for c in doc["plan"]["changes"]}


def test_maintenance_on_and_off_keeps_the_open_connection(env: dict[str, Any]) -> None:
    envoy = env["envoy"]
    client = KeepAlive("127.0.0.1", env["http"])
    try:
        status, body = client.get("/wiki/page", "wiki.test")
        assert status == 200 and json.loads(body)["backend"] == "wiki"
        modified = envoy.stat("listener_manager.listener_modified")

        result = apply(env, True)
        assert result.returncode == 0, result.stderr
        assert changed_kinds(result) == {("route", "http_ipv4")}  # RDS only
        for path in ("/wiki/page", "/", "/anything/else"):
            status, body = client.get(path, "wiki.test")
            assert status == 503 and body.decode() == PAGE
        # No listener was touched (no drain): the same connection answered.
        assert envoy.stat("listener_manager.listener_modified") == modified

        result = apply(env, False)
        assert result.returncode == 0, result.stderr
        assert changed_kinds(result) == {("route", "http_ipv4")}
        status, body = client.get("/wiki/page", "wiki.test")
        assert status == 200 and json.loads(body)["backend"] == "wiki"
        assert envoy.stat("listener_manager.listener_modified") == modified
    finally:
        client.close()


def test_a_changed_page_is_a_change(env: dict[str, Any]) -> None:
    assert apply(env, True).returncode == 0
    assert apply(env, True, "--dry-run").returncode == 0  # nothing to do
    env["page"].write_text("<h1>Almost done</h1>\n")
    try:
        dry = apply(env, True, "--dry-run")
        assert dry.returncode == 5, dry.stderr  # the page is part of the route file
        assert apply(env, True).returncode == 0
        client = KeepAlive("127.0.0.1", env["http"])
        try:
            assert client.get("/", "wiki.test") == (503, b"<h1>Almost done</h1>\n")
        finally:
            client.close()
    finally:
        env["page"].write_text(PAGE)
        assert apply(env, False).returncode == 0


def test_json_log_lines_name_the_listener(env: dict[str, Any]) -> None:
    KeepAlive("127.0.0.1", env["http"]).get("/json-logged", "wiki.test")
    deadline = time.monotonic() + 10  # Envoy flushes its access log every second
    while time.monotonic() < deadline:
        text = env["log"].read_text() if Path(env["log"]).exists() else ""
        lines = [json.loads(line) for line in text.splitlines() if "/json-logged" in line]
        if lines:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"not logged:\n{text[-2000:]}")
    (entry,) = lines
    assert entry["listener"] == "http_ipv4"
    assert (entry["host"], entry["method"], entry["path"]) == ("wiki.test", "GET", "/json-logged")
    assert entry["status"] == 200 and entry["upstream"] == "wiki"
    assert entry["protocol"] == "HTTP/1.1" and isinstance(entry["duration_ms"], int)
