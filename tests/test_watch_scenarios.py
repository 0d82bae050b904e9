"""The watcher's failures reported in issue 9, each against a real Envoy on loopback:
--debounce ignored, a save with a pause mid-write applied half-written, deaf after its
directory was removed, a certificate appearing after the edit that names it never picked
up, a half-applied config left after Envoy restarted mid-apply, and cron's apply of
another inventory never undone."""

from __future__ import annotations

import os
import select
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Certs, HttpBackend, free_ports, http_get, peer_certificate_names
from test_apply_helpers import Live, fast_backend, run_xdsgen, start_live, wait_until
from test_watch_helpers import (
    Watcher,
    backend_at,
    inventory_data,
    inventory_text,
    save_by_rename,
    wait_for_backend,
)

from xdsgen import inotify

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("watch-scenarios")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config", admin)
    seed.close()


@pytest.fixture
def backends() -> Iterator[tuple[HttpBackend, HttpBackend]]:
    a, b = fast_backend("a"), fast_backend("b")
    yield a, b
    a.close()
    b.close()


def test_debounce_is_honoured(live: Live, tmp_path: Path, backends: Any) -> None:
    """30 saves 100 ms apart with --debounce 0.5: one apply, of the last save."""
    a, _ = backends
    (http4,) = free_ports(1)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a, prefix="/start/"))
    watcher = Watcher(inventory, debounce=0.5)
    try:
        watcher.wait_line("applied:")
        for i in range(30):
            save_by_rename(inventory, inventory_text(live, http4, a, prefix=f"/p{i}/"))
            time.sleep(0.1)
        watcher.wait_line("applied:", 2)
        time.sleep(1.0)
        assert watcher.count("applied:") == 2, watcher.lines
        assert backend_at(http4, "/p29/x") == "a"
        assert backend_at(http4, "/p28/x") == "status 404"
    finally:
        watcher.kill()


def test_a_save_with_a_pause_mid_write_is_never_applied_half_written(
    live: Live, tmp_path: Path, backends: Any
) -> None:
    """An in-place write that stops for 200 ms half-way: its first half is a valid inventory
    without the probed vhost. Applied half-written, that vhost would answer 404."""
    a, b = backends
    (http4,) = free_ports(1)

    def text(other: HttpBackend, with_probe: bool = True) -> str:
        data = inventory_data(live, http4, a)
        data["upstreams"] = {"a": a.endpoint, "b": b.endpoint}
        data["http"] = [
            {"domains": ["other.example"], "routes": [{"prefix": "/", "upstream": other.name}]},
            # the other backend, so that no upstream is unused (that would be a warning)
            {
                "domains": ["probe.example"],
                "routes": [{"prefix": "/", "upstream": "b" if other.name == "a" else "a"}],
            },
        ][: 2 if with_probe else 1]
        return yaml.safe_dump(data, sort_keys=False)

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(text(a))
    new, half = text(b), text(b, with_probe=False)
    assert new.startswith(half)
    watcher = Watcher(inventory)  # the default debounce: much shorter than the pause
    statuses: list[int] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            try:
                statuses.append(http_get("127.0.0.1", http4, "/", {"Host": "probe.example"})[0])
            except OSError:
                statuses.append(0)
            time.sleep(0.005)

    prober = threading.Thread(target=probe, daemon=True)
    try:
        watcher.wait_line("applied:")
        prober.start()
        wait_until(lambda: len(statuses) > 5, 5, "the first probes")
        with open(inventory, "w") as handle:
            handle.write(half)
            handle.flush()
            time.sleep(0.2)
            handle.write(new[len(half) :])
        watcher.wait_line("applied:", 2)
        assert backend_at(http4, "/", "other.example") == "b"
        time.sleep(0.3)
        done.set()
        prober.join(5)
        assert len(statuses) > 20 and set(statuses) == {200}, statuses
        assert watcher.count("applied:") == 2 and watcher.errors == [], watcher.errors
    finally:
        done.set()
        watcher.kill()


def test_the_inventory_directory_removed_and_recreated(
    live: Live, tmp_path: Path, backends: Any
) -> None:
    a, b = backends
    (http4,) = free_ports(1)
    directory = tmp_path / "conf"
    directory.mkdir()
    inventory = directory / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a))
    watcher = Watcher(inventory)
    try:
        watcher.wait_line("applied:")
        shutil.rmtree(directory)
        watcher.wait_line("keeping the running config", errors=True)  # the inventory is gone
        assert backend_at(http4, "/x") == "a"
        directory.mkdir()
        save_by_rename(inventory, inventory_text(live, http4, b))
        wait_for_backend(http4, "/x", "b", 10)
        watcher.wait_line("fixed: applied:")
        # And it still hears the directory it now watches.
        save_by_rename(inventory, inventory_text(live, http4, a))
        watcher.wait_line("applied:", 3)
        assert backend_at(http4, "/x") == "a"
    finally:
        watcher.kill()


