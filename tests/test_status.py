"""`xdsgen status` against a real Envoy that has carried traffic."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from harness import HttpBackend, TcpEcho, free_ports, http_get, running_envoy, write_inventory

from xdsgen.cli import main
from xdsgen.files import write_atomic

pytestmark = pytest.mark.envoy


class ErrorBackend:
    """Answers every request with 500, so the upstream's 5xx count has something to count."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("status")
    app, broken, echo = HttpBackend("app"), ErrorBackend(), TcpEcho("echo")
    admin, http_port, tcp_port, nothing = free_ports(4)
    data = {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp / "config"),
            "admin": f"127.0.0.1:{admin}",
            "access_log": "off",
        },
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http_port}},
        "upstreams": {
            "app": app.endpoint,
            "broken": broken.endpoint,
            "dead": f"127.0.0.1:{nothing}",
            "echo": echo.endpoint,
        },
        "http": [
            {
                "domains": ["*"],
                "routes": [
                    {"prefix": "/broken", "upstream": "broken"},
                    {"prefix": "/dead", "upstream": "dead"},
                    {"prefix": "/", "upstream": "app"},
                ],
            }
        ],
        "tcp": [{"port": tcp_port, "upstream": "echo"}],
    }
    inventory = write_inventory(tmp / "inventory.yaml", data)
    with running_envoy(inventory, tmp) as envoy:
        for path in ("/", "/a", "/b", "/broken", "/broken/x", "/dead"):
            http_get("127.0.0.1", http_port, path)
        held = socket.create_connection(("127.0.0.1", tcp_port), timeout=5)
        held.sendall(b"hi")
        assert held.recv(100) == b"echo:hi"
        envoy.wait_for(lambda: envoy.stat("cluster.echo.upstream_cx_active") == "1", what="tcp cx")
        try:
            yield {
                "envoy": envoy,
                "inventory": inventory,
                "data": data,
                "config": tmp / "config",
                "tmp": tmp,
            }
        finally:
            held.close()
            for backend in (app, broken, echo):
                backend.close()


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def status_json(*args: str) -> dict[str, Any]:
    result = run("status", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_counts_match_the_traffic_sent(env: dict[str, Any]) -> None:
    doc = status_json(str(env["inventory"]))
    upstreams = {u["name"]: u for u in doc["upstreams"]}
    assert upstreams["app"]["requests"] == 3
    assert upstreams["app"]["errors_5xx"] == 0
    assert upstreams["broken"]["requests"] == 2
    assert upstreams["broken"]["errors_5xx"] == 2
    assert upstreams["dead"]["errors_5xx"] == 1  # Envoy's own 503: no connection
    # The request is counted with its 503 (upstream_rq_total would say 0 next to 5xx 1).
    assert upstreams["dead"]["requests"] == 1
    assert upstreams["dead"]["connect_failures"] >= 1
    assert upstreams["echo"]["active_connections"] == 1
    # Without health checks nothing is known to be healthy: "no check", never "healthy".
    assert all(u["endpoints"] == 1 and u["health"] == "no check" for u in upstreams.values())
    assert upstreams["dead"]["per_endpoint"][0]["health"] == "no check"
    assert upstreams["echo"]["bytes_sent"] == 2 and upstreams["echo"]["bytes_received"] == 7
    assert all(u["in_inventory"] for u in upstreams.values())
    files = {r["file"]: r for r in doc["resources"]}
    assert set(files) == {"cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"}
    for resource in files.values():
        assert resource["state"] == "in sync"
        assert resource["inventory"] == resource["on_disk"] == resource["applied"]
        assert resource["updates"] == 1 and resource["rejected"] == 0 and resource["failed"] == 0
    assert doc["state"] == "LIVE"
    assert doc["envoy_version"] == "1.40.0"


def test_text_table(env: dict[str, Any]) -> None:
    result = run("status", str(env["inventory"]))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Envoy 1.40.0 at {env['envoy'].admin_address}: LIVE")
    header = next(line for line in lines if line.startswith("upstream "))
    assert header.split() == [
        "upstream",
        "health",
        "active",
        "requests",
        "5xx",
        "failed",
        "cx",
        "sent",
        "received",
    ]
    broken = next(line for line in lines if line.startswith("broken "))
    cells = broken.split()
    assert cells[:3] == ["broken", "no", "check"]
    assert cells[4:6] == ["2", "2"]  # requests, 5xx
    tables = lines[lines.index("upstreams (since Envoy started)") :]
    assert all(len(line) <= 80 for line in tables), "\n".join(tables)
    dead = next(line for line in tables if line.startswith("dead ") and ":" in line)
    assert dead.split()[2:5] == ["primary", "no", "check"]  # the endpoints table
    cds = next(line for line in lines if line.startswith("cds.yaml "))
    assert cds.split()[-2:] == ["sync"] or cds.endswith("in sync")
    # Not a terminal: one line per item, for scripts (the header too).
    assert max(len(line) for line in lines[1:]) <= 80


@pytest.mark.parametrize("colour", [True, False])
def test_status_fits_an_80_column_terminal(env: dict[str, Any], colour: bool) -> None:
    """rich's tables and the plain ones: one row per line, the header wrapped at spaces."""
    from test_console import ANSI, run_on_pty

    args = ["status", str(env["inventory"]), *([] if colour else ["--no-color"])]
    text = ANSI.sub("", run_on_pty(args, {"COLUMNS": "80"}))
    lines = text.replace("\r\n", "\n").splitlines()
    assert max(len(line) for line in lines) <= 80, text
    rows = [line for line in lines if line.split()[:1] in (["cds.yaml"], ["lds.yaml"])]
    assert len(rows) == 2  # each row on one line
    head = lines[0] + " " + lines[1].strip()
    assert f"config dir {env['config']}" in head  # wrapped at a space, the path whole


def test_without_inventory_uses_the_bootstrap_paths(env: dict[str, Any]) -> None:
    doc = status_json("--admin", env["envoy"].admin_address)
    assert doc["config_dir"] == str(env["config"])
    files = {r["file"]: r for r in doc["resources"]}
    assert files["lds.yaml"]["inventory"] is None
    assert files["lds.yaml"]["on_disk"] == files["lds.yaml"]["applied"]
    assert {u["name"] for u in doc["upstreams"]} == {"app", "broken", "dead", "echo"}


def test_unreachable_envoy_exits_6_with_a_clear_message() -> None:
    (port,) = free_ports(1)
    result = run("status", "--admin", f"127.0.0.1:{port}")
    assert result.exit_code == 6
    assert f"admin interface at 127.0.0.1:{port} is not reachable" in result.stderr
    assert "Traceback" not in result.output


def test_drift_and_rejected_updates_show(env: dict[str, Any]) -> None:
    envoy, config = env["envoy"], env["config"]
    # An inventory edit that was not rendered: the inventory column differs from disk.
    data = yaml.safe_load(env["inventory"].read_text())
    data["upstreams"]["extra"] = "127.0.0.1:9"
    edited = write_inventory(env["tmp"] / "edited.yaml", data)
    files = {r["file"]: r for r in status_json(str(edited))["resources"]}
    assert files["cds.yaml"]["state"] == "inventory not applied"
    assert files["lds.yaml"]["state"] == "in sync"
    # A CDS file Envoy refuses: the rejection is counted and the file is "not applied".
    cds = config / "cds.yaml"
    good = cds.read_text()
    # Two clusters of one name: Envoy refuses the whole update.
    broken = good.replace('name: "app"', 'name: "echo"', 1).replace(
        good.split("\n", 1)[0], 'version_info: "broken"', 1
    )
    assert broken.count('\n  name: "echo"') == 2
    write_atomic(str(cds), broken)
    try:
        envoy.wait_for(
            lambda: envoy.stat("cluster_manager.cds.update_rejected") == "1", what="rejection"
        )
        files = {r["file"]: r for r in status_json(str(env["inventory"]))["resources"]}
        assert files["cds.yaml"]["rejected"] == 1
        assert files["cds.yaml"]["on_disk"] == "broken"
        assert files["cds.yaml"]["state"] == "file not applied"
        text = run("status", str(env["inventory"])).stdout
        assert "file not applied" in text
    finally:
        write_atomic(str(cds), good)


def test_format_json_error_when_the_admin_is_unreachable() -> None:
    """A script asked for JSON: it gets JSON, also when Envoy cannot be reached (exit 6)."""
    (port,) = free_ports(1)
    for flags in (["--format", "json"], ["--json"]):
        result = run("status", "--admin", f"127.0.0.1:{port}", *flags)
        assert result.exit_code == 6
        doc = json.loads(result.stdout)
        assert doc["exit_code"] == 6
        assert f"127.0.0.1:{port} is not reachable" in doc["error"]
