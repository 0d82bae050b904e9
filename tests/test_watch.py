"""`xdsgen apply --watch` as a real process against a real Envoy: edits saved by rename,
a bad edit, a file missing for a moment, a renewed certificate, SIGTERM/SIGINT; with
watchfiles and with the polling fallback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from harness import Certs, HttpBackend, free_ports, http_get, peer_certificate_names
from test_apply_helpers import Live, start_live, wait_until, without_source_notes
from test_apply_kill import check_consistent, envoy_runs

from xdsgen.files import TEMP_PREFIX
from xdsgen.watch import watched_paths, watchfiles_usable

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("watch")
    seed = HttpBackend("seed")
    admin, http_port = free_ports(2)
    with start_live(tmp, admin, seed.endpoint, http_port) as envoy:
        yield Live(envoy, tmp, tmp / "config", admin)
    seed.close()


class Watcher:
    """`xdsgen apply --watch` in a subprocess; its output lines collected as they come."""

    def __init__(self, inventory: Path, env: Optional[dict[str, str]] = None, *extra: str):
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xdsgen",
                "apply",
                str(inventory),
                "--watch",
                "--debounce",
                "0.2",
                "--no-envoy-check",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        for stream, sink in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _read(stream: Any, sink: list[str]) -> None:
        for line in stream:
            # Every test here applies its own inventory to one shared config directory:
            # apply's note about that change of source is not what these tests look at.
            if without_source_notes(line):
                sink.append(line.rstrip("\n"))

    def wait_line(
        self, text: str, count: int = 1, timeout: float = 15, errors: bool = False
    ) -> None:
        sink = self.errors if errors else self.lines
        wait_until(
            lambda: sum(text in line for line in sink) >= count,
            timeout,
            f"{count}x {text!r} in {'stderr' if errors else 'stdout'}: {self.lines} {self.errors}",
        )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(15)


def save_by_rename(path: Path, text: str) -> None:
    """How vim, VS Code and most editors save: a new file renamed over the old one."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.replace(temp, path)


def inventory_text(
    live: Live,
    http4: int,
    backend: HttpBackend,
    prefix: str = "/",
    tls: Optional[tuple[Path, Path, int]] = None,
) -> str:
    import yaml

    data: dict[str, Any] = {
        "version": 1,
        "envoy": {"config_dir": str(live.config), "access_log": "off"},
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http4}},
        "upstreams": {backend.name: backend.endpoint},
        "http": [{"domains": ["*"], "routes": [{"prefix": prefix, "upstream": backend.name}]}],
    }
    if tls:
        data["listen"]["ipv4"]["https"] = tls[2]
        data["certificates"] = {"site": {"cert": str(tls[0]), "key": str(tls[1])}}
        data["http"].insert(
            0,
            {
                "domains": ["site.example.com"],
                "tls": "site",
                "routes": [{"prefix": "/", "upstream": backend.name}],
            },
        )
    return yaml.safe_dump(data, sort_keys=False)


def backend_at(port: int, path: str) -> str:
    status, _, body = http_get("127.0.0.1", port, path, {"Host": "any"}, timeout=3)
    return json.loads(body)["backend"] if status == 200 else f"status {status}"


