"""Upstreams that fail well, proven with a real Envoy and real backends that the test stops
(issue 15): health checks take a dead endpoint out within interval x threshold, retries
hide the failure meanwhile, the backup answers when no endpoint is healthy, and Envoy's
own 503 then carries the vhost's error page, while a backend's own 503 page passes as
it is. `xdsgen status` counts what the test sent."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from edge_harness import PageBackend, stoppable
from harness import (
    HttpBackend,
    TcpEcho,
    UdpEcho,
    free_ports,
    http_get,
    running_envoy,
    udp_roundtrip,
    write_inventory,
)

from xdsgen.cli import main

pytestmark = pytest.mark.envoy

INTERVAL = 0.25  # seconds between checks of one endpoint (short: the test waits for them)
THRESHOLD = 2  # failed checks that make an endpoint unhealthy
PAGE = "<!doctype html><h1>Our app is resting</h1><p>Back in a minute.</p>\n"
OWN_PAGE = b"<html><body>the backend's own maintenance page</body></html>"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("failover")
    (tmp / "down.html").write_text(PAGE)
    backends = {name: stoppable(HttpBackend(name)) for name in ("a", "b", "c", "slow", "live")}
    own = PageBackend(503, OWN_PAGE, "text/html; charset=iso-8859-1")
    echo, udp = TcpEcho("echo"), UdpEcho("udp")
    admin, http_port, tcp_port, udp_port, nothing = free_ports(5)
    check = {"path": "/healthz", "interval": f"{int(INTERVAL * 1000)}ms", "timeout": "1s"}
    data = {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp / "config"),
            "admin": f"127.0.0.1:{admin}",
            "access_log": "off",
        },
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http_port}},
        "upstreams": {
            "pair": {
                "endpoints": [backends["a"].endpoint, backends["b"].endpoint],
                "backup": [backends["c"].endpoint],
                "health_check": {**check, "unhealthy_threshold": THRESHOLD},
            },
            "own": own.endpoint,
            "slow": backends["slow"].endpoint,
            "counted": {
                "endpoints": [backends["live"].endpoint, f"127.0.0.1:{nothing}"],
                "health_check": check,
            },
            "gone": f"127.0.0.1:{nothing}",
            "echo": echo.endpoint,
            "udp": udp.endpoint,
        },
        "http": [
            {
                "domains": ["app.test"],
                "error_page": "down.html",
                "routes": [
                    {"prefix": "/own", "upstream": "own"},
                    {"prefix": "/slow", "upstream": "slow", "timeout": "200ms"},
                    {"prefix": "/plain", "upstream": "pair"},
                    {"prefix": "/", "upstream": "pair", "retries": 2},
                ],
            },
            {
                "domains": ["count.test"],
                "routes": [
                    {"prefix": "/gone", "upstream": "gone"},
                    {"prefix": "/", "upstream": "counted"},
                ],
            },
        ],
        "tcp": [{"port": tcp_port, "upstream": "echo"}],
        "udp": [{"port": udp_port, "upstream": "udp"}],
    }
    inventory = write_inventory(tmp / "inventory.yaml", data)
    with running_envoy(inventory, tmp) as envoy:
        try:
            yield {
                "envoy": envoy,
                "inventory": inventory,
                "http": http_port,
                "tcp": tcp_port,
                "udp": udp_port,
                "admin": admin,
                "nothing": nothing,
                **backends,
            }
        finally:
            for backend in (*backends.values(), own, echo, udp):
                backend.close()


def get(env: dict[str, Any], path: str = "/", host: str = "app.test", **headers: str) -> Any:
    return http_get("127.0.0.1", env["http"], path, headers={"Host": host, **headers})


def backend_of(answer: Any) -> str:
    status, _, body = answer
    assert status == 200, (status, body[:200])
    return str(json.loads(body)["backend"])


def host_flags(env: dict[str, Any], cluster: str) -> dict[str, dict[str, Any]]:
    """endpoint -> its health flags, as Envoy's admin reports them."""
    url = f"http://127.0.0.1:{env['admin']}/clusters?format=json"
    with urllib.request.urlopen(url, timeout=5) as response:
        doc = json.load(response)
    (found,) = [c for c in doc["cluster_statuses"] if c["name"] == cluster]
    flags = {}
    for host in found["host_statuses"]:
        sock = host["address"]["socket_address"]
        flags[f"{sock['address']}:{sock['port_value']}"] = host["health_status"]
    return flags


def wait_unhealthy(env: dict[str, Any], cluster: str, endpoint: str, since: float) -> float:
    """Seconds from `since` until Envoy's checks mark `endpoint` unhealthy."""
    deadline = since + 10
    while time.monotonic() < deadline:
        if host_flags(env, cluster)[endpoint].get("failed_active_health_check"):
            return time.monotonic() - since
        time.sleep(0.02)
    raise AssertionError(f"{endpoint} never marked unhealthy: {host_flags(env, cluster)}")


