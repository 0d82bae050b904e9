"""What backends receive (issue 12, item 16; issue 14), through a real Envoy, as README
documents it: the Host header as the client sent it (its port too), the forwarded headers
Envoy sets or replaces (X-Forwarded-For/Proto/Port, X-Real-IP), what a client's own
headers become, the path after rewrite; TCP maps and TLS passthrough without
proxy_protocol show the backend Envoy's address, never the client's; `curl --resolve`
reaches an SNI vhost.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from harness import REPO, Certs, free_ports, running_envoy, write_inventory

README = (REPO / "README.md").read_text()
CLIENT = "127.0.0.2"  # an "outside" client on loopback


class Echo:
    """HTTP (or HTTPS) backend answering with the request it saw and who sent it."""

    def __init__(self, tls: Optional[tuple[Path, Path]] = None):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "peer": self.client_address[0],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("backend-view")
    certs = Certs(tmp / "certs")
    site = certs.issue("site", "tls.example.com")
    passed = certs.issue("passed", "pass.example.com")
    web, nas, raw = Echo(), Echo(tls=passed), Echo()
    admin, http_port, https_port, map_port = free_ports(4)
    inventory = write_inventory(
        tmp / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"admin": f"127.0.0.1:{admin}", "access_log": "off"},
            "listen": {
                "ipv4": {"address": "127.0.0.1", "http": http_port, "https": https_port},
                "ipv6": {"address": "::1", "https": https_port},
            },
            "upstreams": {"web": web.endpoint, "nas": nas.endpoint, "raw": raw.endpoint},
            "certificates": {"site": {"cert": str(site[0]), "key": str(site[1])}},
            "http": [
                {
                    "domains": ["app.example.com", "tls.example.com"],
                    "tls": "site",
                    "routes": [
                        {"prefix": "/g/", "upstream": "web", "rewrite": "/"},
                        {"prefix": "/live/", "upstream": "web", "timeout": "0s"},
                        {"prefix": "/", "upstream": "web"},
                    ],
                },
                {"domains": ["plain.example.com"], "routes": [{"prefix": "/", "upstream": "web"}]},
            ],
            "tls_passthrough": [{"sni": ["pass.example.com"], "upstream": "nas"}],
            "tcp": [{"port": map_port, "upstream": "raw"}],
        },
    )
    try:
        with running_envoy(inventory, tmp):
            yield {
                "http": http_port,
                "https": https_port,
                "map": map_port,
                "ca_file": certs.ca_path,
            }
    finally:
        for server in (web, nas, raw):
            server.close()


def raw_get(port: int, path: str, headers: dict[str, str], tls_name: str = "") -> dict[str, Any]:
    """GET from CLIENT with exactly these headers (http.client would add its own)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(CLIENT, 0))
    if tls_name:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=tls_name)
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return dict(json.loads(body))


SPOOFED = {
    "X-Forwarded-For": "6.6.6.6",
    "X-Forwarded-Proto": "https",
    "X-Real-IP": "6.6.6.6",
    "Forwarded": "for=6.6.6.6",
}
# What Envoy adds or replaces on every request (README's table, Host apart).
ADDED = {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
    "x-envoy-external-address",
    "x-request-id",
    "x-envoy-expected-rq-timeout-ms",
}


def test_plain_http_backend_view(env: dict[str, Any]) -> None:
    seen = raw_get(
        env["http"], "/g//a/../b?q=1", {"Host": f"Plain.Example.com:{env['http']}", **SPOOFED}
    )
    headers = seen["headers"]
    assert headers["host"] == f"Plain.Example.com:{env['http']}"  # as sent: port and case
    assert headers["x-forwarded-for"] == CLIENT  # replaced, not appended to
    assert headers["x-real-ip"] == CLIENT  # replaced too
    assert headers["x-forwarded-proto"] == "http"  # what the connection was
    assert headers["x-forwarded-port"] == str(env["http"])  # the port the client reached
    assert headers["x-envoy-external-address"] == CLIENT
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["x-request-id"])
    assert headers["x-envoy-expected-rq-timeout-ms"] == "15000"
    # Passed on as the client wrote it: backends must not trust it.
    assert headers["forwarded"] == "for=6.6.6.6"
    assert seen["path"] == "/g/b?q=1"  # normalized (merge_slashes, dot segments)
    assert seen["peer"] == "127.0.0.1"  # the connection comes from Envoy
    assert set(headers) - {k.lower() for k in SPOOFED} - {"host", "connection"} == ADDED - {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-real-ip",
    }


def test_tls_vhost_backend_view(env: dict[str, Any]) -> None:
    seen = raw_get(
        env["https"],
        "/g/x",
        {"Host": f"tls.example.com:{env['https']}", **SPOOFED},
        "tls.example.com",
    )
    headers = seen["headers"]
    assert headers["host"] == f"tls.example.com:{env['https']}"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-port"] == str(env["https"])
    assert headers["x-forwarded-for"] == CLIENT
    assert seen["path"] == "/x"
    assert headers["x-envoy-original-path"] == "/g/x"  # only where rewrite changed it
    plain = raw_get(env["https"], "/", {"Host": "tls.example.com"}, "tls.example.com")
    assert "x-envoy-original-path" not in plain["headers"]
    live = raw_get(env["https"], "/live/", {"Host": "tls.example.com"}, "tls.example.com")
    assert "x-envoy-expected-rq-timeout-ms" not in live["headers"]  # timeout: 0s


def test_tcp_map_and_passthrough_hide_the_client_address(env: dict[str, Any]) -> None:
    mapped = raw_get(env["map"], "/", {"Host": "x"})
    assert mapped["peer"] == "127.0.0.1" != CLIENT
    assert "x-forwarded-for" not in mapped["headers"]  # bytes, not HTTP: nothing added
    sock = socket.create_connection(("127.0.0.1", env["https"]), source_address=(CLIENT, 0))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(sock, server_hostname="pass.example.com") as tls:
        conn = http.client.HTTPConnection("pass.example.com")
        conn.sock = tls
        conn.request("GET", "/")
        passed = json.loads(conn.getresponse().read())
    assert passed["peer"] == "127.0.0.1" != CLIENT
    assert "x-forwarded-for" not in passed["headers"]


def test_readme_documents_what_backends_receive() -> None:
    section = README.split("\n## What backends receive\n", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `([A-Za-z-]+)` \|", section, re.M)
    assert {h.lower() for h in table} == {"host", "x-envoy-original-path", *ADDED}
    for words in ("Forwarded", "proxy_protocol", "TCP map", "passthrough", "fail2ban"):
        assert words in section, words


def test_curl_resolve_reaches_an_sni_vhost(env: dict[str, Any]) -> None:
    """README's command, with this test's port and CA: SNI and Host are the name, the
    connection goes to the address given."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is missing: apt-get install curl (scripts/test does)")
    (command,) = re.findall(r"^    (curl --resolve \S+ https://\S+)$", README, re.M)
    port = env["https"]
    for address in ("127.0.0.1", "[::1]"):
        args = command.replace(":443:", f":{port}:").replace("192.168.1.1", address).split()
        url = args[-1].replace("router.example.com", f"router.example.com:{port}")
        args = [a.replace("router.example.com", "tls.example.com") for a in [*args[:-1], url]]
        result = subprocess.run(
            [curl, "-sS", "--cacert", str(env["ca_file"]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["headers"]["host"] == f"tls.example.com:{port}"
