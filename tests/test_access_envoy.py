"""Who may reach what (issue 14), through a real Envoy with real traffic.

Loopback has a whole /8: clients bind 127.0.0.2 to be "outside" and 127.0.0.1 to be
"inside" (the inventory's lan is 127.0.0.1/32 and ::1/128). One Envoy serves every case:
allow lists on a vhost, on routes both ways, on a TCP map, a passthrough and a UDP map;
basic auth; forward auth against a small Authelia-like service; the PROXY protocol to TCP
backends that parse it; what HTTP backends are told on both families; HSTS and the
security headers.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from access_harness import (
    INSIDE,
    OUTSIDE,
    AutheliaLike,
    BannerBackend,
    ProxyProtocolBackend,
    fetch,
    udp_ask,
)
from harness import Certs, HttpBackend, UdpEcho, free_ports, running_envoy, write_inventory
from test_apply_helpers import XDSGEN

pytestmark = pytest.mark.envoy


def passwd(path: Path, user: str, password: str) -> subprocess.CompletedProcess[str]:
    """`xdsgen passwd FILE USER` as a script runs it: the password on stdin."""
    return subprocess.run(
        [*XDSGEN, "passwd", str(path), user],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("access")
    certs = Certs(tmp / "certs")
    site = certs.issue("site", "tls.example.com", "sso.example.com")
    nas_cert = certs.issue("nas", "nas.example.com")
    users = tmp / "family.htpasswd"
    for user, password in (("alice", "wonderland"), ("bob", "builder")):
        done = passwd(users, user, password)
        assert done.returncode == 0, done.stderr
    web = HttpBackend("web")
    web6 = HttpBackend("web6", host="::1")
    banner = BannerBackend()
    plain = BannerBackend()
    pp = ProxyProtocolBackend()
    nas = ProxyProtocolBackend(tls=(str(nas_cert[0]), str(nas_cert[1])))
    udp = UdpEcho("wg")
    auth = AutheliaLike()
    admin, http, https, ssh, ssh_open, pp1, pp2, wg = free_ports(8)
    dead = free_ports(1)[0]  # an auth service that is down
    inventory = write_inventory(
        tmp / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"admin": f"127.0.0.1:{admin}", "access_log": "off"},
            "listen": {
                "ipv4": {"address": "127.0.0.1", "http": http, "https": https},
                "ipv6": {"address": "::1", "http": http, "https": https},
            },
            "networks": {"lan": ["127.0.0.1/32", "::1/128"], "vpn": ["10.8.0.0/24"]},
            "auth": {
                "family": {"basic": str(users)},
                "sso": {
                    "forward": {
                        "url": auth.url,
                        "headers_to_upstream": ["Remote-User", "Remote-Groups"],
                    }
                },
                "down": {"forward": {"url": f"http://127.0.0.1:{dead}/verify"}},
            },
            "upstreams": {
                "web": web.endpoint,
                "web6": web6.endpoint,
                "banner": banner.endpoint,
                "plain": plain.endpoint,
                "pp": pp.endpoint,
                "nas": nas.endpoint,
                "wg": udp.endpoint,
            },
            "certificates": {"site": {"cert": str(site[0]), "key": str(site[1])}},
            "http": [
                {
                    "domains": ["router.example.com"],
                    "allow": ["lan", "vpn"],
                    "routes": [
                        {"prefix": "/open/", "upstream": "web", "allow": ["0.0.0.0/0", "::/0"]},
                        {"prefix": "/", "upstream": "web"},
                    ],
                },
                {
                    "domains": ["app.example.com"],
                    "routes": [
                        {"prefix": "/admin/", "upstream": "web", "allow": ["lan"]},
                        {"prefix": "/", "upstream": "web"},
                    ],
                },
                {
                    "domains": ["photos.example.com"],
                    "auth": "family",
                    "routes": [
                        {"prefix": "/share/", "upstream": "web", "auth": "none"},
                        {"prefix": "/", "upstream": "web"},
                    ],
                },
                {
                    "domains": ["sso.example.com"],
                    "tls": "site",
                    "auth": "sso",
                    "routes": [
                        {"prefix": "/public/", "upstream": "web", "auth": "none"},
                        {"prefix": "/", "upstream": "web"},
                    ],
                },
                {
                    "domains": ["down.example.com"],
                    "auth": "down",
                    "routes": [{"prefix": "/", "upstream": "web"}],
                },
                {
                    "domains": ["tls.example.com"],
                    "tls": "site",
                    "hsts": True,
                    "security_headers": True,
                    "routes": [{"prefix": "/", "upstream": "web"}],
                },
                {"domains": ["six.example.com"], "routes": [{"prefix": "/", "upstream": "web6"}]},
            ],
            "tls_passthrough": [
                {
                    "sni": ["nas.example.com"],
                    "upstream": "nas",
                    "allow": ["lan"],
                    "proxy_protocol": "v1",
                }
            ],
            "tcp": [
                {"port": ssh, "upstream": "banner", "allow": ["lan"], "families": ["ipv4"]},
                {"port": ssh_open, "upstream": "plain", "families": ["ipv4"]},
                {"port": pp1, "upstream": "pp", "proxy_protocol": "v1"},
                {"port": pp2, "upstream": "pp", "proxy_protocol": "v2"},
            ],
            "udp": [{"port": wg, "upstream": "wg", "allow": ["lan"], "families": ["ipv4"]}],
        },
    )
    try:
        with running_envoy(inventory, tmp) as envoy:
            yield {
                "envoy": envoy,
                "http": http,
                "https": https,
                "ssh": ssh,
                "ssh_open": ssh_open,
                "pp1": pp1,
                "pp2": pp2,
                "wg": wg,
                "banner": banner,
                "plain": plain,
                "pp": pp,
                "nas": nas,
                "auth": auth,
                "inventory": inventory,
            }
    finally:
        for server in (web, web6, banner, plain, pp, nas, udp, auth):
            server.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --------------------------------------------------------------------------- allow: HTTP


def test_vhost_allow_answers_403_outside_and_200_inside(env: dict[str, Any]) -> None:
    inside = fetch(env["http"], "/x", "router.example.com", source=INSIDE)
    outside = fetch(env["http"], "/x", "router.example.com", source=OUTSIDE)
    assert inside.status == 200 and inside.json()["backend"] == "web"
    assert outside.status == 403
    assert outside.body == b"RBAC: access denied"  # short, says nothing of the backend
    # On IPv6 too (::1 is in lan).
    assert fetch(env["http"], "/x", "router.example.com", source="::1", target="::1").status == 200


def test_a_route_opens_what_its_vhost_restricts(env: dict[str, Any]) -> None:
    assert fetch(env["http"], "/open/x", "router.example.com", source=OUTSIDE).status == 200
    assert fetch(env["http"], "/other", "router.example.com", source=OUTSIDE).status == 403


def test_a_route_restricts_what_its_vhost_opens(env: dict[str, Any]) -> None:
    assert fetch(env["http"], "/admin/", "app.example.com", source=OUTSIDE).status == 403
    assert fetch(env["http"], "/admin/", "app.example.com", source=INSIDE).status == 200
    assert fetch(env["http"], "/", "app.example.com", source=OUTSIDE).status == 200


def test_allow_holds_with_a_port_in_host_and_on_https(env: dict[str, Any]) -> None:
    host = f"router.example.com:{env['http']}"
    assert fetch(env["http"], "/", host, source=OUTSIDE).status == 403
    assert fetch(env["http"], "/", host, source=INSIDE).status == 200


# --------------------------------------------------------------------------- allow: TCP, TLS, UDP


def test_tcp_allow_closes_outside_connections_before_the_backend_speaks(
    env: dict[str, Any],
) -> None:
    """The SSH case: the server speaks first. A denied client gets nothing and the backend
    never sees it (Envoy's network RBAC filter would decide only on the client's first
    byte, after the upstream connection and its banner: the open map shows that order)."""
    before = env["banner"].connections
    with socket.create_connection(("127.0.0.1", env["ssh"]), 5, (OUTSIDE, 0)) as sock:
        sock.settimeout(3)
        assert sock.recv(100) == b""  # closed, no banner
    with socket.create_connection(("127.0.0.1", env["ssh"]), 5, (INSIDE, 0)) as sock:
        sock.settimeout(3)
        assert sock.recv(100) == BannerBackend.BANNER
    assert env["banner"].connections == before + 1
    with socket.create_connection(("127.0.0.1", env["ssh_open"]), 5, (OUTSIDE, 0)) as sock:
        sock.settimeout(3)
        assert sock.recv(100) == BannerBackend.BANNER  # an open map: the banner first
    stats = env["envoy"].stats()
    assert int(stats[f"listener.tcp_{env['ssh']}_ipv4.no_filter_chain_match"]) >= 1


def _passthrough(port: int, source: str) -> Any:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), 5, (source, 0))
    with context.wrap_socket(raw, server_hostname="nas.example.com") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: nas.example.com\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])


def test_passthrough_allow_and_proxy_protocol_v1(env: dict[str, Any]) -> None:
    seen = _passthrough(env["https"], INSIDE)
    assert seen["version"] == 1 and seen["source"] == INSIDE and seen["protocol"] == "TCP4"
    assert seen["destination_port"] == env["https"]
    before = len(env["nas"].seen)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _passthrough(env["https"], OUTSIDE)
    assert len(env["nas"].seen) == before  # the NAS never saw the outside client


def test_udp_allow_drops_datagrams_from_outside(env: dict[str, Any]) -> None:
    assert udp_ask(env["wg"], INSIDE, b"handshake") == b"wg:handshake"
    assert udp_ask(env["wg"], OUTSIDE, b"handshake") is None
    stats = env["envoy"].stats()
    assert int(stats[f"udp.udp_{env['wg']}_ipv4.downstream_sess_no_route"]) >= 1


# --------------------------------------------------------------------------- PROXY protocol


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("client", [OUTSIDE, "::1"])
def test_proxy_protocol_tells_tcp_backends_the_client(
    env: dict[str, Any], version: int, client: str
) -> None:
    port = env["pp1"] if version == 1 else env["pp2"]
    target = "::1" if ":" in client else "127.0.0.1"
    with socket.create_connection((target, port), 5, (client, 0)) as sock:
        local_port = sock.getsockname()[1]
        sock.settimeout(5)
        seen = json.loads(sock.makefile("rb").readline())
    assert seen["version"] == version
    assert seen["source"] == client and seen["source_port"] == local_port
    assert seen["destination"] == target and seen["destination_port"] == port


# --------------------------------------------------------------------------- basic auth


def test_basic_auth(env: dict[str, Any]) -> None:
    port = env["http"]
    none = fetch(port, "/", "photos.example.com")
    assert none.status == 401
    assert none.headers["www-authenticate"].startswith("Basic realm=")
    right = fetch(port, "/", "photos.example.com", basic("alice", "wonderland"))
    assert right.status == 200 and right.json()["backend"] == "web"
    assert fetch(port, "/", "photos.example.com", basic("bob", "builder")).status == 200
    assert fetch(port, "/", "photos.example.com", basic("alice", "builder")).status == 401
    assert fetch(port, "/", "photos.example.com", basic("eve", "wonderland")).status == 401
    assert fetch(port, "/share/x", "photos.example.com").status == 200  # auth: none


# --------------------------------------------------------------------------- forward auth


def _sso(env: dict[str, Any], path: str, headers: dict[str, str], source: str = OUTSIDE) -> Any:
    return fetch(
        env["https"],
        path,
        f"sso.example.com:{env['https']}",
        headers,
        source=source,
        tls_name="sso.example.com",
    )


def test_forward_auth_lets_a_session_through_with_the_listed_headers(
    env: dict[str, Any],
) -> None:
    log = env["auth"].log.requests
    before = len(log)
    answer = _sso(
        env,
        "/dash/x?q=1",
        {"Cookie": "session=alice", "Remote-User": "mallory", "Authorization": "Bearer t"},
    )
    assert answer.status == 200
    seen = answer.json()["headers"]
    got = {k.lower(): v for k, v in seen.items()}
    assert got["remote-user"] == "alice"  # the auth answer, not the client's
    assert got["remote-groups"] == "admins,family"
    assert "remote-email" not in got  # not listed: not copied
    assert "session=alice" in answer.headers["set-cookie"]  # the refreshed cookie
    (asked,) = log[before:]
    assert asked["method"] == "GET"
    assert asked["path"] == "/api/authz/ext-authz/dash/x?q=1"
    headers = asked["headers"]
    assert headers["host"] == f"sso.example.com:{env['https']}"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == OUTSIDE
    assert headers["x-forwarded-host"] == f"sso.example.com:{env['https']}"
    assert headers["x-forwarded-uri"] == "/dash/x?q=1"
    assert headers["x-forwarded-method"] == "GET"
    assert headers["cookie"] == "session=alice"
    assert headers["authorization"] == "Bearer t"


def test_forward_auth_strips_identity_headers_the_answer_lacks(env: dict[str, Any]) -> None:
    answer = _sso(env, "/", {"Cookie": "session=bob", "Remote-Groups": "admins"})
    assert answer.status == 200
    got = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert got["remote-user"] == "bob" and "remote-groups" not in got
    public = _sso(env, "/public/x", {"Remote-User": "root"})
    assert public.status == 200
    assert "remote-user" not in {k.lower() for k in public.json()["headers"]}


def test_forward_auth_denials_and_redirects_reach_the_client(env: dict[str, Any]) -> None:
    log = env["auth"].log.requests
    denied = _sso(env, "/", {"Cookie": "session=mallory"})
    assert denied.status == 403 and denied.body == b"forbidden by policy"
    browser = _sso(env, "/dash", {"Accept": "text/html"})
    assert browser.status == 302
    assert browser.headers["location"] == (
        f"{AutheliaLike.PORTAL}?rd=https://sso.example.com:{env['https']}/dash"
    )
    api = _sso(env, "/api", {"Accept": "application/json"}, source=INSIDE)
    assert api.status == 401 and api.headers["www-authenticate"] == 'Basic realm="authelia"'
    before = len(log)
    assert _sso(env, "/public/x", {}).status == 200  # auth: none asks no one
    assert len(log) == before


def test_forward_auth_fails_closed(env: dict[str, Any]) -> None:
    answer = fetch(env["http"], "/", "down.example.com", {"Cookie": "session=alice"})
    assert answer.status == 403


# --------------------------------------------------------------------------- what backends get


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_backends_get_the_client_its_scheme_port_and_host(
    env: dict[str, Any], family: str, scheme: str
) -> None:
    client = OUTSIDE if family == "ipv4" else "::1"
    target = "127.0.0.1" if family == "ipv4" else "::1"
    port = env[scheme]
    host = f"tls.example.com:{port}"
    answer = fetch(
        port,
        "/x",
        host,
        {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "X-Forwarded-Port": "1"},
        source=client,
        target=target,
        tls_name="tls.example.com" if scheme == "https" else None,
    )
    assert answer.status == 200
    got = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert got["host"] == host  # as sent, port included
    assert got["x-forwarded-for"] == client
    assert got["x-real-ip"] == client
    assert got["x-forwarded-proto"] == scheme
    assert got["x-forwarded-port"] == str(port)
    # HSTS on the TLS listener only; the security headers on both.
    assert ("strict-transport-security" in answer.headers) == (scheme == "https")
    if scheme == "https":
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    assert answer.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_a_host_with_its_port_still_picks_the_vhost(env: dict[str, Any]) -> None:
    for host in ("six.example.com", f"six.example.com:{env['http']}", "SIX.example.com:1"):
        answer = fetch(env["http"], "/", host, source="::1", target="::1")
        assert answer.status == 200 and answer.json()["backend"] == "web6", host
        got = {k.lower(): v for k, v in answer.json()["headers"].items()}
        assert got["host"] == host  # as the client sent it


# --------------------------------------------------------------------------- explain --from


@pytest.mark.parametrize(
    ("host", "path", "source", "status"),
    [
        ("router.example.com", "/x", OUTSIDE, 403),
        ("router.example.com", "/x", INSIDE, 200),
        ("router.example.com", "/open/x", OUTSIDE, 200),
        ("app.example.com", "/admin/x", OUTSIDE, 403),
        ("app.example.com", "/admin/x", INSIDE, 200),
        ("app.example.com", "/x", OUTSIDE, 200),
    ],
)
def test_explain_from_agrees_with_envoy(
    env: dict[str, Any], host: str, path: str, source: str, status: int
) -> None:
    from xdsgen.explain import explain, parse_target
    from xdsgen.pipeline import load_model

    model = load_model(str(env["inventory"]))
    hops = explain(model, parse_target(f"http://{host}:{env['http']}{path}"), source)
    (hop,) = [h for h in hops if h.family == "ipv4"]
    assert (hop.allowed is not False) == (status == 200)
    assert fetch(env["http"], path, host, source=source).status == status


def test_explain_from_on_a_tcp_map_and_the_auth_line(env: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from xdsgen.cli import main

    inventory = str(env["inventory"])
    result = CliRunner().invoke(
        main, ["explain", inventory, f"127.0.0.1:{env['ssh']}", "--from", OUTSIDE]
    )
    assert result.exit_code == 0, result.output
    assert "allow  only 127.0.0.1/32, ::1/128: 127.0.0.2 is not in it" in result.output
    assert "refused: 127.0.0.2 is not allowed here: the connection is closed" in result.output
    result = CliRunner().invoke(main, ["explain", inventory, "photos.example.com/"])
    assert "auth   family: basic auth with the users of" in result.output
    result = CliRunner().invoke(main, ["explain", inventory, "photos.example.com/share/"])
    assert "auth" not in result.output.replace("photos", "")  # auth: none there


def test_status_counts_who_was_turned_away(env: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from xdsgen.cli import main

    assert fetch(env["http"], "/", "router.example.com", source=OUTSIDE).status == 403
    assert fetch(env["http"], "/", "photos.example.com", source=OUTSIDE).status == 401
    inventory = env["inventory"]
    args = ["status", str(inventory), "--config-dir", str(inventory.parent / "config")]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["listener"]: row for row in json.loads(result.output)["access"]}
    http = rows["http_ipv4"]
    assert http["allow"] == "3/11 routes" and http["auth"] == "down, fam..."
    assert http["not_allowed"] >= 1 and http["auth_refused"] >= 1
    assert rows[f"tcp_{env['ssh']}_ipv4"]["allow"] == "127.0.0.1/32, ::1/128"
    assert f"tcp_{env['ssh_open']}_ipv4" not in rows  # open to everyone: not listed
    text = CliRunner().invoke(main, [*args, "--no-color"]).output
    table = text.split("access (refused since Envoy started)\n", 1)[1]
    assert "https_ipv4" in table and "0/3 routes, 1 passthrough" in table
    assert max(len(line) for line in table.splitlines()) <= 80, table
