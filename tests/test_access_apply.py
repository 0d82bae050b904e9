"""Access (issue 14) in a live Envoy over time: an edited htpasswd file reaches Envoy with
the next apply (and only the route configurations change: no listener is drained), and a
proxy in front (trusted_proxies) names the client only when the connection comes from it.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
from access_harness import INSIDE, OUTSIDE, fetch
from harness import HttpBackend, free_ports, running_envoy, write_inventory
from test_apply_helpers import XDSGEN, run_xdsgen

pytestmark = pytest.mark.envoy

PROXY = "127.0.0.3"  # a trusted proxy in front of Envoy


def passwd(path: Path, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XDSGEN, "passwd", str(path), user],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_an_edited_htpasswd_file_reaches_envoy_with_the_next_apply(tmp_path: Path) -> None:
    web = HttpBackend("web")
    users = tmp_path / "family.htpasswd"
    assert passwd(users, "alice", "first").returncode == 0
    assert oct(users.stat().st_mode & 0o777) == "0o640"
    (http,) = free_ports(1)
    config = tmp_path / "config"
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(config), "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http}},
            "auth": {"family": {"basic": str(users)}},
            "upstreams": {"web": web.endpoint},
            "http": [
                {
                    "domains": ["*"],
                    "auth": "family",
                    "routes": [{"prefix": "/", "upstream": "web"}],
                }
            ],
        },
    )
    try:
        with running_envoy(inventory, tmp_path) as envoy:
            assert fetch(http, "/", headers=basic("alice", "first")).status == 200
            lds = (config / "lds.yaml").read_text()
            assert passwd(users, "alice", "second").returncode == 0
            assert passwd(users, "carol", "third").returncode == 0
            plan = run_xdsgen("apply", str(inventory), "--dry-run")
            assert plan.returncode == 5, plan.stdout + plan.stderr
            assert "route  http_ipv4  ~vhost vhost0_any (htpasswd file changed)" in plan.stdout
            done = run_xdsgen("apply", str(inventory), "-v")
            assert done.returncode == 0, done.stdout + done.stderr
            assert fetch(http, "/", headers=basic("alice", "first")).status == 401
            assert fetch(http, "/", headers=basic("alice", "second")).status == 200
            assert fetch(http, "/", headers=basic("carol", "third")).status == 200
            assert (config / "lds.yaml").read_text() == lds  # no listener drained
            assert envoy.stat("http.http_ipv4.rds.http_ipv4.update_rejected") in ("0", "")
            again = run_xdsgen("apply", str(inventory))
            assert again.returncode == 0 and not again.stdout.strip()
    finally:
        web.close()


def test_a_broken_htpasswd_file_is_refused_before_envoy_sees_it(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice:$apr1$x$abcdefghijklmnopqrstuv\n")
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "config")},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
            "auth": {"family": {"basic": str(users)}},
            "upstreams": {"web": "127.0.0.1:9"},
            "http": [
                {"domains": ["*"], "auth": "family", "routes": [{"prefix": "/", "upstream": "web"}]}
            ],
        },
    )
    result = run_xdsgen("validate", str(inventory))
    assert result.returncode == 1
    assert "Envoy reads only {SHA} hashes" in result.stderr + result.stdout


def test_trusted_proxies_name_the_client_only_for_their_connections(tmp_path: Path) -> None:
    web = HttpBackend("web")
    admin, http = free_ports(2)
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"admin": f"127.0.0.1:{admin}", "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http}},
            "trusted_proxies": [f"{PROXY}/32"],
            "networks": {"office": ["10.1.0.0/16"]},
            "upstreams": {"web": web.endpoint},
            "http": [
                {
                    "domains": ["app.example.com"],
                    "allow": ["office"],
                    "routes": [{"prefix": "/", "upstream": "web"}],
                },
                {"domains": ["open.example.com"], "routes": [{"prefix": "/", "upstream": "web"}]},
            ],
        },
    )

    def ask(host: str, source: str, xff: str) -> Any:
        headers = {"X-Forwarded-For": xff, "X-Forwarded-Proto": "https"} if xff else {}
        return fetch(http, "/", host, headers, source=source)

    try:
        with running_envoy(inventory, tmp_path):
            # Through the proxy: the client is XFF's last address outside trusted_proxies.
            through = ask("app.example.com", PROXY, "10.1.2.3")
            assert through.status == 200
            got = {k.lower(): v for k, v in through.json()["headers"].items()}
            assert got["x-forwarded-for"] == got["x-real-ip"] == "10.1.2.3"
            assert got["x-forwarded-proto"] == "http"  # how Envoy was reached
            # A spoofed first hop does not help: the proxy appended the real client.
            assert ask("app.example.com", PROXY, "10.1.2.3, 203.0.113.9").status == 403
            # Straight to Envoy, X-Forwarded-For is the client's word: ignored.
            assert ask("app.example.com", OUTSIDE, "10.1.2.3").status == 403
            direct = ask("open.example.com", OUTSIDE, "10.1.2.3")
            got = {k.lower(): v for k, v in direct.json()["headers"].items()}
            assert got["x-forwarded-for"] == got["x-real-ip"] == OUTSIDE
            # The proxy itself, without the header: its own address, not in office.
            assert ask("app.example.com", PROXY, "").status == 403
            assert ask("app.example.com", INSIDE, "").status == 403
    finally:
        web.close()


def test_apply_watch_applies_an_edited_htpasswd_file(tmp_path: Path) -> None:
    """`xdsgen passwd` on the running router: the watcher sees the file change and Envoy
    takes the new password without an edit of the inventory."""
    from test_watch_helpers import Watcher

    from xdsgen.filewatch import certificate_paths

    web = HttpBackend("web")
    users = tmp_path / "users.htpasswd"
    assert passwd(users, "alice", "first").returncode == 0
    (http,) = free_ports(1)
    config = tmp_path / "config"
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(config), "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http}},
            "auth": {"family": {"basic": str(users)}},
            "upstreams": {"web": web.endpoint},
            "http": [
                {"domains": ["*"], "auth": "family", "routes": [{"prefix": "/", "upstream": "web"}]}
            ],
        },
    )
    assert certificate_paths(str(inventory)) == {str(users)}
    watcher = None
    try:
        with running_envoy(inventory, tmp_path):
            watcher = Watcher(inventory)
            watcher.wait_line("watching")
            assert fetch(http, "/", headers=basic("alice", "first")).status == 200
            assert passwd(users, "alice", "second").returncode == 0
            wait_until_status(http, basic("alice", "second"), 200)
            watcher.wait_line("applied")
            assert fetch(http, "/", headers=basic("alice", "first")).status == 401
    finally:
        if watcher is not None:
            watcher.stop()
        web.close()


def wait_until_status(port: int, headers: dict[str, str], status: int) -> None:
    from test_apply_helpers import wait_until

    wait_until(lambda: fetch(port, "/", headers=headers).status == status, 10, f"{status}")
