"""`xdsgen apply --watch` as a real process against a real Envoy: edits saved by rename, a
bad edit and its all-clear, a file missing for a moment, a renewed certificate,
SIGTERM/SIGINT; inotify (without watchfiles) and the polling fallback; an idle watcher
that sleeps; every line timestamped."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Certs, HttpBackend, free_ports, peer_certificate_names
from test_apply_helpers import Live, start_live
from test_apply_kill import check_consistent, envoy_runs
from test_watch_helpers import (
    Watcher,
    assert_stamped,
    backend_at,
    inventory_text,
    save_by_rename,
    wait_for_backend,
)

from xdsgen.files import TEMP_PREFIX

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("watch")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config", admin)
    seed.close()


def poisoned_watchfiles(directory: Path) -> tuple[dict[str, str], Path]:
    """A `watchfiles` package first on the path that leaves a marker when imported: the
    watcher must never import it (OpenWrt has none, and inotify needs no dependency)."""
    package = directory / "poison" / "watchfiles"
    package.mkdir(parents=True)
    marker = directory / "watchfiles-was-imported"
    (package / "__init__.py").write_text(
        "import os\n"
        "open(os.environ['WATCHFILES_MARKER'], 'w').close()\n"
        "raise ImportError('xdsgen imported watchfiles')\n"
    )
    path = os.pathsep.join([str(directory / "poison"), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "WATCHFILES_MARKER": str(marker)}, marker


def test_watch_follows_edits_and_gives_the_all_clear_after_a_bad_one(
    live: Live, tmp_path: Path
) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    certs = Certs(tmp_path / "certs")
    cert_dir = tmp_path / "tls"
    cert_dir.mkdir()
    gen = [certs.issue(f"gen{i}", "site.example.com", f"gen{i}.example.com") for i in range(2)]
    cert, key = cert_dir / "fullchain.pem", cert_dir / "privkey.pem"
    shutil.copy(gen[0][0], cert)
    shutil.copy(gen[0][1], key)
    http4, https4 = free_ports(2)
    tls = (cert, key, https4)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a, tls=tls))
    env, marker = poisoned_watchfiles(tmp_path)
    watcher = Watcher(inventory, env=env)
    try:
        watcher.wait_line("applied:")
        assert "(inotify)" in watcher.lines[0] and "watching" in watcher.lines[0], watcher.lines
        assert backend_at(http4, "/x") == "a"

        # Steady state: quiet, and asleep. Only the once-a-second look at Envoy's uptime
        # wakes it (a polling loop would wake dozens of times and burn CPU).
        cpu, switches, lines = watcher.cpu_seconds(), watcher.context_switches(), len(watcher.lines)
        time.sleep(2.0)
        assert len(watcher.lines) == lines and watcher.errors == []
        assert watcher.cpu_seconds() - cpu < 0.02  # < 1 %; measured: about 0.08 %
        # Each uptime look is about 2 switches; polling alone would add 8 in 2 s.
        assert watcher.context_switches() - switches < 10

        # An editor's save by rename.
        save_by_rename(inventory, inventory_text(live, http4, b, tls=tls))
        watcher.wait_line("applied:", 2)
        assert backend_at(http4, "/x") == "b"
        assert watcher.count("applied:") == 2  # one line per apply

        # A bad edit: errors on stderr, the running config stays.
        save_by_rename(
            inventory,
            inventory_text(live, http4, a, tls=tls).replace("upstreams:", "upstreamz:"),
        )
        watcher.wait_line("keeping the running config", errors=True)
        assert any("upstreamz" in line for line in watcher.errors)
        assert backend_at(http4, "/x") == "b"

        # Missing for a moment (some tools delete, then write), then the good version: the
        # all-clear says the error is over.
        inventory.unlink()
        time.sleep(0.3)
        inventory.write_text(inventory_text(live, http4, a, tls=tls))
        watcher.wait_line("fixed: applied:")
        wait_for_backend(http4, "/x", "a", 5)

        # A good save with nothing to do after an error: "ok again".
        failures = watcher.count("keeping the running config", errors=True)
        save_by_rename(inventory, "{oops")
        watcher.wait_line("keeping the running config", failures + 1, errors=True)
        save_by_rename(inventory, inventory_text(live, http4, a, tls=tls))
        watcher.wait_line("ok again: unchanged")

        # acme.sh renews in place: the watcher hands the new certificate to Envoy.
        applied = watcher.count("applied:")
        cert.write_bytes(gen[1][0].read_bytes())
        key.write_bytes(gen[1][1].read_bytes())
        watcher.wait_line("applied:", applied + 1)
        names = peer_certificate_names("127.0.0.1", https4, "site.example.com", certs.ca_path)
        assert "gen1.example.com" in names

        # SIGTERM while an edit is being applied: the apply finishes, then a clean exit.
        save_by_rename(inventory, inventory_text(live, http4, b, tls=tls))
        time.sleep(0.1)
        assert watcher.stop(signal.SIGTERM) == 0
        assert not [n for n in os.listdir(live.config) if n.startswith(TEMP_PREFIX)]
        envoy_runs(live, check_consistent(live.config), {})
        assert_stamped(watcher)
        assert not marker.exists(), "the watcher imported watchfiles"
    finally:
        watcher.kill()
        a.close()
        b.close()


def test_polling_when_forced_and_ctrl_c(live: Live, tmp_path: Path) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a))
    watcher = Watcher(inventory, env={"XDSGEN_WATCHER": "poll"})
    try:
        watcher.wait_line("applied:")
        assert "(polling every 0.25s)" in watcher.lines[0], watcher.lines
        save_by_rename(inventory, inventory_text(live, http4, b))
        watcher.wait_line("applied:", 2)
        assert backend_at(http4, "/x") == "b"
        assert watcher.stop(signal.SIGINT) == 0
        assert watcher.errors == []
        assert_stamped(watcher)
    finally:
        watcher.kill()
        a.close()
        b.close()
