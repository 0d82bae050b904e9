"""A fresh box for the apply-with-ACME tests: Pebble and challtestsrv (acme_harness), a real
Envoy started as a user starts it (`xdsgen render`, `xdsgen bootstrap`, then Envoy), both
loopback families with the http listeners on Pebble's httpPort, and helpers to read what
Envoy serves. No tests here."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

from acme_harness import EnvoyLab, envoy_lab
from harness import Envoy, HttpBackend, _SniHTTPSConnection, free_ports, http_get, write_inventory
from test_apply_helpers import run_xdsgen, wait_until

FAMILIES = (("ipv4", "127.0.0.1"), ("ipv6", "::1"))
PEBBLE_AGENT = "LetsEncrypt-Pebble-VA"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


class Box:
    def __init__(self, tmp: Path, lab: EnvoyLab, https_port: int, app: HttpBackend):
        self.tmp = tmp
        self.lab = lab
        self.http_port = lab.http_port
        self.https_port = https_port
        self.app = app
        self.config = tmp / "config"
        self.access_log = tmp / "access.log"
        self.inventory_path = tmp / "inventory.yaml"
        self.envoy: Optional[Envoy] = None
        self.root = tmp / "pebble-root.pem"

    # ------------------------------------------------------------------ the inventory

    def acme(self, **extra: Any) -> dict[str, Any]:
        return {
            "email": "admin@example.com",
            "directory": self.lab.pebble.directory,
            "ca_bundle": str(self.lab.pebble.ca_bundle),
            **extra,
        }

    def write(
        self, certificates: dict[str, Any], vhosts: list[dict[str, Any]], **extra: Any
    ) -> Path:
        return write_inventory(
            self.inventory_path,
            {
                "version": 1,
                "envoy": {"config_dir": str(self.config), "access_log": str(self.access_log)},
                "listen": {
                    family: {"address": host, "http": self.http_port, "https": self.https_port}
                    for family, host in FAMILIES
                },
                "upstreams": {"app": self.app.endpoint},
                "certificates": certificates,
                "http": vhosts,
                **extra,
            },
        )

    def run(self, *args: str, timeout: float = 120) -> Any:
        return run_xdsgen(*args, timeout=timeout)

    def apply(self, *extra: str) -> Any:
        return self.run("apply", str(self.inventory_path), *extra)

    # ------------------------------------------------------------------ Envoy

    def start_envoy(self) -> Envoy:
        """Like a user on a fresh box: render the first files, write the bootstrap, start."""
        rendered = self.run("render", str(self.inventory_path))
        assert rendered.returncode == 0, rendered.stderr
        bootstrap = self.tmp / "bootstrap.yaml"
        written = self.run("bootstrap", str(self.inventory_path), "-o", str(bootstrap))
        assert written.returncode == 0, written.stderr
        self.envoy = Envoy(
            bootstrap,
            str(self.config / "admin.sock"),
            self.tmp / "envoy.log",
            extra_args=("--file-flush-interval-msec", "100"),  # the access log, read by tests
        )
        self.envoy.start()
        return self.envoy

    def counter(self, name: str) -> int:
        assert self.envoy is not None
        return int(self.envoy.stat(name) or 0)

    def config_files(self) -> dict[str, tuple[int, int, bytes]]:
        """(inode, mtime_ns, content) of every xDS file: proves nothing was written."""
        return {
            p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(self.config.glob("*.yaml"))
        }

    # ------------------------------------------------------------------ what Envoy serves

    def tls_context(self) -> ssl.SSLContext:
        self.root.write_text(self.lab.pebble.root_pem())
        return ssl.create_default_context(cafile=str(self.root))

    def served(self, host: str, sni: str) -> Any:
        """The certificate Envoy presents on the https listener of `host`'s family, verified
        up to Pebble's root for `sni` (ssl's own verification, hostname included)."""
        from cryptography import x509

        with (
            socket.create_connection((host, self.https_port), 5) as raw,
            self.tls_context().wrap_socket(raw, server_hostname=sni) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)

    def served_serial(self, host: str, sni: str) -> str:
        return f"{self.served(host, sni).serial_number:x}"

    def get_http(
        self, host: str, domain: str, path: str = "/"
    ) -> tuple[int, dict[str, str], bytes]:
        return http_get(host, self.http_port, path, {"Host": domain})

    def get_https(
        self, host: str, domain: str, path: str = "/"
    ) -> tuple[int, dict[str, str], bytes]:
        return http_get(
            host, self.https_port, path, {"Host": domain}, self.tls_context(), sni=domain
        )

    def log_lines(self) -> list[str]:
        """Envoy's access log (it flushes every second: wait for the line you need)."""
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def pebble_fetches(self) -> list[str]:
        return [
            line
            for line in self.log_lines()
            if PEBBLE_AGENT in line and f"GET {CHALLENGE_PREFIX}" in line
        ]


