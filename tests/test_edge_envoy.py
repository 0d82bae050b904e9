"""The edge features with a real Envoy and real clients (issue 15): HTTP/3 over QUIC on
both families with the https certificates, alt-svc on the TCP answers, an HTTP/2-only
(h2c) backend, compression for text but never for a WebSocket, and combined access-log
lines that GoAccess and CrowdSec's parser read."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from edge_harness import H2cBackend, http3_get
from harness import Certs, HttpBackend, free_ports, http_get, running_envoy, write_inventory

pytestmark = pytest.mark.envoy

ADVERTISED = 443  # the ipv6 family says clients reach QUIC on 443 (port forwarding)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("edge")
    certs = Certs(tmp / "certs")
    cert, key = certs.issue("site", "app.test", "plain.test")
    app, h2c = HttpBackend("app"), H2cBackend("h2c")
    h2tls = H2cBackend("h2tls", tls=certs.issue("backend", "backend.test"))
    v4_http, v4_https, v6_https = free_ports(3)
    log = tmp / "access.log"
    data = {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp / "config"),
            "access_log": str(log),
            "access_log_format": "combined",
        },
        "listen": {
            "ipv4": {"address": "127.0.0.1", "http": v4_http, "https": v4_https, "http3": True},
            "ipv6": {
                "address": "::1",
                "https": v6_https,
                "http3": {"advertised_port": ADVERTISED},
            },
        },
        "certificates": {"site": {"cert": str(cert), "key": str(key)}},
        "upstreams": {
            "app": app.endpoint,
            "h2c": {
                "endpoints": [h2c.endpoint],
                "h2": True,
                "health_check": {"path": "/healthz", "interval": "1s"},
            },
            "h2tls": {
                "endpoints": [h2tls.endpoint],
                "h2": True,
                "tls": {"sni": "backend.test", "ca": str(certs.ca_path)},
            },
        },
        "http": [
            {
                "domains": ["app.test"],
                "tls": "site",
                "compress": True,
                "routes": [
                    {"prefix": "/h2tls", "upstream": "h2tls"},
                    {"prefix": "/h2", "upstream": "h2c"},
                    {"prefix": "/ws", "upstream": "app", "websocket": True},
                    {"prefix": "/", "upstream": "app"},
                ],
            },
            {
                "domains": ["plain.test"],
                "tls": "site",
                "routes": [{"prefix": "/", "upstream": "app"}],
            },
        ],
    }
    inventory = write_inventory(tmp / "inventory.yaml", data)
    with running_envoy(inventory, tmp) as envoy:
        try:
            yield {
                "envoy": envoy,
                "data": data,
                "inventory": inventory,
                "certs": certs,
                "http": v4_http,
                "https": v4_https,
                "https6": v6_https,
                "log": log,
                "h2c": h2c,
                "h2tls": h2tls,
            }
        finally:
            app.close()
            h2c.close()
            h2tls.close()


def https_get(env: dict[str, Any], path: str, host: str = "app.test", **headers: str) -> Any:
    return http_get(
        "127.0.0.1",
        env["https"],
        path,
        headers={"Host": host, **headers},
        tls_context=env["certs"].client_context(),
        sni=host,
    )


def curl_http2(env: dict[str, Any], path: str) -> tuple[str, bytes]:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is missing: apt-get install curl (scripts/test does)")
    result = subprocess.run(
        [
            curl,
            "-sS",
            "--http2",
            "--cacert",
            str(env["certs"].ca_path),
            "--resolve",
            f"app.test:{env['https']}:127.0.0.1",
            "-w",
            "\n%{http_version}",
            f"https://app.test:{env['https']}{path}",
        ],
        capture_output=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    body, _, version = result.stdout.rpartition(b"\n")
    return version.decode(), body


def test_http3_reaches_the_same_backend_as_http1_and_http2(env: dict[str, Any]) -> None:
    status, headers, body = https_get(env, "/x")
    assert status == 200 and json.loads(body)["backend"] == "app"
    # The TCP answer tells browsers where HTTP/3 is: this family's https port.
    assert headers["alt-svc"] == f'h3=":{env["https"]}"; ma=86400'
    version, body = curl_http2(env, "/x")
    assert version == "2" and json.loads(body)["backend"] == "app"
    status, headers, body = http3_get(
        "127.0.0.1", env["https"], "app.test", "/x", ca=env["certs"].ca_path
    )
    assert status == 200 and json.loads(body)["backend"] == "app"
    envoy = env["envoy"]
    assert int(envoy.stat("http.https_ipv4.downstream_rq_http3_total")) >= 1


def test_http3_on_ipv6_with_the_advertised_port(env: dict[str, Any]) -> None:
    status, _, body = http3_get("::1", env["https6"], "app.test", "/six", ca=env["certs"].ca_path)
    assert status == 200 and json.loads(body)["path"] == "/six"
    status, headers, _ = http_get(
        "::1",
        env["https6"],
        "/",
        headers={"Host": "app.test"},
        tls_context=env["certs"].client_context(),
        sni="app.test",
    )
    assert status == 200
    assert headers["alt-svc"] == f'h3=":{ADVERTISED}"; ma=86400'


def test_http3_uses_the_same_certificates_and_sni_chains(env: dict[str, Any]) -> None:
    # The second name of the certificate reaches its own vhost over QUIC too.
    status, headers, body = http3_get(
        "127.0.0.1", env["https"], "plain.test", "/p", ca=env["certs"].ca_path
    )
    assert status == 200 and json.loads(body)["path"] == "/p"
    assert "content-encoding" not in headers
    # A name no chain has gets no handshake (Envoy closes), as over TCP.
    with pytest.raises(Exception):  # noqa: B017 - aioquic raises its own timeouts
        http3_get("127.0.0.1", env["https"], "other.test", "/", ca=env["certs"].ca_path, timeout=2)


def test_an_http2_only_backend_is_spoken_http2(env: dict[str, Any]) -> None:
    before = env["h2c"].requests
    status, _, body = https_get(env, "/h2/call")
    assert status == 200
    answer = json.loads(body)
    assert answer == {"backend": "h2c", "protocol": "HTTP/2", "path": "/h2/call"}
    assert env["h2c"].requests > before
    # Its health check speaks HTTP/2 as well (an HTTP/1.1 check would fail on it).
    assert int(env["envoy"].stat("cluster.h2c.health_check.success")) >= 1
    assert env["envoy"].stat("cluster.h2c.health_check.failure") in ("", "0")


def test_h2_over_tls_is_offered_by_alpn(env: dict[str, Any]) -> None:
    status, _, body = https_get(env, "/h2tls/x")
    assert status == 200, body
    assert json.loads(body) == {"backend": "h2tls", "protocol": "HTTP/2", "path": "/h2tls/x"}
    assert env["h2tls"].alpn and set(env["h2tls"].alpn) == {"h2"}


def test_text_is_compressed_as_the_client_prefers(env: dict[str, Any]) -> None:
    import brotli

    status, headers, body = https_get(env, "/c", **{"Accept-Encoding": "br;q=1, gzip;q=0.5"})
    assert status == 200 and headers["content-encoding"] == "br"
    assert json.loads(brotli.decompress(body))["path"] == "/c"
    status, headers, body = https_get(env, "/c", **{"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["path"] == "/c"
    status, headers, body = https_get(env, "/c")
    assert "content-encoding" not in headers and json.loads(body)["path"] == "/c"
    # A vhost without compress: true is left alone.
    status, headers, body = https_get(env, "/c", host="plain.test", **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in headers and json.loads(body)["path"] == "/c"


def test_a_websocket_is_never_compressed(env: dict[str, Any]) -> None:
    context = env["certs"].client_context()
    raw = socket.create_connection(("127.0.0.1", env["https"]), timeout=5)
    with context.wrap_socket(raw, server_hostname="app.test") as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nAccept-Encoding: gzip, br\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"content-encoding" not in head.lower()
        payload = b"<html>" + b"text that would compress well " * 20 + b"</html>"
        sock.sendall(payload)
        echoed = b""
        while len(echoed) < len(payload):
            echoed += sock.recv(65536)
        assert echoed == payload


# CrowdSec's nginx access-log parser (crowdsecurity/nginx-logs), its grok written as a Python
# regex: an optional leading host (target_fqdn), the combined line, anything after it.
_GROK = {
    "IPORHOST": r"(?:[0-9A-Za-z][0-9A-Za-z.-]*|[0-9A-Fa-f:.]+)",
    "NGCUSTOMERUSER": r"[a-zA-Z0-9\.\@\-\+_%]+",
    "HTTPDATE": r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
    "WORD": r"\w+",
    "DATA": r".*?",
    "NUMBER": r"[0-9]+(?:\.[0-9]+)?",
    "NOTDQUOTE": r'[^"]*',
}
_NGINX = (
    r"(%{IPORHOST:target_fqdn} )?%{IPORHOST:remote_addr} - %{NGCUSTOMERUSER:remote_user}? "
    r'\[%{HTTPDATE:time_local}\] "%{WORD:verb} %{DATA:request} HTTP/%{NUMBER:http_version}" '
    r'%{NUMBER:status} %{NUMBER:body_bytes_sent} "%{NOTDQUOTE:http_referer}" '
    r'"%{NOTDQUOTE:http_user_agent}"'
)
CROWDSEC_NGINX = re.compile(
    re.sub(
        r"%\{(\w+):(\w+)\}",
        lambda m: f"(?P<{m.group(2)}>{_GROK[m.group(1)]})",
        _NGINX,
    )
)
GOACCESS_FORMAT = '%v %h %^[%d:%t %^] "%r" %s %b "%R" "%u" %^'


def logged_lines(env: dict[str, Any], marker: str, count: int) -> list[str]:
    deadline = time.monotonic() + 10  # Envoy flushes its access log every second
    while time.monotonic() < deadline:
        text = env["log"].read_text() if env["log"].exists() else ""
        found = [line for line in text.splitlines() if marker in line]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{count} lines with {marker} not logged:\n{text[-2000:]}")


def test_combined_log_lines_are_read_by_crowdsec_and_goaccess(
    env: dict[str, Any], tmp_path: Any
) -> None:
    https_get(env, "/logged/1", **{"User-Agent": "probe-agent", "Referer": "https://ref.test/"})
    https_get(env, "/logged/2", host="plain.test")
    http3_get("127.0.0.1", env["https"], "app.test", "/logged/3", ca=env["certs"].ca_path)
    lines = logged_lines(env, "/logged/", 3)
    parsed = [CROWDSEC_NGINX.search(line) for line in lines]
    assert all(parsed), lines
    first = next(m for m in parsed if m and m["request"] == "/logged/1")
    assert first["target_fqdn"] == "app.test" and first["remote_addr"] == "127.0.0.1"
    assert (first["verb"], first["status"], first["http_user_agent"]) == (
        "GET",
        "200",
        "probe-agent",
    )
    assert first["http_referer"] == "https://ref.test/"
    # The listener is named last in every line; HTTP/3 is said as the protocol.
    assert all(line.endswith(" https_ipv4") for line in lines), lines
    third = next(m for m in parsed if m and m["request"] == "/logged/3")
    assert third["http_version"] == "3"

    goaccess = shutil.which("goaccess")
    if goaccess is None:
        pytest.fail("goaccess is missing: apt-get install goaccess (scripts/test does)")
    sample = tmp_path / "access.log"
    sample.write_text("".join(line + "\n" for line in lines))
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            goaccess,
            str(sample),
            "--no-global-config",
            f"--log-format={GOACCESS_FORMAT}",
            "--date-format=%d/%b/%Y",
            "--time-format=%T",
            "-o",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(report.read_text())
    general = doc["general"]
    assert (general["total_requests"], general["valid_requests"], general["failed_requests"]) == (
        3,
        3,
        0,
    )
    vhosts = {item["data"]: item["hits"]["count"] for item in doc["vhosts"]["data"]}
    assert vhosts == {"app.test": 2, "plain.test": 1}


def test_apply_switches_http3_off_and_on(env: dict[str, Any]) -> None:
    """apply adds and removes the QUIC listener like any other (confirmed by Envoy)."""
    from test_apply_helpers import run_xdsgen

    def apply(http3: bool) -> None:
        data = json.loads(json.dumps(env["data"]))
        data["listen"]["ipv4"]["http3"] = http3
        write_inventory(env["inventory"], data)
        result = run_xdsgen("apply", str(env["inventory"]))
        assert result.returncode == 0, result.stderr

    try:
        apply(False)
        _, headers, _ = https_get(env, "/off")
        assert "alt-svc" not in headers
        with pytest.raises(Exception):  # noqa: B017 - nothing answers QUIC now
            http3_get(
                "127.0.0.1", env["https"], "app.test", "/", ca=env["certs"].ca_path, timeout=2
            )
    finally:
        apply(True)
    status, _, _ = http3_get("127.0.0.1", env["https"], "app.test", "/on", ca=env["certs"].ca_path)
    assert status == 200
    assert "alt-svc" in https_get(env, "/on")[1]
