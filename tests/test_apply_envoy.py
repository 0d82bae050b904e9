"""`xdsgen apply` against one real Envoy (started once for the module).

Every test applies its own inventory into the same config directory: apply must get from
whatever the previous test left to the new config, as it does on a router.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from harness import (
    Certs,
    HttpBackend,
    TcpEcho,
    free_ports,
    http_get,
    peer_certificate_names,
    tcp_roundtrip,
)
from test_apply_helpers import (
    Live,
    fast_backend,
    file_facts,
    parse_yaml,
    run_xdsgen,
    start_live,
    wait_until,
    without_source_notes,
)

from xdsgen.errors import EnvoyRefused
from xdsgen.live.orchestrate import Options, apply
from xdsgen.live.state import State
from xdsgen.live.transition import read_files as read_config_files

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("apply")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config", admin)
    seed.close()


def quick(**overrides: Any) -> Options:
    return Options(**{"timeout": 10.0, "settle": 0.2, "lock_timeout": 20.0, **overrides})


# --------------------------------------------------------------------------- traffic


class Probe:
    """Sends one request after another from a thread, recording (start, end, ok, answer)."""

    def __init__(self, name: str, call: Callable[[], str], expect: Callable[[str], bool]):
        self.name = name
        self.call = call
        self.expect = expect
        self.results: list[tuple[float, float, bool, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                answer = self.call()
                ok = self.expect(answer)
            except (OSError, AssertionError, ValueError) as exc:
                answer, ok = f"{type(exc).__name__}: {exc}", False
            self.results.append((start, time.monotonic(), ok, answer))
            time.sleep(0.001)

    def failures_within(self, start: float, end: float) -> list[tuple[float, float, bool, str]]:
        return [r for r in self.results if r[0] >= start and r[1] <= end and not r[2]]

    def successes_within(self, start: float, end: float) -> int:
        return sum(1 for r in self.results if r[0] >= start and r[1] <= end and r[2])


def _backend_of(port: int, host: str, path: str, address: str = "127.0.0.1") -> str:
    status, _, body = http_get(address, port, path, {"Host": host}, timeout=3)
    if status != 200:
        return f"status {status}"
    return str(json.loads(body)["backend"])


def test_applies_under_traffic_fail_no_request(live: Live) -> None:
    """Add, change, rename and remove upstreams, vhosts and listeners while requests flow:
    every request that both the old and the new config serve succeeds, every step is
    confirmed through the admin interface."""
    a1, a2, b = fast_backend("a"), fast_backend("a"), fast_backend("b")
    t1, t2 = TcpEcho("t1"), TcpEcho("t2")
    http4, tcp1, tcp2, http6 = free_ports(4)
    listen4 = {"address": "127.0.0.1", "http": http4}
    catch_all = {
        "domains": ["*"],
        "routes": [{"prefix": "/a/", "upstream": "a"}, {"prefix": "/", "upstream": "a"}],
    }
    stages: list[dict[str, Any]] = [
        {  # 0: one upstream, two vhosts, a TCP map
            "listen": {"ipv4": listen4},
            "upstreams": {"a": a1.endpoint, "t": t1.endpoint},
            "http": [
                {"domains": ["x.test"], "routes": [{"prefix": "/", "upstream": "a"}]},
                catch_all,
            ],
            "tcp": [{"port": tcp1, "upstream": "t"}],
        },
        {  # 1: add an upstream, a route and a vhost
            "listen": {"ipv4": listen4},
            "upstreams": {"a": a1.endpoint, "b": b.endpoint, "t": t1.endpoint},
            "http": [
                {"domains": ["x.test"], "routes": [{"prefix": "/", "upstream": "a"}]},
                {"domains": ["y.test"], "routes": [{"prefix": "/", "upstream": "b"}]},
                {
                    "domains": ["*"],
                    "routes": [{"prefix": "/b/", "upstream": "b"}, *catch_all["routes"]],
                },
            ],
            "tcp": [{"port": tcp1, "upstream": "t"}],
        },
        {  # 2: rename upstreams (HTTP and TCP), the TCP one to another backend
            "listen": {"ipv4": listen4},
            "upstreams": {"alpha": a1.endpoint, "b": b.endpoint, "tee": t2.endpoint},
            "http": [
                {"domains": ["x.test"], "routes": [{"prefix": "/", "upstream": "alpha"}]},
                {"domains": ["y.test"], "routes": [{"prefix": "/", "upstream": "b"}]},
                {
                    "domains": ["*"],
                    "routes": [
                        {"prefix": "/b/", "upstream": "b"},
                        {"prefix": "/a/", "upstream": "alpha"},
                        {"prefix": "/", "upstream": "alpha"},
                    ],
                },
            ],
            "tcp": [{"port": tcp1, "upstream": "tee"}],
        },
        {  # 3: add listeners: a second TCP map and the IPv6 family
            "listen": {"ipv4": listen4, "ipv6": {"address": "::1", "http": http6}},
            "upstreams": {"alpha": a1.endpoint, "b": b.endpoint, "tee": t2.endpoint},
            "http": [
                {"domains": ["x.test"], "routes": [{"prefix": "/", "upstream": "alpha"}]},
                {"domains": ["y.test"], "routes": [{"prefix": "/", "upstream": "b"}]},
                {
                    "domains": ["*"],
                    "routes": [
                        {"prefix": "/b/", "upstream": "b"},
                        {"prefix": "/a/", "upstream": "alpha"},
                        {"prefix": "/", "upstream": "alpha"},
                    ],
                },
            ],
            "tcp": [
                {"port": tcp1, "upstream": "tee"},
                {"port": tcp2, "upstream": "tee", "families": ["ipv4"]},
            ],
        },
        {  # 4: remove a vhost, an upstream, a route and a listener; move alpha to another backend
            "listen": {"ipv4": listen4, "ipv6": {"address": "::1", "http": http6}},
            "upstreams": {"alpha": a2.endpoint, "tee": t2.endpoint},
            "http": [
                {"domains": ["y.test"], "routes": [{"prefix": "/", "upstream": "alpha"}]},
                {
                    "domains": ["*"],
                    "routes": [
                        {"prefix": "/a/", "upstream": "alpha"},
                        {"prefix": "/", "upstream": "alpha"},
                    ],
                },
            ],
            "tcp": [{"port": tcp1, "upstream": "tee", "families": ["ipv4"]}],
        },
        {  # 5: remove the IPv6 listener again
            "listen": {"ipv4": listen4},
            "upstreams": {"alpha": a2.endpoint, "tee": t2.endpoint},
            "http": [
                {"domains": ["y.test"], "routes": [{"prefix": "/", "upstream": "alpha"}]},
                {
                    "domains": ["*"],
                    "routes": [
                        {"prefix": "/a/", "upstream": "alpha"},
                        {"prefix": "/", "upstream": "alpha"},
                    ],
                },
            ],
            "tcp": [{"port": tcp1, "upstream": "tee", "families": ["ipv4"]}],
        },
    ]
    # Each probe: what it asks, what a good answer is, and the stages that serve it
    # (from the confirmation of the first to the start of the apply after the last).
    probes = [
        (
            Probe(
                "catch-all /a/", lambda: _backend_of(http4, "any.test", "/a/x"), lambda r: r == "a"
            ),
            0,
            5,
        ),
        (Probe("x.test", lambda: _backend_of(http4, "x.test", "/"), lambda r: r == "a"), 0, 3),
        (
            Probe("y.test", lambda: _backend_of(http4, "y.test", "/"), lambda r: r in ("a", "b")),
            1,
            5,
        ),
        (Probe("/b/", lambda: _backend_of(http4, "any.test", "/b/"), lambda r: r == "b"), 1, 3),
        (
            Probe(
                "tcp map",
                lambda: tcp_roundtrip("127.0.0.1", tcp1, b"ping", timeout=3).decode(),
                lambda r: r in ("t1:ping", "t2:ping"),
            ),
            0,
            5,
        ),
        (
            Probe(
                "tcp map 2",
                lambda: tcp_roundtrip("127.0.0.1", tcp2, b"ping", timeout=3).decode(),
                lambda r: r == "t2:ping",
            ),
            3,
            3,
        ),
        (
            Probe("ipv6", lambda: _backend_of(http6, "any.test", "/a/", "::1"), lambda r: r == "a"),
            3,
            4,
        ),
    ]
    marks: list[tuple[float, float]] = []  # (apply started, apply confirmed) per stage
    try:
        for index, stage in enumerate(stages):
            inventory = live.inventory(f"traffic{index}", **stage)
            started = time.monotonic()
            result = apply(str(inventory), quick())
            marks.append((started, time.monotonic()))
            assert result.confirmed, f"stage {index} was not confirmed"
            assert result.applied or (index == 0 and result.plan.empty)
            if index == 0:
                for probe, *_ in probes:
                    probe.thread.start()
            time.sleep(0.6)
        end = time.monotonic()
    finally:
        for probe, *_ in probes:
            probe.stop.set()
        for probe, *_ in probes:
            probe.thread.join(10)
        for backend in (a1, a2, b, t1, t2):
            backend.close()
    report = []
    for probe, first, last in probes:
        window_start = marks[first][1]
        window_end = marks[last + 1][0] if last + 1 < len(marks) else end
        failures = probe.failures_within(window_start, window_end)
        served = probe.successes_within(window_start, window_end)
        report.append(f"{probe.name}: {served} served, {len(failures)} failed {failures[:3]}")
        assert served >= 10, f"{probe.name} carried too little traffic to prove anything: {report}"
    assert all(" 0 failed" in line for line in report), "\n".join(report)


# --------------------------------------------------------------------------- refusal


def test_refused_listener_restores_the_previous_files(live: Live) -> None:
    """A port another program holds passes every xdsgen check and `envoy --mode validate`,
    but the running Envoy cannot bind it: exit 3, previous files back, old config served."""
    app = HttpBackend("app")
    http4, busy = free_ports(2)
    good = live.inventory(
        "refusal-good",
        listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
        upstreams={"app": app.endpoint},
        http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
    )
    holder = socket.socket()
    try:
        quiet = run_xdsgen("apply", str(good))
        assert (quiet.returncode, quiet.stdout, without_source_notes(quiet.stderr)) == (
            0,
            "",
            "",
        )  # cron: silent on success
        before = file_facts(live.config)
        before_versions = (
            live.envoy.stat("cluster_manager.cds.version_text"),
            live.envoy.stat("listener_manager.lds.version_text"),
        )
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        bad = live.inventory(
            "refusal-bad",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint, "other": "127.0.0.1:9"},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
            tcp=[{"port": busy, "upstream": "other"}],
        )
        result = run_xdsgen("apply", str(bad), "--timeout", "5")
        assert result.returncode == 3, result.stderr
        assert "cannot bind" in result.stderr and "Address already in use" in result.stderr
        assert "last confirmed config is restored" in result.stderr
        assert result.stdout == ""  # no TTY: the error is on stderr only
        after = file_facts(live.config)
        assert {n: f[2] for n, f in after.items()} == {n: f[2] for n, f in before.items()}
        assert not [n for n in os.listdir(live.config) if n.startswith(".xdsgen-tmp")]
        # Envoy runs the restored files: same versions, the old listener still serves.
        assert (
            live.envoy.stat("cluster_manager.cds.version_text"),
            live.envoy.stat("listener_manager.lds.version_text"),
        ) == before_versions
        assert live.envoy.stat("cluster_manager.warming_clusters") == "0"
        assert _backend_of(http4, "any", "/") == "app"
        # The state still names the good config as the last accepted one.
        assert State.load(str(live.config)).accepted[0]["files"] == read_config_files(
            str(live.config)
        )
    finally:
        holder.close()
        app.close()


def test_envoy_check_refusal_writes_nothing(live: Live, tmp_path: Path) -> None:
    """A certificate whose key belongs to another: `envoy --mode validate` refuses it
    before any file is touched (exit 3)."""
    app = HttpBackend("app")
    certs = Certs(tmp_path / "certs")
    cert, _ = certs.issue("site", "site.example.com")
    _, other_key = certs.issue("other", "other.example.com")
    http4, https4 = free_ports(2)
    try:
        good = live.inventory(
            "check-good",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        )
        assert run_xdsgen("apply", str(good)).returncode == 0
        before = file_facts(live.config)
        bad = live.inventory(
            "check-bad",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}},
            upstreams={"app": app.endpoint},
            certificates={"site": {"cert": str(cert), "key": str(other_key)}},
            http=[
                {
                    "domains": ["site.example.com"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "app"}],
                },
                {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]},
            ],
        )
        result = run_xdsgen("apply", str(bad))
        assert result.returncode == 3, result.stderr
        assert "Envoy refused" in result.stderr
        assert file_facts(live.config) == before
    finally:
        app.close()


def test_rejected_secret_of_a_new_listener_is_rolled_back(live: Live, tmp_path: Path) -> None:
    """Without the validate check the mismatched key reaches Envoy: the new listener's
    secret is rejected, the listener never warms; apply restores the files."""
    app = HttpBackend("app")
    certs = Certs(tmp_path / "certs")
    cert, _ = certs.issue("site", "site.example.com")
    _, other_key = certs.issue("other", "other.example.com")
    http4, https4 = free_ports(2)
    try:
        good = live.inventory(
            "warm-good",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        )
        apply(str(good), quick())
        before = read_config_files(str(live.config))
        bad = live.inventory(
            "warm-bad",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}},
            upstreams={"app": app.endpoint},
            certificates={"site": {"cert": str(cert), "key": str(other_key)}},
            http=[
                {
                    "domains": ["site.example.com"],
                    "tls": "site",
                    "routes": [{"prefix": "/", "upstream": "app"}],
                },
                {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]},
            ],
        )
        with pytest.raises(EnvoyRefused) as failure:
            apply(str(bad), quick(timeout=3.0, envoy_check=""))
        message = str(failure.value)
        assert "listeners: Envoy refused the update (sds.site.update_rejected went up)" in message
        assert "last confirmed config is restored and Envoy confirmed it" in message
        assert read_config_files(str(live.config)) == before
        wait_until(
            lambda: live.envoy.stat("listener_manager.total_listeners_warming") == "0",
            what="the refused listener to go away",
        )
        assert _backend_of(http4, "any", "/") == "app"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", https4), timeout=1).close()
    finally:
        app.close()


# --------------------------------------------------------------------------- no-op and atomicity


def test_noop_apply_touches_nothing(live: Live) -> None:
    app = HttpBackend("app")
    (http4,) = free_ports(1)
    inventory = live.inventory(
        "noop",
        listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
        upstreams={"app": app.endpoint},
        http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
    )
    try:
        first = run_xdsgen("apply", str(inventory), "--verbose")
        assert first.returncode == 0 and "confirmed by Envoy" in first.stdout
        # Listeners removed by this (or an earlier) test drain first; their stats go with them.
        wait_until(
            lambda: live.envoy.stat("listener_manager.total_listeners_draining") == "0",
            15,
            "removed listeners to drain",
        )
        time.sleep(0.2)
        files, counters = file_facts(live.config), live.counters()
        state = (live.config / ".xdsgen" / "state.json").stat()
        again = run_xdsgen("apply", str(inventory), "--verbose")
        assert (again.returncode, again.stdout.strip()) == (0, "unchanged")
        quiet = run_xdsgen("apply", str(inventory))
        assert (quiet.returncode, quiet.stdout, without_source_notes(quiet.stderr)) == (0, "", "")
        time.sleep(0.3)
        assert file_facts(live.config) == files
        assert live.counters() == counters
        assert (live.config / ".xdsgen" / "state.json").stat().st_mtime_ns == state.st_mtime_ns
    finally:
        app.close()


def test_in_place_write_is_not_seen_but_apply_rename_is(live: Live) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    routes = lambda name: [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": name}]}]  # noqa: E731
    try:
        first = live.inventory(
            "inplace-a",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"a": a.endpoint, "b": b.endpoint},
            http=routes("a"),
        )
        apply(str(first), quick())
        assert _backend_of(http4, "any", "/") == "a"
        second = live.inventory(
            "inplace-b",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"a": a.endpoint, "b": b.endpoint},
            http=routes("b"),
        )
        from xdsgen.pipeline import load_model, render

        new_rds = render(load_model(str(second))).files["rds_http_ipv4.yaml"]
        target = live.config / "rds_http_ipv4.yaml"
        attempts = live.envoy.stat("http.http_ipv4.rds.http_ipv4.update_attempt")
        running = live.envoy.stat("http.http_ipv4.rds.http_ipv4.version_text").strip('"')
        with open(target, "w") as handle:  # what `cp` or an editor without rename does
            handle.write(new_rds)
        time.sleep(1.0)
        assert live.envoy.stat("http.http_ipv4.rds.http_ipv4.update_attempt") == attempts
        assert _backend_of(http4, "any", "/") == "a"
        # The file on disk already holds what apply would write; apply sees that Envoy runs
        # another version and renames the file into place again.
        dry = apply(str(second), quick(dry_run=True))
        assert [(c.action, c.kind, c.name, c.detail) for c in dry.plan.changes] == [
            ("~", "route", "http_ipv4", f"Envoy runs version {running}, not the file's")
        ]
        result = apply(str(second), quick())
        assert result.confirmed
        assert int(live.envoy.stat("http.http_ipv4.rds.http_ipv4.update_attempt")) > int(attempts)
        assert _backend_of(http4, "any", "/") == "b"
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- routes drain nothing


def test_route_only_apply_keeps_open_connections(live: Live) -> None:
    app, ws = HttpBackend("app"), HttpBackend("ws")
    (http4,) = free_ports(1)

    def inventory(name: str, extra_prefix: str) -> Path:
        return live.inventory(
            name,
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint, "ws": ws.endpoint},
            http=[
                {
                    "domains": ["*"],
                    "routes": [
                        {"prefix": "/ws", "upstream": "ws", "websocket": True, "timeout": "0s"},
                        {"prefix": extra_prefix, "upstream": "ws"},
                        {"prefix": "/", "upstream": "app"},
                    ],
                }
            ],
        )

    try:
        apply(str(inventory("drain-1", "/one/")), quick())
        sock = socket.create_connection(("127.0.0.1", http4), timeout=5)
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: any\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        sock.sendall(b"before")
        assert sock.recv(100) == b"before"
        modified = live.envoy.stat("listener_manager.listener_modified")
        result = apply(str(inventory("drain-2", "/two/")), quick())
        assert [(c.action, c.kind) for c in result.plan.changes] == [("~", "route")]
        assert _backend_of(http4, "any", "/two/x") == "ws"  # the new route is live
        time.sleep(2.5)  # longer than Envoy's drain time in the harness (2 s)
        sock.sendall(b"after")
        assert sock.recv(100) == b"after"
        sock.close()
        assert live.envoy.stat("listener_manager.listener_modified") == modified
    finally:
        app.close()
        ws.close()


# --------------------------------------------------------------------------- certificates


def _tls_inventory(
    live: Live, name: str, https4: int, http4: int, cert: Path, key: Path, app: str
) -> Path:
    return live.inventory(
        name,
        listen={"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}},
        upstreams={"app": app},
        certificates={"site": {"cert": str(cert), "key": str(key)}},
        http=[
            {
                "domains": ["site.example.com"],
                "tls": "site",
                "routes": [{"prefix": "/", "upstream": "app"}],
            }
        ],
    )


def test_renewed_certificate_reaches_envoy(live: Live, tmp_path: Path) -> None:
    """acme.sh copies the renewed files over the old ones (in place), certbot swaps the
    symlinks in live/: Envoy notices neither by itself. apply does, and waits until Envoy
    hands out the new certificate."""
    app = HttpBackend("app")
    certs = Certs(tmp_path / "certs")
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    issued = [certs.issue(f"gen{i}", "site.example.com", f"gen{i}.example.com") for i in range(5)]
    cert, key = live_dir / "fullchain.pem", live_dir / "privkey.pem"
    shutil.copy(issued[0][0], cert)
    shutil.copy(issued[0][1], key)
    http4, https4 = free_ports(2)

    def served() -> list[str]:
        return peer_certificate_names("127.0.0.1", https4, "site.example.com", certs.ca_path)

    try:
        inventory = _tls_inventory(live, "certs", https4, http4, cert, key, app.endpoint)
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        assert "gen0.example.com" in served()
        assert run_xdsgen("apply", str(inventory), "-v").stdout.strip() == "unchanged"

        # acme.sh --install-cert: cat over the existing files.
        cert.write_bytes(issued[1][0].read_bytes())
        key.write_bytes(issued[1][1].read_bytes())
        time.sleep(0.5)
        assert "gen0.example.com" in served(), "Envoy picked up an in-place write by itself"
        dry = run_xdsgen("apply", str(inventory), "--dry-run")
        assert dry.returncode == 5 and "certificate files changed" in dry.stdout
        result = run_xdsgen("apply", str(inventory), "-v")
        assert result.returncode == 0, result.stderr
        assert "certificates: confirmed" in result.stdout
        assert "gen1.example.com" in served()

        # certbot: live/ holds symlinks into archive/, renewal replaces the symlinks.
        for path, source in ((cert, issued[2][0]), (key, issued[2][1])):
            path.unlink()
            path.symlink_to(source)
        time.sleep(0.5)
        assert "gen1.example.com" in served()
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        assert "gen2.example.com" in served()
        assert run_xdsgen("apply", str(inventory), "-v").stdout.strip() == "unchanged"

        # Files renamed into place: Envoy re-reads them by itself; apply finds the new
        # certificate served, has nothing to do and remembers it.
        for path, source in ((cert, issued[4][0]), (key, issued[4][1])):
            temp = live_dir / f".{path.name}.new"
            temp.write_bytes(source.read_bytes())
            path.unlink()  # drop the symlink first: os.replace onto it would not follow it
            os.replace(temp, path)
        wait_until(lambda: "gen4.example.com" in served(), 5, "Envoy to re-read renamed files")
        assert run_xdsgen("apply", str(inventory), "-v").stdout.strip() == "unchanged"
        assert run_xdsgen("apply", str(inventory), "--dry-run").returncode == 0

        # A renewal that leaves a key of another certificate: Envoy keeps the old one, exit 3.
        for path in (cert, key):
            path.unlink()
        cert.write_bytes(issued[3][0].read_bytes())
        key.write_bytes(issued[0][1].read_bytes())
        failed = run_xdsgen("apply", str(inventory), "--no-envoy-check", "--timeout", "3")
        assert failed.returncode == 3
        assert "key_rotation_failed" in failed.stderr
        assert "gen4.example.com" in served()
        key.write_bytes(issued[3][1].read_bytes())
        assert run_xdsgen("apply", str(inventory)).returncode == 0
        assert "gen3.example.com" in served()
    finally:
        app.close()


# --------------------------------------------------------------------------- rollback


def test_rollback_command_returns_to_the_previous_config(live: Live) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)

    def inventory(name: str, upstream: str) -> Path:
        return live.inventory(
            name,
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={upstream: (a if upstream == "a" else b).endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": upstream}]}],
        )

    try:
        assert run_xdsgen("apply", str(inventory("rb-a", "a"))).returncode == 0
        first = read_config_files(str(live.config))
        assert run_xdsgen("apply", str(inventory("rb-b", "b"))).returncode == 0
        second = read_config_files(str(live.config))
        assert _backend_of(http4, "any", "/") == "b"
        dry = run_xdsgen("rollback", "--config-dir", str(live.config), "--dry-run")
        assert dry.returncode == 5
        assert [line.split()[:3] for line in dry.stdout.splitlines()[:3]] == [
            ["+", "cluster", "a"],
            ["-", "cluster", "b"],
            ["~", "route", "http_ipv4"],
        ]
        result = run_xdsgen("rollback", "--config-dir", str(live.config), "-v")
        assert result.returncode == 0, result.stderr
        assert "rolled back" in result.stdout and "confirmed by Envoy" in result.stdout
        assert read_config_files(str(live.config)) == first
        assert _backend_of(http4, "any", "/") == "a"
        # A second rollback undoes the first.
        assert run_xdsgen("rollback", str(inventory("rb-b", "b"))).returncode == 0
        assert read_config_files(str(live.config)) == second
        assert _backend_of(http4, "any", "/") == "b"
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- lock


def test_concurrent_applies_are_serialized(live: Live) -> None:
    import subprocess
    import sys

    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    inventories = [
        live.inventory(
            f"lock-{name}",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={name: backend.endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": name}]}],
        )
        for name, backend in (("a", a), ("b", b))
    ]
    try:
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "xdsgen", "apply", str(path), "-v", "--no-envoy-check"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in inventories
        ]
        outputs = [p.communicate(timeout=60) for p in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
        # Each ran its steps whole: the step lines of one never sit inside the other's.
        for out, _ in outputs:
            assert "confirmed by Envoy" in out
        final = read_config_files(str(live.config))
        from xdsgen.pipeline import load_model, render

        candidates = [render(load_model(str(p))).files for p in inventories]
        assert final in candidates
        assert (
            live.envoy.stat("listener_manager.lds.version_text")
            == '"' + final["lds.yaml"].split('"')[1] + '"'
        )

        # While another holder keeps the lock, apply gives up after --lock-timeout: exit 4.
        from xdsgen.live.lock import locked

        with locked(str(live.config), 1):
            started = time.monotonic()
            result = run_xdsgen("apply", str(inventories[0]), "--lock-timeout", "0.5")
            assert result.returncode == 4, result.stderr
            assert "holds the lock" in result.stderr and "--lock-timeout" in result.stderr
            assert time.monotonic() - started < 10
        assert read_config_files(str(live.config)) == final
    finally:
        a.close()
        b.close()


def test_unreachable_admin_writes_nothing_unless_no_confirm(live: Live, tmp_path: Path) -> None:
    """A silent admin is exit 6 with nothing written (cron must not log a dead Envoy as
    success); --no-confirm writes anyway, `--settle` apart, and says nothing was confirmed."""
    app = HttpBackend("app")
    (http4, nothing) = free_ports(2)
    try:
        inventory = live.inventory(
            "noadmin",
            listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
            upstreams={"app": app.endpoint},
            http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        )
        before = file_facts(live.config)
        refused = run_xdsgen(
            "apply", str(inventory), "--admin", f"127.0.0.1:{nothing}", "--timeout", "1"
        )
        assert refused.returncode == 6, refused.stderr
        assert "unreachable" in refused.stderr and "nothing was written" in refused.stderr
        assert file_facts(live.config) == before
        result = run_xdsgen(
            "apply",
            str(inventory),
            "--admin",
            f"127.0.0.1:{nothing}",
            "--settle",
            "0.3",
            "--no-confirm",
        )
        assert result.returncode == 0, result.stderr
        assert "nothing was confirmed" in result.stderr
        # Envoy (whose admin we did not ask) still got every file, in order.
        wait_until(lambda: _backend_of(http4, "any", "/") == "app", what="the listener")
        assert (
            parse_yaml(live.config / ".xdsgen" / "state.json")["accepted"][0]["confirmed"] is False
        )
    finally:
        app.close()


def test_terminal_without_rich_shows_the_plan_and_the_result(live: Live) -> None:
    """OpenWrt has no rich: on a terminal, apply still shows the plan and the result line
    (a person is watching whether or not there is colour; --no-color too)."""
    from test_console import ANSI, run_on_pty

    app = HttpBackend("app")
    (http4,) = free_ports(1)
    try:
        for index, extra in enumerate(([], ["--no-color"])):
            inventory = live.inventory(
                f"pty{index}",
                listen={"ipv4": {"address": "127.0.0.1", "http": http4}},
                upstreams={"app": app.endpoint},
                http=[{"domains": ["*"], "routes": [{"prefix": f"/{index}/", "upstream": "app"}]}],
            )
            text = ANSI.sub(
                "",
                run_on_pty(
                    ["apply", str(inventory), "--no-envoy-check", *extra],
                    {},
                    python_prelude="import sys\nsys.modules['rich'] = None",
                ),
            )
            lines = [line.strip() for line in text.splitlines()]
            assert any(line.split()[:3] == ["~", "route", "http_ipv4"] for line in lines), text
            assert any(
                line.startswith("applied: ") and "confirmed by Envoy" in line for line in lines
            ), text
    finally:
        app.close()