def test_a_certificate_appearing_after_the_edit_that_names_it(
    live: Live, tmp_path: Path, backends: Any
) -> None:
    a, _ = backends
    http4, https4 = free_ports(2)
    certs = Certs(tmp_path / "certs")
    issued = certs.issue("site", "site.example.com")
    cert_dir = tmp_path / "le" / "live"  # neither exists yet
    cert, key = cert_dir / "fullchain.pem", cert_dir / "privkey.pem"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a))
    watcher = Watcher(inventory)
    try:
        watcher.wait_line("applied:")
        save_by_rename(inventory, inventory_text(live, http4, a, tls=(cert, key, https4)))
        watcher.wait_line("keeping the running config", errors=True)
        assert any("does not exist" in line for line in watcher.errors), watcher.errors
        time.sleep(0.3)
        cert_dir.mkdir(parents=True)
        shutil.copy(issued[1], key)
        shutil.copy(issued[0], cert)

        def served() -> bool:
            try:
                names = peer_certificate_names("127.0.0.1", https4, "site.example.com")
            except OSError:
                return False
            return "site.example.com" in names

        wait_until(served, 10, "the new certificate served on the https listener")
        watcher.wait_line("fixed: applied:")
    finally:
        watcher.kill()


def test_cron_applying_another_inventory_is_undone_at_the_recheck(
    live: Live, tmp_path: Path, backends: Any
) -> None:
    a, b = backends
    (http4,) = free_ports(1)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a))
    other = tmp_path / "other.yaml"
    other.write_text(inventory_text(live, http4, b))
    watcher = Watcher(inventory, "--recheck", "1")
    try:
        watcher.wait_line("applied:")
        assert backend_at(http4, "/x") == "a"
        result = run_xdsgen("apply", str(other), "--no-envoy-check")
        assert result.returncode == 0, result.stderr
        assert backend_at(http4, "/x") == "b"
        wait_for_backend(http4, "/x", "a", 5)  # within the recheck period (and some slack)
        watcher.wait_line("(recheck)")
        assert watcher.count("applied:") == 2 and watcher.errors == []
    finally:
        watcher.kill()


def kill_on_first_write(config: Path, envoy: Any) -> threading.Thread:
    """SIGKILL Envoy the moment a new cds.yaml is moved into place: the watcher's apply is
    then between its first step and its last."""
    notifier = inotify.Inotify()
    notifier.add_watch(str(config))

    def run() -> None:
        try:
            while True:
                select.select([notifier.fileno()], [], [], 20)
                events = notifier.read()
                if not events:
                    return
                if any(e.name == "cds.yaml" and e.mask & inotify.IN_MOVED_TO for e in events):
                    os.kill(envoy.proc.pid, signal.SIGKILL)
                    return
        finally:
            notifier.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_envoy_restarted_mid_apply_gets_the_rest_without_an_edit(
    tmp_path: Path, backends: Any
) -> None:
    a, b = backends
    admin, http4 = free_ports(2)
    with start_live(tmp_path, admin, a.endpoint, http4) as envoy:
        live = Live(envoy, tmp_path, tmp_path / "config", admin)
        data = inventory_data(live, http4, a)
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        # The restart alone must trigger it. (--timeout: a dead admin is retried that long.)
        watcher = Watcher(inventory, "--recheck", "0", "-v", "--timeout", "2")
        try:
            watcher.wait_line("applied:")
            killer = kill_on_first_write(live.config, envoy)
            # New upstream (CDS, the first step) and the route to it (RDS, a later one).
            data["upstreams"]["b"] = b.endpoint
            data["http"][0]["routes"][0]["upstream"] = "b"
            save_by_rename(inventory, yaml.safe_dump(data, sort_keys=False))
            killer.join(10)
            envoy.proc.wait(10)
            watcher.wait_line("error:", errors=True, timeout=30)  # the apply was cut short
            rds = "".join(p.read_text() for p in live.config.glob("rds_*.yaml"))
            assert 'name: "b"' in (live.config / "cds.yaml").read_text()
            assert 'cluster: "b"' not in rds and 'cluster: "a"' in rds
            envoy.start()  # on the same files: the new cluster, the old routes
            wait_for_backend(http4, "/x", "b", 10)
            watcher.wait_line("(Envoy restarted)")
        finally:
            watcher.kill()