def test_watch_follows_edits_and_keeps_running_config_on_bad_ones(
    live: Live, tmp_path: Path
) -> None:
    assert watchfiles_usable(), "watchfiles is installed with the test extra"
    a, b = HttpBackend("a"), HttpBackend("b")
    certs = Certs(tmp_path / "certs")
    cert_dir = tmp_path / "tls"
    cert_dir.mkdir()
    gen = [certs.issue(f"gen{i}", "site.example.com", f"gen{i}.example.com") for i in range(2)]
    cert, key = cert_dir / "fullchain.pem", cert_dir / "privkey.pem"
    shutil.copy(gen[0][0], cert)
    shutil.copy(gen[0][1], key)
    http4, https4 = free_ports(2)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a, tls=(cert, key, https4)))
    watcher = Watcher(inventory)
    try:
        watcher.wait_line("applied:")
        watcher.wait_line("watching")
        assert "(watchfiles)" in next(line for line in watcher.lines if "watching" in line)
        assert backend_at(http4, "/x") == "a"

        # Steady state: quiet, and asleep (no polling loop burning CPU).
        cpu = watcher.cpu_seconds()
        lines = len(watcher.lines)
        time.sleep(2.0)
        assert len(watcher.lines) == lines and watcher.errors == []
        assert watcher.cpu_seconds() - cpu < 0.2

        # An editor's save by rename.
        save_by_rename(inventory, inventory_text(live, http4, b, tls=(cert, key, https4)))
        watcher.wait_line("applied:", 2)
        assert backend_at(http4, "/x") == "b"
        assert (
            len([line for line in watcher.lines if "applied:" in line]) == 2
        )  # one line per apply

        # A bad edit: errors on stderr, the running config stays.
        save_by_rename(
            inventory,
            inventory_text(live, http4, a, tls=(cert, key, https4)).replace(
                "upstreams:", "upstreamz:"
            ),
        )
        watcher.wait_line("keeping the running config", errors=True)
        assert any("upstreamz" in line for line in watcher.errors)
        assert backend_at(http4, "/x") == "b"

        # Missing for a moment (some tools delete, then write), then the good version.
        inventory.unlink()
        time.sleep(0.5)
        inventory.write_text(inventory_text(live, http4, a, prefix="/", tls=(cert, key, https4)))
        watcher.wait_line("applied:", 3)
        wait_until(lambda: backend_at(http4, "/x") == "a", 5, "the good save")

        # acme.sh renews in place: the watcher hands the new certificate to Envoy.
        cert.write_bytes(gen[1][0].read_bytes())
        key.write_bytes(gen[1][1].read_bytes())
        watcher.wait_line("applied:", 4)
        names = peer_certificate_names("127.0.0.1", https4, "site.example.com", certs.ca_path)
        assert "gen1.example.com" in names

        # SIGTERM while an edit is being applied: the apply finishes, then a clean exit.
        save_by_rename(inventory, inventory_text(live, http4, b, tls=(cert, key, https4)))
        time.sleep(0.3)
        assert watcher.stop(signal.SIGTERM) == 0
        assert not [n for n in os.listdir(live.config) if n.startswith(TEMP_PREFIX)]
        envoy_runs(live, check_consistent(live.config), {})
    finally:
        if watcher.proc.poll() is None:
            watcher.proc.kill()
        a.close()
        b.close()


def test_polling_fallback_and_ctrl_c(live: Live, tmp_path: Path) -> None:
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(inventory_text(live, http4, a))
    watcher = Watcher(inventory, {"XDSGEN_WATCHER": "poll"})
    try:
        watcher.wait_line("applied:")
        watcher.wait_line("watching")
        assert "(polling)" in next(line for line in watcher.lines if "watching" in line)
        save_by_rename(inventory, inventory_text(live, http4, b))
        watcher.wait_line("applied:", 2)
        assert backend_at(http4, "/x") == "b"
        assert watcher.stop(signal.SIGINT) == 0
        assert watcher.errors == []
    finally:
        if watcher.proc.poll() is None:
            watcher.proc.kill()
        a.close()
        b.close()


def test_watched_paths_cover_inventory_certificates_and_templates(tmp_path: Path) -> None:
    from xdsgen import resources
    from xdsgen.pipeline import load_model

    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "site.example.com")
    link = tmp_path / "fullchain.pem"
    link.symlink_to(cert)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\nlisten: {ipv4: {address: 127.0.0.1, http: 8080, https: 8443}}\n"
        "upstreams: {app: 127.0.0.1:3000}\n"
        f"certificates: {{site: {{cert: {link}, key: {key}}}}}\n"
        "http:\n  - {domains: [site.example.com], tls: site,\n"
        "     routes: [{prefix: /, upstream: app}]}\n"
    )
    paths = watched_paths(str(inventory), load_model(str(inventory)))
    assert {str(inventory), str(link), str(cert), str(key)} <= paths
    assert str(resources.directory("templates") / "lds.yaml.j2") in paths
