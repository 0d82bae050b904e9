"""The live lab: the example inventory on loopback, real backends, a real Envoy
(xdsgen.envoyproc) and, for the watcher's sections, `xdsgen apply --watch`.

The edit every latency sample makes is the commonest one, a vhost renamed: the inventory's
"edit" vhost answers for edit<N>.bench.test and sends it to the grafana backend, while
every other name falls through to the catch-all vhost (the lede backend). It changes one
route file and nothing else. The end point is real traffic: the first request for the new
name that the grafana backend answers.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

import yaml
from common import EXAMPLE, run_timed
from installs import Install

from xdsgen.demo import Backend
from xdsgen.envoyproc import EnvoyProcess, free_ports

EDIT_BACKEND = "grafana"
OTHER_BACKEND = "lede"


def listener_ports(count: int) -> list[int]:
    """Ports for Envoy's listeners, below the kernel's ephemeral range and free on both
    loopback families now. A port the kernel handed out (free_ports) may be taken again as
    the local port of any outgoing connection on a busy machine; with 1 000 TCP maps at
    10 000 vhosts one of them regularly was, and Envoy refused its listener."""
    import random

    from xdsgen.envoyproc import bindable

    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            ephemeral = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    low = 10000
    start = random.randrange(low, max(low + 1, ephemeral - count - 1))
    found: list[int] = []
    for port in [*range(start, ephemeral), *range(low, start)]:
        if bindable(port):
            found.append(port)
            if len(found) == count:
                return found
    return found + free_ports(count - len(found))


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with the vhost's name as SNI (the bench's CA is not trusted)."""

    def __init__(self, port: int, sni: str):
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__("127.0.0.1", port, timeout=5, context=context)
        self.sni = sni

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.sni)  # type: ignore[attr-defined]


class Client:
    """One keep-alive connection to one of Envoy's listeners (plain HTTP, or TLS with the
    asked-for name as SNI): who answers a Host."""

    def __init__(self, port: int, tls: bool = False):
        self.port = port
        self.tls = tls
        self.conn: Optional[http.client.HTTPConnection] = None

    def ask(self, host: str, path: str = "/") -> str:
        for _ in range(2):
            if self.conn is None:
                if self.tls:
                    self.conn = _SniConnection(self.port, host)
                else:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                self.conn.request("GET", path, headers={"Host": host})
                response = self.conn.getresponse()
                body = response.read()
                if response.status != 200:
                    return f"status {response.status}"
                return str(json.loads(body)["backend"])
            except (OSError, http.client.HTTPException, ValueError):
                self.close()
        return "error"

    def until(
        self, host: str, expect: str, since: float, timeout: float = 30, path: str = "/"
    ) -> float:
        """Seconds from `since` (perf_counter) to the first answer from `expect`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ask(host, path) == expect:
                return time.perf_counter() - since
            # A request a millisecond: fine enough, and leaves the cores to Envoy and xdsgen.
            time.sleep(0.001)
        raise RuntimeError(f"{host} was never served by {expect}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def certificate(directory: Path, *hosts: str) -> tuple[Path, Path]:
    """A leaf certificate and key for `hosts` from a throwaway CA (never committed)."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    leaf = trustme.CA().issue_cert(*hosts)
    cert, key = directory / "site.crt", directory / "site.key"
    for index, pem in enumerate(leaf.cert_chain_pems):
        pem.write_to_path(str(cert), append=index > 0)
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


