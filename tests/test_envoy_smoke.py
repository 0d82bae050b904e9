"""The shipped example, rewritten to loopback, loads into real Envoy and routes traffic."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from harness import (
    EXAMPLE,
    Certs,
    HttpBackend,
    TcpEcho,
    UdpEcho,
    free_ports,
    http_get,
    running_envoy,
    tcp_roundtrip,
    udp_roundtrip,
    write_inventory,
)

pytestmark = pytest.mark.envoy


def test_example_on_loopback_routes_http_tls_tcp_udp(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("router", "router.example.com", "mynas.example.com", "ha.example.com")
    backends = {
        name: HttpBackend(name) for name in ("lede", "grafana", "prometheus", "home_assistant")
    }
    tcp = TcpEcho("smb_local")
    udp = UdpEcho("aria2_bt")
    admin, http4, https4, tcp_port, udp_port = free_ports(5)
    data["envoy"] = {
        "config_dir": str(tmp_path / "config"),
        "admin": f"127.0.0.1:{admin}",
        "access_log": "off",
    }
    data["listen"] = {"ipv4": {"address": "127.0.0.1", "http": http4, "https": https4}}
    for name, backend in backends.items():
        data["upstreams"][name] = backend.endpoint
    data["upstreams"]["smb_local"] = tcp.endpoint
    data["upstreams"]["aria2_bt"] = udp.endpoint
    for name in ("nas_https", "smb_internet", "ntp"):
        data["upstreams"][name] = "127.0.0.1:9"
    data["certificates"]["router"] = {"cert": str(cert), "key": str(key)}
    data["tcp"] = [{"port": tcp_port, "upstream": "smb_local"}]
    data["udp"] = [{"port": udp_port, "upstream": "aria2_bt"}]
    # The example keeps the router's UI to its LAN (issue 14): here the LAN is 127.0.0.1,
    # and 127.0.0.2 is a client from the internet.
    data["networks"]["lan"] = ["127.0.0.1/32"]
    inventory = write_inventory(tmp_path / "inventory.yaml", data)
    try:
        with running_envoy(inventory, tmp_path):
            status, _, body = http_get("127.0.0.1", http4, "/x", {"Host": "anything.lan"})
            assert (status, json.loads(body)["backend"]) == (200, "lede")
            with socket.create_connection(("127.0.0.1", http4), 5, ("127.0.0.2", 0)) as sock:
                sock.sendall(b"GET /x HTTP/1.1\r\nHost: anything.lan\r\nConnection: close\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 403")  # not from the LAN
            status, headers, _ = http_get(
                "127.0.0.1", http4, "/grafana/?q=1", {"Host": "router.example.com"}
            )
            assert status == 301
            assert headers["location"] == f"https://router.example.com:{https4}/grafana/?q=1"
            status, _, body = http_get(
                "127.0.0.1",
                https4,
                "/grafana/d",
                {"Host": f"router.example.com:{https4}"},
                tls_context=certs.client_context(),
                sni="router.example.com",
            )
            assert (status, json.loads(body)["backend"]) == (200, "grafana")
            assert tcp_roundtrip("127.0.0.1", tcp_port, b"hello") == b"smb_local:hello"
            assert udp_roundtrip("127.0.0.1", udp_port, b"ping") == b"aria2_bt:ping"
    finally:
        for backend in [*backends.values(), tcp, udp]:
            backend.close()