@contextlib.contextmanager
def fresh_box(tmp: Path, validity: Optional[int] = None) -> Iterator[Box]:
    http_port, https_port = free_ports(2)
    app = HttpBackend("app")
    try:
        with envoy_lab(tmp / "lab", http_port, validity) as lab:
            box = Box(tmp, lab, https_port, app)
            try:
                yield box
            finally:
                if box.envoy is not None:
                    box.envoy.stop()
    finally:
        app.close()


def tls_vhost(domains: list[str], cert: str, **extra: Any) -> dict[str, Any]:
    return {
        "domains": domains,
        "tls": cert,
        "routes": [{"prefix": "/", "upstream": "app"}],
        **extra,
    }


def not_before(path: Path) -> datetime.datetime:
    from xdsgen.acme import storage

    return storage.read_certificate(str(path)).not_before


def wait_until_due(chain: Path, after: float) -> None:
    """Sleep until `after` seconds past the certificate's notBefore (its renew_at)."""
    due = not_before(chain).timestamp() + after
    time.sleep(max(0.0, due - time.time()) + 0.2)


class Traffic:
    """Requests on every https and http listener in a loop, and one connection kept open."""

    def __init__(self, box: Box, domain: str):
        self.box = box
        self.domain = domain
        self.failures: list[str] = []
        self.sent = 0
        self.serials: set[str] = set()
        self.done = threading.Event()
        self.kept = _SniHTTPSConnection(
            "127.0.0.1", box.https_port, context=box.tls_context(), sni=domain, timeout=5
        )
        self.kept.request("GET", "/kept-before", headers={"Host": domain})
        response = self.kept.getresponse()
        assert response.status == 200, response.status
        response.read()
        self.worker = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Traffic:
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.worker.join(10)

    def _loop(self) -> None:
        context = self.box.tls_context()
        while not self.done.is_set():
            host = FAMILIES[self.sent % 2][1]
            secure = (self.sent // 2) % 2 == 0
            self.sent += 1
            try:
                if secure:
                    status, _, _ = http_get(
                        host, self.box.https_port, "/", {"Host": self.domain}, context, self.domain
                    )
                    want = 200
                else:
                    status, _, _ = self.box.get_http(host, self.domain, "/")
                    want = 301
                if status != want:
                    self.failures.append(f"{host} {'https' if secure else 'http'}: HTTP {status}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{host}: {exc!r}")

    def kept_still_works(self) -> None:
        self.kept.request("GET", "/kept-after", headers={"Host": self.domain})
        response = self.kept.getresponse()
        assert response.status == 200
        response.read()
        self.kept.close()


def wait_served(box: Box, serial: str, sni: str) -> None:
    for _, host in FAMILIES:
        wait_until(
            lambda h=host: box.served_serial(h, sni) == serial,
            15,
            f"Envoy to serve serial {serial} on {host}",
        )
