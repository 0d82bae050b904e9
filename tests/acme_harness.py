"""A real ACME CA on loopback for the tests: Let's Encrypt's Pebble and its pebble-challtestsrv.

- pebble-challtestsrv is the DNS server Pebble asks: every A name is 127.0.0.1, every AAAA
  ::1, and TXT records are what its management API was told (/set-txt, /clear-txt). Its
  own HTTP-01/TLS-ALPN-01 responders are off: the tests answer challenges themselves.
- pebble serves ACME over HTTPS with a certificate from a trustme CA the test makes (that
  CA file is the inventory's `ca_bundle`), validates HTTP-01 on `http_port` of whatever the
  name resolves to (loopback), and never with PEBBLE_VA_ALWAYS_VALID: it really fetches.

Missing binaries FAIL the test (`apt-get install pebble`, as .ci/run does); they never skip.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from harness import _Threaded, free_ports

INSTALL_HINT = "install it: apt-get install -y pebble (Debian's package ships both binaries)"


def pebble_binary(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if not found:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}")
    return found


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {host}:{port}:\n{log.read_text()[-3000:]}")


def _stop(proc: Optional[subprocess.Popen[bytes]]) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ChallTestSrv:
    """pebble-challtestsrv: mock DNS (A -> 127.0.0.1, AAAA -> ::1, TXT as set) on loopback."""

    def __init__(self, workdir: Path):
        self.dns_port, self.management_port = free_ports(2)
        self.log = workdir / "challtestsrv.log"
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> ChallTestSrv:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    pebble_binary("pebble-challtestsrv"),
                    "-dns01",
                    f"127.0.0.1:{self.dns_port}",
                    "-management",
                    f"127.0.0.1:{self.management_port}",
                    "-http01",
                    "",
                    "-https01",
                    "",
                    "-tlsalpn01",
                    "",
                    "-defaultIPv4",
                    "127.0.0.1",
                    "-defaultIPv6",
                    "::1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_port("127.0.0.1", self.management_port, self.proc, self.log, "pebble-challtestsrv")
        return self

    def stop(self) -> None:
        _stop(self.proc)

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.management_url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def set_default(self, family: str, address: str) -> None:
        """What every name without its own record resolves to ("" for nothing): family
        ipv4 (A) or ipv6 (AAAA)."""
        self.post(f"/set-default-{family}", {"ip": address})

    def add_a(self, host: str, addresses: list[str]) -> None:
        self.post("/add-a", {"host": host.rstrip(".") + ".", "addresses": addresses})

    def txt(self, fqdn: str) -> list[str]:
        """The TXT values the mock DNS answers for `fqdn` now (a real DNS query over UDP)."""
        return dns_txt_query("127.0.0.1", self.dns_port, fqdn)

    def addresses(self, fqdn: str) -> list[str]:
        """The A and AAAA answers of the mock DNS for `fqdn` now."""
        return dns_addresses("127.0.0.1", self.dns_port, fqdn)


def dns_txt_query(server: str, port: int, fqdn: str) -> list[str]:
    """The strings of the TXT answers for `fqdn` (one DNS query over UDP)."""
    values = []
    for rdata in dns_query(server, port, fqdn, 16):
        index = 0
        while index < len(rdata):
            length = rdata[index]
            values.append(rdata[index + 1 : index + 1 + length].decode())
            index += 1 + length
    return values


def dns_addresses(server: str, port: int, fqdn: str) -> list[str]:
    """The A and AAAA answers for `fqdn`, as text."""
    found = [socket.inet_ntop(socket.AF_INET, r) for r in dns_query(server, port, fqdn, 1)]
    return found + [socket.inet_ntop(socket.AF_INET6, r) for r in dns_query(server, port, fqdn, 28)]


def dns_query(server: str, port: int, fqdn: str, qtype: int) -> list[bytes]:
    """One DNS query (RFC 1035 wire format): the rdata of the answers of type `qtype`."""
    query_id = 0x5A17
    question = b"".join(
        bytes([len(label)]) + label.encode() for label in fqdn.rstrip(".").split(".")
    )
    packet = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0"
    packet += struct.pack("!HH", qtype, 1)  # IN
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(packet, (server, port))
        data, _ = sock.recvfrom(4096)
    ident, _flags, qdcount, ancount = struct.unpack("!HHHH", data[:8])
    assert ident == query_id
    pos = 12

    def skip_name(pos: int) -> int:
        while True:
            length = data[pos]
            if length == 0:
                return pos + 1
            if length & 0xC0 == 0xC0:
                return pos + 2
            pos += 1 + length

    for _ in range(qdcount):
        pos = skip_name(pos) + 4
    answers = []
    for _ in range(ancount):
        pos = skip_name(pos)
        rtype, _cls, _ttl, rdlength = struct.unpack("!HHIH", data[pos : pos + 10])
        pos += 10
        if rtype == qtype:
            answers.append(data[pos : pos + rdlength])
        pos += rdlength
    return answers


class Pebble:
    """Pebble with its HTTPS certificate from a test CA; `directory` is its ACME directory URL."""

    def __init__(
        self,
        workdir: Path,
        dns_port: int,
        http_port: int,
        authz_reuse: int = 0,
        validity: Optional[int] = None,
    ):
        import trustme

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.management_port, self.tls_port = free_ports(3)
        self.http_port = http_port
        self.dns_port = dns_port
        # Pebble reuses a valid authorization in a new order half the time by default: 0
        # makes every order challenge again (a test needs to know), 100 tests the reuse.
        self.authz_reuse = authz_reuse
        # Pebble's own HTTPS certificate; the CA file is what the inventory's ca_bundle names.
        ca = trustme.CA()
        self.ca_bundle = workdir / "pebble-https-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_bundle))
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        self.cert = workdir / "pebble-https.pem"
        self.key = workdir / "pebble-https.key"
        leaf.cert_chain_pems[0].write_to_path(str(self.cert))
        leaf.private_key_pem.write_to_path(str(self.key))
        self.config = workdir / "pebble-config.json"
        self.config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{self.port}",
                        "managementListenAddress": f"127.0.0.1:{self.management_port}",
                        "certificate": str(self.cert),
                        "privateKey": str(self.key),
                        "httpPort": http_port,
                        "tlsPort": self.tls_port,
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                        # Seconds a certificate lives (Pebble's default: 5 years).
                        **({"certificateValidityPeriod": validity} if validity else {}),
                    }
                },
                indent=2,
            )
        )
        self.log = workdir / "pebble.log"
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> Pebble:
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": str(self.authz_reuse),
        }
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    pebble_binary("pebble"),
                    "-config",
                    str(self.config),
                    "-dnsserver",
                    f"127.0.0.1:{self.dns_port}",
                    "-strict=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )
        _wait_port("127.0.0.1", self.port, self.proc, self.log, "pebble")
        return self

    def stop(self) -> None:
        _stop(self.proc)

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def _management(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        url = f"https://127.0.0.1:{self.management_port}{path}"
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return str(response.read().decode())

    def root_pem(self) -> str:
        """The root Pebble issues under (new on every start)."""
        return self._management("/roots/0")

    def intermediate_pem(self) -> str:
        return self._management("/intermediates/0")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


class ChallengeResponder:
    """The test's own HTTP-01 responder on Pebble's httpPort, both loopback families.

    Serves exactly the tokens it was given (`serve`), 404 for anything else, and counts the
    requests per path: a test can prove that Pebble really fetched the token.
    """

    def __init__(self, port: int):
        self.port = port
        self.answers: dict[str, str] = {}
        self.fetched: dict[str, int] = {}
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = responder.answers.get(self.path)
                responder.fetched[self.path] = responder.fetched.get(self.path, 0) + 1
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.servers = []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):

            class Server(_Threaded, http.server.HTTPServer):
                address_family = family

            server = Server((host, port), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    def serve(self, path: str, body: str) -> None:
        self.answers[path] = body

    def forget(self, path: str) -> None:
        self.answers.pop(path, None)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


class AcmeLab:
    """challtestsrv + pebble + the HTTP-01 responder, started together."""

    def __init__(self, workdir: Path, authz_reuse: int = 0):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (self.http_port,) = free_ports(1)
        self.dns = ChallTestSrv(workdir)
        self.pebble = Pebble(workdir, self.dns.dns_port, self.http_port, authz_reuse)
        self.responder: Optional[ChallengeResponder] = None

    def start(self) -> AcmeLab:
        self.dns.start()
        try:
            self.pebble.start()
            self.responder = ChallengeResponder(self.http_port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.responder:
            self.responder.close()
        self.pebble.stop()
        self.dns.stop()


@contextlib.contextmanager
def acme_lab(workdir: Path, authz_reuse: int = 0) -> Iterator[AcmeLab]:
    lab = AcmeLab(workdir, authz_reuse).start()
    try:
        yield lab
    finally:
        lab.stop()


class EnvoyLab:
    """challtestsrv + Pebble validating http-01 on `http_port`, the port of Envoy's http
    listeners (nothing else answers there: Pebble really fetches every token from Envoy)."""

    def __init__(self, workdir: Path, http_port: int, validity: Optional[int] = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = http_port
        self.dns = ChallTestSrv(workdir)
        self.pebble = Pebble(workdir, self.dns.dns_port, http_port, validity=validity)

    def start(self) -> EnvoyLab:
        self.dns.start()
        try:
            self.pebble.start()
        except BaseException:
            self.dns.stop()
            raise
        return self

    def stop(self) -> None:
        self.pebble.stop()
        self.dns.stop()


@contextlib.contextmanager
def envoy_lab(workdir: Path, http_port: int, validity: Optional[int] = None) -> Iterator[EnvoyLab]:
    lab = EnvoyLab(workdir, http_port, validity).start()
    try:
        yield lab
    finally:
        lab.stop()
