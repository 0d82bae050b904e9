"""Issue 2's semantics 1-8, each shown with real Envoy and real traffic on loopback.

One rich inventory covers most semantics and runs in one Envoy for the whole module; a
second, IPv6-only Envoy shows that a family missing from `listen` has no listeners and
that a changed inventory reaches Envoy under a new version_info.

Ports: every listener and backend is on 127.0.0.1/::1 and a port from free_ports(), with
one exception made on purpose: the inventory says `ipv6: {https: 443}` so that the IPv6
redirect goes to 443, and the test then moves that one listener to a free
high port in lds.yaml before Envoy starts (tests never bind low ports). The redirect
route lives in rds_http_ipv6.yaml and is not touched.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from harness import (
    Certs,
    Envoy,
    HttpBackend,
    TcpEcho,
    UdpEcho,
    free_ports,
    http_get,
    peer_certificate_names,
    tcp_roundtrip,
    udp_roundtrip,
    write_inventory,
)

from xdsgen.conventions import content_version
from xdsgen.pipeline import load_model, render, write_plain
from xdsgen.render import Rendered, render_bootstrap

pytestmark = pytest.mark.envoy

APP = "app.example.test"  # the plain HTTP vhost with most routes
SECURE = "secure.example.test"  # TLS (certificate "main") with redirect_to_https
SECURE_WWW = "www.secure.example.test"
OTHER = "other.example.test"  # TLS with the second certificate "other"
NAS = "nas.example.test"  # passed through to a TLS backend with its own certificate
V6ONLY = "v6only.example.test"  # vhost limited to families: [ipv6]
UPSTREAM_NAME = "upstream.example.test"  # the name in the TLS upstream's certificate


@dataclass
class Rich:
    envoy: Envoy
    rendered: Rendered
    certs: Certs
    ports: dict[str, int]
    backends: dict[str, Any]
    access_log: Path
    inventory: Path

    def get(
        self, path: str, host: str, family: str = "ipv4", **kw: Any
    ) -> tuple[int, dict[str, str], bytes]:
        address = "127.0.0.1" if family == "ipv4" else "::1"
        return http_get(
            address,
            self.ports[f"http_{family}"],
            path,
            {"Host": host, **kw.pop("headers", {})},
            **kw,
        )

    def backend_of(self, path: str, host: str = APP, family: str = "ipv4") -> dict[str, Any]:
        status, _, body = self.get(path, host, family)
        assert status == 200, (status, body[:300])
        return dict(json.loads(body))

    def https(self, family: str, path: str, sni: Optional[str], host: str) -> tuple[int, bytes]:
        address = "127.0.0.1" if family == "ipv4" else "::1"
        status, _, body = http_get(
            address,
            self.ports[f"https_{family}"],
            path,
            {"Host": host},
            tls_context=self.certs.client_context(),
            sni=sni,
        )
        return status, body


def _rich_inventory(
    tmp: Path, certs: Certs, ports: dict[str, int], b: dict[str, Any]
) -> dict[str, Any]:
    main_cert, main_key = certs.issue("main", SECURE, SECURE_WWW)
    other_cert, other_key = certs.issue("other", OTHER)
    route = lambda prefix, upstream, **kw: {"prefix": prefix, "upstream": upstream, **kw}  # noqa: E731
    return {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp / "config"),
            "admin": f"127.0.0.1:{ports['admin']}",
            "access_log": str(tmp / "access.log"),
        },
        "listen": {
            "ipv4": {
                "address": "127.0.0.1",
                "http": ports["http_ipv4"],
                "https": ports["https_ipv4"],
            },
            # 443 on purpose: the redirect must leave the port out (see the module docstring).
            "ipv6": {"address": "::1", "http": ports["http_ipv6"], "https": 443},
        },
        "upstreams": {
            **{
                name: b[name].endpoint
                for name in (
                    "app",
                    "exact",
                    "suffix",
                    "fallback",
                    "grafana",
                    "metrics",
                    "ws",
                    "slow",
                    "first",
                    "second",
                    "secure_app",
                    "other_app",
                    "v6app",
                    "nas",
                )
            },
            "by_name": f"localhost:{b['by_name'].port}",
            "pair": {
                "endpoints": [b["rr_a"].endpoint, b["rr_b"].endpoint],
                "connect_timeout": "1.5s",
            },
            "tls_verified": {
                "endpoints": [b["tls_upstream"].endpoint],
                "tls": {"sni": UPSTREAM_NAME, "ca": str(certs.ca_path)},
            },
            "tls_wrong_sni": {
                "endpoints": [b["tls_upstream"].endpoint],
                "tls": {"sni": "wrong.example.test", "ca": str(certs.ca_path)},
            },
            "tls_unverified": {"endpoints": [b["tls_upstream"].endpoint], "tls": {"verify": False}},
            "tcp_both": b["tcp_both"].endpoint,
            "tcp_v4": b["tcp_v4"].endpoint,
            "udp_both": b["udp_both"].endpoint,  # an IPv6 upstream: [::1]:port
        },
        "certificates": {
            "main": {"cert": str(main_cert), "key": str(main_key)},
            "other": {"cert": str(other_cert), "key": str(other_key)},
        },
        "http": [
            {"domains": ["*"], "routes": [route("/", "fallback")]},
            {"domains": ["*.example.test"], "routes": [route("/", "suffix")]},
            {"domains": ["exact.example.test"], "routes": [route("/", "exact")]},
            {
                "domains": [APP],
                "routes": [
                    {"path": "/metrics", "upstream": "metrics"},
                    route("/first/", "first"),
                    route("/first/second/", "second"),  # never reached: /first/ matches first
                    route("/grafana/", "grafana", rewrite="/"),
                    route("/ws", "ws", websocket=True),
                    route("/slow/", "slow", timeout="500ms"),
                    route("/dns/", "by_name"),
                    route("/rr/", "pair"),
                    route("/tls-verified/", "tls_verified"),
                    route("/tls-wrong-sni/", "tls_wrong_sni"),
                    route("/tls-unverified/", "tls_unverified"),
                    route("/", "app"),
                ],
            },
            {
                "domains": [SECURE, SECURE_WWW],
                "tls": "main",
                "redirect_to_https": True,
                "routes": [route("/", "secure_app")],
            },
            {"domains": [OTHER], "tls": "other", "routes": [route("/", "other_app")]},
            {"domains": [V6ONLY], "families": ["ipv6"], "routes": [route("/", "v6app")]},
        ],
        "tls_passthrough": [{"sni": [NAS], "upstream": "nas"}],
        "tcp": [
            {"port": ports["tcp_both"], "upstream": "tcp_both"},
            {"port": ports["tcp_v4"], "upstream": "tcp_v4", "families": ["ipv4"]},
        ],
        "udp": [{"port": ports["udp_both"], "upstream": "udp_both"}],
    }


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rich]:
    tmp = tmp_path_factory.mktemp("rich")
    certs = Certs(tmp / "certs")
    names = (
        "admin",
        "http_ipv4",
        "https_ipv4",
        "http_ipv6",
        "https_ipv6",
        "tcp_both",
        "tcp_v4",
        "udp_both",
    )
    ports = dict(zip(names, free_ports(len(names))))
    backends: dict[str, Any] = {
        name: HttpBackend(name)
        for name in (
            "app",
            "exact",
            "suffix",
            "fallback",
            "grafana",
            "metrics",
            "ws",
            "slow",
            "first",
            "second",
            "secure_app",
            "other_app",
            "v6app",
            "by_name",
            "rr_a",
            "rr_b",
        )
    }
    backends["nas"] = HttpBackend("nas", tls=certs.issue("nas", NAS))
    backends["tls_upstream"] = HttpBackend(
        "tls_upstream", tls=certs.issue("upstream", UPSTREAM_NAME)
    )
    backends["tcp_both"] = TcpEcho("tcp_both")
    backends["tcp_v4"] = TcpEcho("tcp_v4")
    backends["udp_both"] = UdpEcho("udp_both", host="::1")
    inventory = write_inventory(
        tmp / "inventory.yaml", _rich_inventory(tmp, certs, ports, backends)
    )

    model = load_model(str(inventory), check_files=True)
    rendered = render(model)
    config = Path(model.envoy.config_dir)
    write_plain(str(config), rendered)
    lds = (config / "lds.yaml").read_text()
    assert lds.count("port_value: 443\n") == 1
    (config / "lds.yaml").write_text(
        lds.replace("port_value: 443\n", f"port_value: {ports['https_ipv6']}\n")
    )
    bootstrap = tmp / "bootstrap.yaml"
    bootstrap.write_text(render_bootstrap(model))
    envoy = Envoy(bootstrap, ports["admin"], tmp / "envoy.log").start()
    try:
        envoy.wait_versions(rendered)
        # STRICT_DNS resolves in the background: wait until localhost became an endpoint.
        envoy.wait_for(
            lambda: f"by_name::127.0.0.1:{backends['by_name'].port}::" in envoy.admin("/clusters"),
            what="localhost resolved",
        )
        # Envoy flushes access log files on a timer (about every 10s): log a request now,
        # look for it in the last test.
        http_get("127.0.0.1", ports["http_ipv4"], "/logged-path-1234", {"Host": APP})
        yield Rich(envoy, rendered, certs, ports, backends, tmp / "access.log", inventory)
    finally:
        envoy.stop()
        for backend in backends.values():
            backend.close()


def listener_names(envoy: Envoy) -> set[str]:
    statuses = json.loads(envoy.admin("/listeners?format=json"))["listener_statuses"]
    return {status["name"] for status in statuses}


def config_dump(envoy: Envoy, resource: str) -> list[dict[str, Any]]:
    dump = json.loads(envoy.admin(f"/config_dump?resource={resource}"))
    return list(dump["configs"])


# ----------------------------------------------------------------- 1. HTTP routing


def test_host_selection_exact_then_suffix_then_any(rich: Rich) -> None:
    assert rich.backend_of("/", "exact.example.test")["backend"] == "exact"
    assert rich.backend_of("/", "anything.example.test")["backend"] == "suffix"
    assert rich.backend_of("/", "deep.sub.example.test")["backend"] == "suffix"
    assert rich.backend_of("/", "router.lan")["backend"] == "fallback"
    # The bare suffix is not matched by "*.example.test".
    assert rich.backend_of("/", "example.test")["backend"] == "fallback"
    # Host names are case-insensitive, and the port in Host is ignored (strip_any_host_port).
    assert (
        rich.backend_of("/", f"EXACT.Example.TEST:{rich.ports['http_ipv4']}")["backend"] == "exact"
    )


def test_routes_in_order_first_match_wins(rich: Rich) -> None:
    assert rich.backend_of("/first/x")["backend"] == "first"
    # /first/second/ is more specific but comes later: /first/ wins.
    assert rich.backend_of("/first/second/x")["backend"] == "first"
    assert rich.backend_of("/other")["backend"] == "app"


def test_exact_path_and_prefix(rich: Rich) -> None:
    assert rich.backend_of("/metrics")["backend"] == "metrics"
    assert rich.backend_of("/metrics?x=1")["backend"] == "metrics"
    for path in ("/metrics/", "/metricsx", "/metrics/sub"):
        assert rich.backend_of(path)["backend"] == "app", path
    # A prefix is a string prefix, not a path segment: /grafana without the slash is not it.
    assert rich.backend_of("/grafana")["backend"] == "app"


def test_prefix_rewrite_reaches_backend(rich: Rich) -> None:
    seen = rich.backend_of("/grafana/api/health?full=1")
    assert (seen["backend"], seen["path"]) == ("grafana", "/api/health?full=1")
    seen = rich.backend_of("/grafana/")
    assert (seen["backend"], seen["path"]) == ("grafana", "/")
    # Without rewrite the backend sees the path as sent.
    assert rich.backend_of("/first/a/b")["path"] == "/first/a/b"


def _upgrade(port: int, path: str, host: str, family: str = "ipv4") -> tuple[bytes, socket.socket]:
    address = "127.0.0.1" if family == "ipv4" else "::1"
    sock = socket.create_connection((address, port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head, sock


def test_websocket_upgrade_passes_on_its_route_only(rich: Rich) -> None:
    head, sock = _upgrade(rich.ports["http_ipv4"], "/ws/socket", APP)
    with sock:
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(b"\x81\x05hello")  # bytes flow both ways once upgraded
        echoed = b""
        while len(echoed) < 7:
            echoed += sock.recv(4096)
        assert echoed == b"\x81\x05hello"
    # The catch-all route has no websocket: Envoy refuses the upgrade itself (403), so the
    # app backend (which would answer 101) never sees it.
    before = rich.envoy.stat("cluster.app.upstream_rq_total")
    head, sock = _upgrade(rich.ports["http_ipv4"], "/not-ws", APP)
    with sock:
        assert head.startswith(b"HTTP/1.1 403"), head
    assert rich.envoy.stat("cluster.app.upstream_rq_total") == before


def test_per_route_timeout(rich: Rich) -> None:
    assert rich.backend_of("/slow/quick")["backend"] == "slow"
    started = time.monotonic()
    status, _, body = rich.get("/slow/late", APP, headers={"X-Delay": "3"})
    elapsed = time.monotonic() - started
    assert status == 504, body
    assert 0.4 < elapsed < 2.5, elapsed
    # Other routes keep Envoy's default (no timeout here beyond 15s): the same delay passes.
    status, _, body = rich.get("/other", APP, headers={"X-Delay": "0.8"})
    assert status == 200


# ----------------------------------------------------------------- 2. redirect_to_https


def test_redirect_ipv4_goes_to_the_ipv4_https_port(rich: Rich) -> None:
    for host in (SECURE, f"{SECURE}:{rich.ports['http_ipv4']}", SECURE_WWW):
        status, headers, _ = rich.get("/a/b?x=1&y=%2F", host, "ipv4")
        assert status == 301
        name = host.split(":")[0]
        assert headers["location"] == f"https://{name}:{rich.ports['https_ipv4']}/a/b?x=1&y=%2F"
    # Only the vhost with redirect_to_https redirects.
    assert rich.get("/a", APP, "ipv4")[0] == 200


def test_redirect_ipv6_with_443_goes_to_443_whatever_port_host_names(rich: Rich) -> None:
    """The backend gets Host as sent (issue 14), so Envoy no longer strips its port before
    the redirect: with http on a port other than 80, the redirect names :443 itself (on
    80, Envoy leaves the port out)."""
    for host in (SECURE, f"{SECURE}:{rich.ports['http_ipv6']}"):
        status, headers, _ = rich.get("/a/b?x=1", host, "ipv6")
        assert status == 301
        assert headers["location"] == f"https://{SECURE}:443/a/b?x=1"


# ----------------------------------------------------------------- 3. TLS termination


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_tls_serves_the_named_certificate_per_sni(rich: Rich, family: str) -> None:
    address = "127.0.0.1" if family == "ipv4" else "::1"
    port = rich.ports[f"https_{family}"]
    ca = rich.certs.ca_path
    assert sorted(peer_certificate_names(address, port, SECURE, ca)) == sorted([SECURE, SECURE_WWW])
    assert peer_certificate_names(address, port, SECURE_WWW, ca) == [SECURE, SECURE_WWW]
    assert peer_certificate_names(address, port, OTHER, ca) == [OTHER]
    status, body = rich.https(family, "/x", SECURE, SECURE)
    assert (status, json.loads(body)["backend"]) == (200, "secure_app")
    status, body = rich.https(family, "/x", OTHER, OTHER)
    assert (status, json.loads(body)["backend"]) == (200, "other_app")


def test_https_listener_has_only_tls_vhosts(rich: Rich) -> None:
    # APP has no tls: over TLS (SNI of a served name) its Host finds no vhost -> 404.
    status, _ = rich.https("ipv4", "/", SECURE, APP)
    assert status == 404


@pytest.mark.parametrize("sni", ["unknown.example.test", None])
def test_unknown_or_missing_sni_closes_the_connection(rich: Rich, sni: Optional[str]) -> None:
    """Documented behaviour: no filter chain matches an unknown SNI or a ClientHello without
    SNI, so Envoy closes the connection before any certificate is sent (no default chain)."""
    stat = "listener.https_ipv4.no_filter_chain_match"
    before = int(rich.envoy.stat(stat) or 0)
    with pytest.raises((ssl.SSLError, ConnectionResetError, ConnectionAbortedError)):
        peer_certificate_names("127.0.0.1", rich.ports["https_ipv4"], sni, rich.certs.ca_path)
    rich.envoy.wait_for(lambda: int(rich.envoy.stat(stat)) == before + 1, what=stat)


# ----------------------------------------------------------------- 4. passthrough


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_passthrough_client_sees_the_upstreams_own_certificate(rich: Rich, family: str) -> None:
    address = "127.0.0.1" if family == "ipv4" else "::1"
    port = rich.ports[f"https_{family}"]
    assert peer_certificate_names(address, port, NAS, rich.certs.ca_path) == [NAS]
    status, body = rich.https(family, "/files", NAS, NAS)
    assert (status, json.loads(body)["backend"], json.loads(body)["path"]) == (200, "nas", "/files")
    stat = f"tcp.https_{family}_pass_nas.downstream_cx_total"
    assert int(rich.envoy.stat(stat)) >= 2


# ----------------------------------------------------------------- 5. tcp and udp


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_tcp_echo_on_both_families(rich: Rich, address: str) -> None:
    assert (
        tcp_roundtrip(address, rich.ports["tcp_both"], b"bytes\x00\xff")
        == b"tcp_both:bytes\x00\xff"
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_udp_echo_on_both_families(rich: Rich, address: str) -> None:
    # The upstream is IPv6 ([::1]): IPv4 clients reach it too.
    assert udp_roundtrip(address, rich.ports["udp_both"], b"ping") == b"udp_both:ping"


# ----------------------------------------------------------------- 6. families


def test_ipv4_only_tcp_map_has_no_ipv6_listener(rich: Rich) -> None:
    assert tcp_roundtrip("127.0.0.1", rich.ports["tcp_v4"], b"x") == b"tcp_v4:x"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("::1", rich.ports["tcp_v4"]), timeout=5).close()
    names = listener_names(rich.envoy)
    assert f"tcp_{rich.ports['tcp_v4']}_ipv4" in names
    assert f"tcp_{rich.ports['tcp_v4']}_ipv6" not in names


def test_ipv6_only_vhost_is_absent_from_ipv4(rich: Rich) -> None:
    assert rich.backend_of("/", V6ONLY, "ipv6")["backend"] == "v6app"
    # On IPv4 the name falls through to the *.example.test wildcard.
    assert rich.backend_of("/", V6ONLY, "ipv4")["backend"] == "suffix"


# ----------------------------------------------------------------- 7. upstreams


def test_hostname_upstream_is_resolved_by_dns(rich: Rich) -> None:
    assert rich.backend_of("/dns/x")["backend"] == "by_name"
    (cluster,) = [c for c in _dynamic_clusters(rich) if c["name"] == "by_name"]
    assert cluster["type"] == "STRICT_DNS"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"]["address"] == "localhost"


def test_static_upstream_is_an_ip_literal(rich: Rich) -> None:
    (cluster,) = [c for c in _dynamic_clusters(rich) if c["name"] == "app"]
    assert cluster["type"] == "STATIC"


def test_several_endpoints_round_robin(rich: Rich) -> None:
    seen = Counter(rich.backend_of(f"/rr/{i}")["backend"] for i in range(8))
    # Round robin alternates: each backend gets exactly half, whatever the start.
    assert seen == Counter({"rr_a": 4, "rr_b": 4})


def _dynamic_clusters(rich: Rich) -> list[dict[str, Any]]:
    return [entry["cluster"] for entry in config_dump(rich.envoy, "dynamic_active_clusters")]


def test_connect_timeout_in_config_dump(rich: Rich) -> None:
    clusters = {c["name"]: c for c in _dynamic_clusters(rich)}
    assert clusters["pair"]["connect_timeout"] == "1.500s"
    assert clusters["app"]["connect_timeout"] == "5s"


def test_upstream_tls_verified_with_sni_and_ca(rich: Rich) -> None:
    seen = rich.backend_of("/tls-verified/x")
    assert (seen["backend"], seen["path"]) == ("tls_upstream", "/tls-verified/x")


def test_upstream_tls_wrong_sni_fails_verification(rich: Rich) -> None:
    status, _, _ = rich.get("/tls-wrong-sni/x", APP)
    assert status == 503
    assert int(rich.envoy.stat("cluster.tls_wrong_sni.ssl.fail_verify_san")) >= 1


def test_upstream_tls_unverified(rich: Rich) -> None:
    assert rich.backend_of("/tls-unverified/x")["backend"] == "tls_upstream"


# ----------------------------------------------------------------- 8. names and versions


def test_listener_and_cluster_names_are_stable_and_readable(rich: Rich) -> None:
    listeners = listener_names(rich.envoy)
    p = rich.ports
    assert listeners == {
        "http_ipv4",
        "http_ipv6",
        "https_ipv4",
        "https_ipv6",
        f"tcp_{p['tcp_both']}_ipv4",
        f"tcp_{p['tcp_both']}_ipv6",
        f"tcp_{p['tcp_v4']}_ipv4",
        f"udp_{p['udp_both']}_ipv4",
        f"udp_{p['udp_both']}_ipv6",
    }
    clusters = {c["name"] for c in _dynamic_clusters(rich)}
    upstreams = set(yaml.safe_load(rich.inventory.read_text())["upstreams"])
    assert clusters == upstreams


def test_stat_prefixes_name_each_listener_and_upstream(rich: Rich) -> None:
    rich.backend_of("/grafana/x")
    tcp_roundtrip("::1", rich.ports["tcp_both"], b"s")
    udp_roundtrip("127.0.0.1", rich.ports["udp_both"], b"s")
    stats = rich.envoy.stats()
    assert int(stats["http.http_ipv4.downstream_rq_total"]) >= 1
    assert int(stats["cluster.grafana.upstream_rq_total"]) >= 1
    assert int(stats[f"tcp.tcp_{rich.ports['tcp_both']}_ipv6.downstream_cx_total"]) >= 1
    assert int(stats[f"udp.udp_{rich.ports['udp_both']}_ipv4.downstream_sess_total"]) >= 1
    prometheus = rich.envoy.admin("/stats/prometheus")
    assert re.search(
        r'envoy_cluster_upstream_rq_total\{envoy_cluster_name="grafana"\} [1-9]', prometheus
    )
    assert (
        'envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="http_ipv6"}' in prometheus
    )


def test_version_info_is_the_content_hash(rich: Rich) -> None:
    for name, text in rich.rendered.files.items():
        body = text.split("\n", 1)[1]
        assert rich.rendered.version(name) == content_version(body)
    stats = rich.envoy.stats()
    assert stats["cluster_manager.cds.version_text"] == f'"{rich.rendered.version("cds.yaml")}"'
    assert stats["listener_manager.lds.version_text"] == f'"{rich.rendered.version("lds.yaml")}"'
    route_versions = {
        rc["route_config"]["name"]: rc["version_info"]
        for rc in config_dump(rich.envoy, "dynamic_route_configs")
    }
    assert route_versions == {
        name[4:-5]: rich.rendered.version(name)
        for name in rich.rendered.files
        if name.startswith("rds_")
    }


def test_same_inventory_same_versions(rich: Rich) -> None:
    again = render(load_model(str(rich.inventory), check_files=True))
    assert again.files == rich.rendered.files


def test_access_log_written_to_the_named_file(rich: Rich) -> None:
    # Kept after the other tests on this Envoy: its flush timer has usually fired by now.
    rich.envoy.wait_for(
        lambda: "/logged-path-1234" in rich.access_log.read_text(),
        timeout=15,
        what="access log line",
    )


# ----------------------------------------------------------------- a second Envoy: IPv6 only


@pytest.fixture(scope="module")
def v6only(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Envoy, Path, dict[str, Any], dict[str, int]]]:
    tmp = tmp_path_factory.mktemp("v6only")
    names = ("admin", "http", "tcp", "udp")
    ports = dict(zip(names, free_ports(len(names))))
    app, app2 = HttpBackend("app"), HttpBackend("app2")
    tcp, udp = TcpEcho("tcp"), UdpEcho("udp")
    data = {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp / "config"),
            "admin": f"127.0.0.1:{ports['admin']}",
            "access_log": False,
        },
        "listen": {"ipv6": {"address": "::1", "http": ports["http"]}},
        "upstreams": {"app": app.endpoint, "tcp": tcp.endpoint, "udp": udp.endpoint},
        "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        "tcp": [{"port": ports["tcp"], "upstream": "tcp"}],
        "udp": [{"port": ports["udp"], "upstream": "udp"}],
    }
    inventory = write_inventory(tmp / "inventory.yaml", data)
    model = load_model(str(inventory))
    write_plain(model.envoy.config_dir, render(model))
    (tmp / "bootstrap.yaml").write_text(render_bootstrap(model))
    envoy = Envoy(tmp / "bootstrap.yaml", ports["admin"], tmp / "envoy.log").start()
    try:
        envoy.wait_versions(render(model))
        yield envoy, inventory, {"data": data, "app2": app2}, ports
    finally:
        envoy.stop()
        for backend in (app, app2, tcp, udp):
            backend.close()


def test_family_missing_from_listen_has_no_listeners(v6only: Any) -> None:
    envoy, _, _, ports = v6only
    listeners = listener_names(envoy)
    assert listeners == {"http_ipv6", f"tcp_{ports['tcp']}_ipv6", f"udp_{ports['udp']}_ipv6"}
    assert json.loads(http_get("::1", ports["http"], "/")[2])["backend"] == "app"
    assert tcp_roundtrip("::1", ports["tcp"], b"six") == b"tcp:six"
    assert udp_roundtrip("::1", ports["udp"], b"six") == b"udp:six"
    for port in (ports["http"], ports["tcp"]):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_changed_inventory_reaches_envoy_under_new_versions(v6only: Any) -> None:
    envoy, inventory, extra, ports = v6only
    before = render(load_model(str(inventory)))
    data = extra["data"]
    data["upstreams"]["app"] = extra["app2"].endpoint
    write_inventory(inventory, data)
    model = load_model(str(inventory))
    after = render(model)
    # Only the cluster changed: only cds.yaml gets a new version.
    changed = {name for name in after.files if after.version(name) != before.version(name)}
    assert changed == {"cds.yaml"}
    written = write_plain(model.envoy.config_dir, after)
    assert [os.path.basename(p) for p in written] == ["cds.yaml"]
    envoy.wait_versions(after)
    envoy.wait_for(
        lambda: json.loads(http_get("::1", ports["http"], "/")[2])["backend"] == "app2",
        what="traffic on the new endpoint",
    )
