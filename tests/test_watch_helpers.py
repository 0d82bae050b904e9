"""Shared pieces of the watcher tests (no tests here): `xdsgen apply --watch` as a real
process with its lines collected as they come, inventories written on the spot."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Optional

import yaml
from harness import HttpBackend, http_get
from test_apply_helpers import Live, wait_until, without_source_notes

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


class Watcher:
    """`xdsgen apply --watch` in a subprocess; its output lines collected as they come."""

    def __init__(
        self,
        inventory: Path,
        *extra: str,
        env: Optional[dict[str, str]] = None,
        debounce: float = 0.05,
    ):
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
                str(debounce),
                "--no-envoy-check",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self._readers = [
            threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, sink: list[str]) -> None:
        for line in stream:
            # The tests apply their own inventories to one shared config directory: apply's
            # note about that change of source is not what they look at.
            if without_source_notes(line.split(" ", 1)[-1] if STAMP.match(line) else line):
                sink.append(line.rstrip("\n"))

    def count(self, text: str, errors: bool = False) -> int:
        return sum(text in line for line in (self.errors if errors else self.lines))

    def wait_line(
        self, text: str, count: int = 1, timeout: float = 15, errors: bool = False
    ) -> None:
        wait_until(
            lambda: self.count(text, errors) >= count,
            timeout,
            f"{count}x {text!r} in {'stderr' if errors else 'stdout'}: {self.lines} {self.errors}",
        )

    def cpu_seconds(self) -> float:
        """CPU time of every thread, to the nanosecond (schedstat; /proc/PID/stat counts
        whole 10 ms ticks, too coarse for an idle process)."""
        tasks = Path(f"/proc/{self.proc.pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9

    def context_switches(self) -> int:
        """Voluntary context switches of every thread: each sleep that ends is one."""
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        return total

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(15)
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def save_by_rename(path: Path, text: str) -> None:
    """How vim, VS Code and most editors save: a new file renamed over the old one."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    os.replace(temp, path)


def inventory_data(
    live: Live,
    http4: int,
    backend: HttpBackend,
    prefix: str = "/",
    tls: Optional[tuple[Path, Path, int]] = None,
) -> dict[str, Any]:
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
    return data


def inventory_text(
    live: Live,
    http4: int,
    backend: HttpBackend,
    prefix: str = "/",
    tls: Optional[tuple[Path, Path, int]] = None,
) -> str:
    return yaml.safe_dump(inventory_data(live, http4, backend, prefix, tls), sort_keys=False)


def backend_at(port: int, path: str, host: str = "any") -> str:
    """Which backend answered, or the status when none did."""
    status, _, body = http_get("127.0.0.1", port, path, {"Host": host}, timeout=3)
    return json.loads(body)["backend"] if status == 200 else f"status {status}"


def assert_stamped(watcher: Watcher) -> None:
    """Every line of the watcher, on both streams, starts with HH:MM:SS."""
    unstamped = [line for line in watcher.lines + watcher.errors if not STAMP.match(line)]
    assert watcher.lines and not unstamped, unstamped


def wait_for_backend(port: int, path: str, name: str, timeout: float = 10) -> None:
    def serves() -> bool:
        try:
            return backend_at(port, path) == name
        except OSError:
            return False

    wait_until(serves, timeout, f"{path} on :{port} served by {name}")