def test_failover_from_two_endpoints_to_the_backup_to_the_error_page(env: dict[str, Any]) -> None:
    a, b, c = env["a"], env["b"], env["c"]
    # All healthy: the two endpoints share the requests, the backup gets none.
    assert {backend_of(get(env)) for _ in range(8)} == {"a", "b"}
    assert {backend_of(get(env, "/plain")) for _ in range(8)} == {"a", "b"}

    stopped = time.monotonic()
    a.stop()
    # At once: a request that meets the dead endpoint is retried on the other one.
    assert [backend_of(get(env)) for _ in range(20)] == ["b"] * 20
    took = wait_unhealthy(env, "pair", a.endpoint, stopped)
    # Within interval x threshold (plus one interval for the check in flight and slack).
    assert took < INTERVAL * (THRESHOLD + 1) + 1.0, took
    # After the check interval no request fails, even on a route without retries.
    assert [backend_of(get(env, "/plain")) for _ in range(20)] == ["b"] * 20

    stopped = time.monotonic()
    b.stop()
    wait_unhealthy(env, "pair", b.endpoint, stopped)
    # No endpoint is healthy: the backup answers, every time.
    assert [backend_of(get(env, "/plain")) for _ in range(10)] == ["c"] * 10
    assert [backend_of(get(env)) for _ in range(10)] == ["c"] * 10

    stopped = time.monotonic()
    c.stop()
    wait_unhealthy(env, "pair", c.endpoint, stopped)
    # Nothing left: Envoy's own 503 carries the vhost's page, status kept.
    status, headers, body = get(env)
    assert status == 503
    assert body.decode() == PAGE
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_a_backends_own_503_page_is_never_replaced(env: dict[str, Any]) -> None:
    status, headers, body = get(env, "/own")
    assert status == 503
    assert body == OWN_PAGE
    assert headers["content-type"] == "text/html; charset=iso-8859-1"


def test_envoys_own_504_gets_the_page_and_keeps_its_status(env: dict[str, Any]) -> None:
    status, _, body = get(env, "/slow", **{"X-Delay": "1"})
    assert status == 504
    assert body.decode() == PAGE
    # The same vhost answers normally when the backend is quick enough.
    assert backend_of(get(env, "/slow")) == "slow"


def test_a_vhost_without_a_page_keeps_envoys_text(env: dict[str, Any]) -> None:
    status, headers, body = get(env, "/gone", host="count.test")
    assert status == 503
    assert body.startswith(b"upstream connect error")
    assert headers["content-type"] == "text/plain"


def status_json(env: dict[str, Any]) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["status", "--json", str(env["inventory"])])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_status_numbers_match_what_was_sent(env: dict[str, Any]) -> None:
    envoy = env["envoy"]
    before = {u["name"]: u for u in status_json(env)["upstreams"]}
    dead = f"127.0.0.1:{env['nothing']}"
    live = env["live"].endpoint
    envoy.wait_for(
        lambda: bool(host_flags(env, "counted")[dead].get("failed_active_health_check")),
        what="the dead endpoint of counted marked by its check",
    )
    for _ in range(7):
        assert backend_of(get(env, "/", host="count.test")) == "live"
    for _ in range(3):
        assert get(env, "/gone", host="count.test")[0] == 503
    with socket.create_connection(("127.0.0.1", env["tcp"]), timeout=5) as sock:
        sock.sendall(b"hello")
        assert sock.recv(100) == b"echo:hello"
    for index in range(4):
        assert (
            udp_roundtrip("127.0.0.1", env["udp"], f"d{index}".encode()) == f"udp:d{index}".encode()
        )
    envoy.wait_for(lambda: envoy.stat("cluster.udp.udp.sess_rx_datagrams") == "4", what="UDP")

    upstreams = {u["name"]: u for u in status_json(env)["upstreams"]}
    counted, gone = upstreams["counted"], upstreams["gone"]
    sent = {name: (u["requests"] - before[name]["requests"]) for name, u in upstreams.items()}
    failed = {name: (u["errors_5xx"] - before[name]["errors_5xx"]) for name, u in upstreams.items()}
    assert (sent["counted"], failed["counted"]) == (7, 0)
    assert counted["checked"] and counted["health"] == "1/2 healthy"
    health = {e["address"]: e["health"] for e in counted["per_endpoint"]}
    assert health == {live: "healthy", dead: "failed check"}
    # Nothing listens and nothing checks: 3 requests, 3 5xx, and no claim of health.
    assert (sent["gone"], failed["gone"], gone["health"]) == (3, 3, "no check")
    assert gone["per_endpoint"][0]["health"] == "no check"
    assert (upstreams["udp"]["datagrams_sent"], upstreams["udp"]["datagrams_received"]) == (4, 4)
    assert upstreams["udp"]["udp"] is True
    assert (upstreams["echo"]["bytes_sent"], upstreams["echo"]["bytes_received"]) == (5, 10)
    pair = {e["address"]: (e["role"], e["health"]) for e in upstreams["pair"]["per_endpoint"]}
    assert pair[env["c"].endpoint][0] == "backup"

    text = CliRunner().invoke(main, ["--no-color", "status", str(env["inventory"])]).stdout
    lines = text.splitlines()
    tables = lines[lines.index("upstreams (since Envoy started)") :]
    assert all(len(line) <= 80 for line in tables), "\n".join(tables)
    row = next(line for line in tables if line.startswith("udp "))
    assert row.split()[-4:] == ["4", "dgrams", "4", "dgrams"]
    row = next(line for line in tables if line.startswith("gone "))
    total = str(gone["requests"])
    assert row.split()[1:6] == ["no", "check", "0", total, total]
