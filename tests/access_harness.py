"""Helpers of the access tests (issue 14), no tests here: a raw HTTP client that picks its
source address (127.0.0.2 is "outside", 127.0.0.1 "inside"), a TCP backend that parses
PROXY protocol v1/v2 headers, one that speaks first (an SSH banner), and an auth service
answering like Authelia's ext-authz endpoint.
"""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import ssl
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

INSIDE = "127.0.0.1"
OUTSIDE = "127.0.0.2"
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined by ", "
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    port: int,
    path: str = "/",
    host: str = "example.com",
    headers: Optional[dict[str, str]] = None,
    source: str = INSIDE,
    target: str = "127.0.0.1",
    tls_name: Optional[str] = None,
    method: str = "GET",
) -> Answer:
    """One request with exactly these headers (http.client adds its own), from `source`."""
    sock = socket.create_connection((target, port), timeout=5, source_address=(source, 0))
    if tls_name:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(sock, server_hostname=tls_name)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall("\r\n".join([*lines, "Connection: close", "", ""]).encode())
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        found[key] = f"{found[key]}, {value.strip()}" if key in found else value.strip()
    return Answer(int(status_line.split()[1]), found, body)


class _Threaded(socketserver.ThreadingMixIn):
    daemon_threads = True
    allow_reuse_address = True


def _server(host: str, handler: Any) -> Any:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(_Threaded, socketserver.TCPServer):
        address_family = family

    server = Server((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def read_proxy_header(sock: socket.socket) -> dict[str, Any]:
    """Read exactly one PROXY protocol header (v1 text or v2 binary) off the socket."""

    def read(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed inside the PROXY header")
            data += chunk
        return data

    first = read(12)
    if first == PROXY_V2_SIGNATURE:
        version_command, family, length = struct.unpack("!BBH", read(4))
        body = read(length)
        if family == 0x11:  # TCP over IPv4
            src, dst = (
                socket.inet_ntop(socket.AF_INET, body[:4]),
                socket.inet_ntop(socket.AF_INET, body[4:8]),
            )
            sport, dport = struct.unpack("!HH", body[8:12])
        elif family == 0x21:  # TCP over IPv6
            src, dst = (
                socket.inet_ntop(socket.AF_INET6, body[:16]),
                socket.inet_ntop(socket.AF_INET6, body[16:32]),
            )
            sport, dport = struct.unpack("!HH", body[32:36])
        else:
            raise ValueError(f"PROXY v2 family {family:#x}")
        return {
            "version": 2,
            "command": version_command & 0x0F,
            "source": src,
            "source_port": sport,
            "destination": dst,
            "destination_port": dport,
        }
    line = first
    while not line.endswith(b"\r\n"):
        line += read(1)
        if len(line) > 107:
            raise ValueError("no PROXY v1 line")
    words = line.decode("ascii").split()
    if words[0] != "PROXY":
        raise ValueError(f"not a PROXY header: {line!r}")
    return {
        "version": 1,
        "protocol": words[1],
        "source": words[2],
        "destination": words[3],
        "source_port": int(words[4]),
        "destination_port": int(words[5]),
    }


class ProxyProtocolBackend:
    """Reads the PROXY header, answers with what it says as one JSON line. With `tls`, it
    then terminates TLS (a NAS behind passthrough) and answers an HTTP request alike."""

    def __init__(self, host: str = "127.0.0.1", tls: Optional[tuple[str, str]] = None):
        backend = self
        self.seen: list[dict[str, Any]] = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock = self.request
                sock.settimeout(5)
                try:
                    header = read_proxy_header(sock)
                except (ValueError, ConnectionError, OSError) as exc:
                    header = {"error": str(exc)}
                backend.seen.append(header)
                answer = json.dumps(header).encode()
                if tls and "error" not in header:
                    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    context.load_cert_chain(*tls)
                    with context.wrap_socket(sock, server_side=True) as secure:
                        secure.recv(65536)  # the request
                        secure.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                            % (len(answer), answer)
                        )
                    return
                sock.sendall(answer + b"\n")

        self.server = _server(host, Handler)
        self.endpoint = _endpoint(host, self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BannerBackend:
    """Speaks first, as an SSH server does; counts the connections it got."""

    BANNER = b"SSH-2.0-OpenSSH_9.6 test\r\n"

    def __init__(self, host: str = "127.0.0.1"):
        self.connections = 0
        backend = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                backend.connections += 1
                self.request.sendall(backend.BANNER)
                self.request.settimeout(2)
                try:
                    while self.request.recv(4096):
                        pass
                except OSError:
                    pass

        self.server = _server(host, Handler)
        self.endpoint = _endpoint(host, self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class AuthLog:
    requests: list[dict[str, Any]] = field(default_factory=list)


class AutheliaLike:
    """An auth service answering like Authelia's /api/authz/ext-authz/ endpoint:
    cookie session=alice: 200 with Remote-User/Remote-Groups/Remote-Email and a refreshed
    cookie; session=bob: 200 with Remote-User only; session=mallory: 403; no session: a 302
    to the portal for a browser (Accept: text/html), 401 otherwise. Every request it gets
    is kept (method, path, headers)."""

    PORTAL = "https://auth.example.com/"

    def __init__(self) -> None:
        self.log = AuthLog()
        log = self.log
        portal = self.PORTAL

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                log.requests.append({"method": self.command, "path": self.path, "headers": headers})
                cookie = headers.get("cookie", "")
                if "session=alice" in cookie:
                    self._reply(
                        200,
                        {
                            "Remote-User": "alice",
                            "Remote-Groups": "admins,family",
                            "Remote-Email": "alice@example.com",
                            "Set-Cookie": "session=alice; Path=/; Max-Age=3600",
                        },
                    )
                elif "session=bob" in cookie:
                    self._reply(200, {"Remote-User": "bob"})
                elif "session=mallory" in cookie:
                    self._reply(403, {}, b"forbidden by policy")
                elif "text/html" in headers.get("accept", ""):
                    target = (
                        f"{headers.get('x-forwarded-proto')}://{headers.get('host')}"
                        f"{headers.get('x-forwarded-uri')}"
                    )
                    self._reply(302, {"Location": f"{portal}?rd={target}"})
                else:
                    self._reply(401, {"WWW-Authenticate": 'Basic realm="authelia"'}, b"log in")

            def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer

            def log_message(self, *args: Any) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/authz/ext-authz/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def udp_ask(port: int, source: str, payload: bytes, target: str = "127.0.0.1") -> Optional[bytes]:
    """Send datagrams from `source` until one is answered (None after ~2 s: dropped)."""
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(0.2)
        for _ in range(10):
            sock.sendto(payload, (target, port))
            try:
                data, _ = sock.recvfrom(65536)
                return data
            except socket.timeout:
                continue
    return None