class LiveLab:
    """The example inventory on loopback, its Envoy, and (when started) its watcher."""

    def __init__(self, root: Path, install: Install):
        self.root = root
        self.install = install
        root.mkdir(parents=True)
        self.inventory = root / "inventory.yaml"
        self.config = root / "config"
        self.backends = {name: Backend(name) for name in (EDIT_BACKEND, OTHER_BACKEND)}
        self.envoy: Optional[EnvoyProcess] = None
        self.watcher: Optional[subprocess.Popen[bytes]] = None
        self.lines: list[tuple[float, str]] = []
        self.edits = 0
        self.applies = 0
        self.data = self._inventory()
        self.write(self.data)
        self.client = Client(self.http_port)

    def _inventory(self) -> dict[str, Any]:
        data = yaml.safe_load(EXAMPLE.read_text())
        cert, key = certificate(
            self.root / "certs", "router.example.com", "mynas.example.com", "ha.example.com"
        )
        (http4, https4, http6, https6, *rest) = listener_ports(12)
        self.http_port = http4
        # The admin is the default: a Unix socket in the config directory.
        data["envoy"] = {"config_dir": str(self.config), "access_log": "off"}
        data["listen"] = {
            "ipv4": {"address": "127.0.0.1", "http": http4, "https": https4},
            "ipv6": {"address": "::1", "http": http6, "https": https6},
        }
        for name, spec in list(data["upstreams"].items()):
            if isinstance(spec, dict):
                spec["endpoints"] = ["127.0.0.1:9"]
            else:
                data["upstreams"][name] = "127.0.0.1:9" if not spec.startswith("[") else "[::1]:9"
        data["upstreams"]["home_assistant"] = "localhost:9"
        for name, backend in self.backends.items():
            data["upstreams"][name] = backend.endpoint
        data["certificates"]["router"] = {"cert": str(cert), "key": str(key)}
        for i, item in enumerate(data.get("tcp", [])):
            item["port"] = rest[i]
        for i, item in enumerate(data.get("udp", [])):
            item["port"] = rest[6 + i]
        self.tcp_ports = rest[:6]
        edit = {"domains": ["edit0.bench.test"], "routes": [{"prefix": "/", "upstream": "grafana"}]}
        data["http"].insert(0, edit)
        return data

    @property
    def admin_socket(self) -> Path:
        return self.config / "admin.sock"

    def write(self, data: dict[str, Any], path: Optional[Path] = None) -> None:
        """Save the way editors do: a new file renamed over the old one."""
        path = path or self.inventory
        temp = path.with_name(f".{path.name}.swp")
        temp.write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(temp, path)

    def start_envoy(self) -> None:
        """Envoy on an empty config, then a first apply (confirmed)."""
        self.config.mkdir()
        for name in ("cds.yaml", "lds.yaml"):
            (self.config / name).write_text("resources: []\n")
        bootstrap = self.root / "bootstrap.yaml"
        run_timed(
            [*self.install.xdsgen, "bootstrap", str(self.inventory), "-o", str(bootstrap)],
            self.install.env,
        )
        self.envoy = EnvoyProcess(bootstrap, self.admin_socket, self.root / "envoy.log")
        self.envoy.start(timeout=60)
        self.apply_once()
        self.client.until("edit0.bench.test", EDIT_BACKEND, time.perf_counter())

    def apply_command(self) -> list[str]:
        return [*self.install.xdsgen, "apply", str(self.inventory)]

    def apply_once(self, env: Optional[dict[str, str]] = None) -> float:
        return run_timed(self.apply_command(), env or self.install.env).seconds

    def next_edit(self) -> tuple[dict[str, Any], str]:
        """The inventory with the edit vhost renamed, and its new name."""
        self.edits += 1
        host = f"edit{self.edits}.bench.test"
        self.data["http"][0]["domains"] = [host]
        return self.data, host

    # ------------------------------------------------------------------ Envoy's own floor

    def envoy_floor(self) -> float:
        """Envoy alone: the rds file of the next edit, rendered here, renamed into place;
        seconds until its new vhost serves."""
        from xdsgen.pipeline import load_model, render

        data, host = self.next_edit()
        staged = self.root / "staged.yaml"
        self.write(data, staged)
        rendered = render(load_model(str(staged), config_dir=str(self.config)))
        changed = [
            (n, t)
            for n, t in rendered.files.items()
            if n.startswith("rds_") and (self.config / n).read_text() != t
        ]
        temps = []
        for name, text in changed:
            temp = self.config / f".bench-{name}"
            temp.write_text(text)
            temps.append((temp, self.config / name))
        start = time.perf_counter()
        for temp, target in temps:
            os.replace(temp, target)
        return self.client.until(host, EDIT_BACKEND, start)

    # ------------------------------------------------------------------ the watcher

    def start_watcher(self, debounce: float) -> None:
        log = open(self.root / "watch.log", "wb")  # noqa: SIM115 - lives as long as the watcher
        self._watch_log = log
        # -v: one line per step, each timestamped on arrival by a reader thread, so that the
        # latency can be split into its parts.
        # The debounce is passed explicitly (by default the watcher's own default,
        # xdsgen.watch.DEFAULT_DEBOUNCE): the CLI's default must follow it (cli.py).
        self.watcher = subprocess.Popen(
            [*self.apply_command(), "--watch", "-v", "--debounce", f"{debounce:g}"],
            env=self.install.env,
            cwd=str(self.root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read_watcher, args=(log,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while not self.watcher_kind and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.watcher_kind:
            raise RuntimeError(f"the watcher did not start:\n{self.watch_log()}")
        self.applies = 1

    @property
    def watcher_kind(self) -> str:
        text = " ".join(line for _, line in self.lines)
        return "inotify" if "(inotify)" in text else "polling" if "(polling" in text else ""

    def _read_watcher(self, log: Any) -> None:
        assert self.watcher is not None and self.watcher.stdout is not None
        for raw in self.watcher.stdout:
            self.lines.append((time.perf_counter(), raw.decode(errors="replace").rstrip("\n")))
            log.write(raw)
            log.flush()

    def watch_log(self) -> str:
        return "\n".join(line for _, line in self.lines[-40:])

    @property
    def watcher_pid(self) -> int:
        assert self.watcher is not None
        return self.watcher.pid

    def save_and_wait(self) -> float:
        """One edit saved by rename; seconds until Envoy serves it."""
        data, host = self.next_edit()
        start = time.perf_counter()
        self.write(data)
        try:
            latency = self.client.until(host, EDIT_BACKEND, start)
        except RuntimeError:
            raise RuntimeError(f"edit {host} never served; watcher:\n{self.watch_log()}") from None
        self.applies += 1
        return latency

    def parts(self, start: float, timeout: float = 3) -> dict[str, Optional[float]]:
        """From the watcher's -v lines after `start`: when the plan was ready (the Envoy
        check's line: run or not needed), and when the apply line came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [(t, text) for t, text in list(self.lines) if t >= start]
            applied = next((t for t, text in mine if " applied: " in text), None)
            if applied is not None:
                planned = next((t for t, text in mine if "envoy --mode validate" in text), None)
                return {"planned": planned, "applied": applied}
            time.sleep(0.002)
        return {"planned": None, "applied": None}

    def stop_watcher(self) -> None:
        if self.watcher is not None and self.watcher.poll() is None:
            self.watcher.send_signal(signal.SIGTERM)
            try:
                self.watcher.wait(20)
            except subprocess.TimeoutExpired:
                self.watcher.kill()
                self.watcher.wait()
        self.watcher = None
        with contextlib.suppress(Exception):
            self._watch_log.close()

    # ------------------------------------------------------------------ facts

    def snapshot(self) -> dict[str, tuple[int, int, int, int]]:
        files = {}
        for path in sorted(self.config.rglob("*")):
            info = path.lstat()
            files[str(path.relative_to(self.config))] = (
                info.st_ino,
                info.st_size,
                info.st_mtime_ns,
                info.st_ctime_ns,
            )
        return files

    def update_counters(self) -> dict[str, str]:
        """Envoy's xDS update counters (CDS, LDS, each RDS and SDS file); not the DNS refreshes
        of a STRICT_DNS cluster, which also count "update_attempt"."""
        from xdsgen.admin import Admin, parse_address

        stats = Admin(parse_address(str(self.admin_socket))).stats(pattern=None)
        return {
            k: v
            for k, v in stats.items()
            if k.endswith(("update_attempt", "update_success"))
            and (
                k.startswith(("cluster_manager.cds.", "listener_manager.lds.", "sds."))
                or (k.startswith("http.") and ".rds." in k)
            )
        }

    def close(self) -> None:
        self.stop_watcher()
        self.client.close()
        if self.envoy is not None:
            self.envoy.stop()
        for backend in self.backends.values():
            backend.close()
