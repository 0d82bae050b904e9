"""Shared pieces of the apply/watch tests (no tests here): a live Envoy per module,
inventories written on the spot, and xdsgen run as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from harness import Envoy, HttpBackend, running_envoy, write_inventory

XDSGEN = [sys.executable, "-m", "xdsgen"]


def run_xdsgen(
    *args: str, timeout: float = 60, env: Optional[dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    """The real command line, as cron or a person runs it (no TTY)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NO_COLOR", None)
    return subprocess.run(
        [*XDSGEN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class Live:
    """A running Envoy whose bootstrap reads `config`; tests apply their own inventories."""

    envoy: Envoy
    tmp: Path
    config: Path
    admin_port: int = 0  # unused: the admin is the default Unix socket in `config`
    layout: Optional[str] = None  # envoy.layout of every inventory (None: the default)

    def inventory(self, name: str, **sections: Any) -> Path:
        envoy = {"config_dir": str(self.config), "access_log": "off"}
        if self.layout:
            envoy["layout"] = self.layout
        data = {"version": 1, "envoy": envoy, **sections}
        return write_inventory(self.tmp / f"{name}.yaml", data)

    def counters(self) -> dict[str, str]:
        return {
            k: v
            for k, v in self.envoy.stats().items()
            if k.endswith(
                (
                    ".update_attempt",
                    ".update_success",
                    ".update_rejected",
                    ".update_failure",
                    ".version_text",
                )
            )
            or k.startswith("listener_manager.listener_")
        }


def start_live(
    tmp: Path, admin_port: int, backend_endpoint: str, http_port: int, layout: str = ""
) -> Any:
    """Start Envoy on a minimal config (one http listener); returns running_envoy's context.
    Its admin is the default: a Unix socket in the config directory (`admin_port` unused).
    `layout`: envoy.layout of the seed inventory (and so of Envoy's bootstrap)."""
    config = tmp / "config"
    envoy = {
        "config_dir": str(config),
        "access_log": "off",
        **({"layout": layout} if layout else {}),
    }
    data = {
        "version": 1,
        "envoy": envoy,
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http_port}},
        "upstreams": {"seed": backend_endpoint},
        "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "seed"}]}],
    }
    inventory = write_inventory(tmp / "seed.yaml", data)
    return running_envoy(inventory, tmp)


# These tests apply many inventories to one shared config directory, so apply rightly
# notes each change of source (issue: two inventories flip-flopping one directory).
_SOURCE_NOTE = re.compile(r"^note: .* was last applied from .*; .* now replaces it$")


def without_source_notes(stderr: str) -> str:
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not _SOURCE_NOTE.match(line.strip())
    )


def fast_backend(name: str, host: str = "127.0.0.1") -> HttpBackend:
    """An HttpBackend that answers without Nagle's delay: http.server writes headers and
    body separately, and delayed ACKs would hold each answer ~40 ms (too little traffic
    per second to catch a short break)."""
    backend = HttpBackend(name, host)
    backend.server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
    return backend


def file_facts(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    """(inode, mtime_ns, content) of every file Envoy reads in the directory."""
    facts = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            info = path.stat()
            facts[path.name] = (info.st_ino, info.st_mtime_ns, path.read_bytes())
    return facts


def wait_until(predicate: Any, timeout: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def parse_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
