"""Exact messages, meaning checks that only warn, and the safe defaults of the generated config.

Errors go through the CLI (click's CliRunner): exit 1, the exact line, never a traceback.
The safe defaults are checked in the rendered files and, where behaviour matters (the
connection limit, X-Forwarded-For, upstream certificate verification), in a real Envoy.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from harness import Certs, Envoy, HttpBackend, TcpEcho, free_ports, http_get, tcp_roundtrip

from xdsgen.cli import main
from xdsgen.pipeline import load_model, render, write_plain
from xdsgen.render import load_yaml, render_bootstrap

BASE = """\
version: 1
envoy: {access_log: off}
listen:
  ipv4: {address: 0.0.0.0, http: 8080, https: 8443}
upstreams:
  app: 127.0.0.1:3000
  grafana: 127.0.0.1:3001
"""
ROUTES = """\
http:
  - domains: [app.example.com]
    routes:
      - {prefix: /, upstream: app}
  - domains: [grafana.example.com]
    routes:
      - {prefix: /, upstream: grafana}
"""


def write(tmp: Path, text: str, name: str = "inventory.yaml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, ["--no-color", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"crashed: {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    return result


def lines(output: str, kind: str = "error") -> list[str]:
    return [line for line in output.splitlines() if f": {kind}: " in line]


# --------------------------------------------------------------------------- exact messages


def test_near_miss_upstream_exact_message(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE + "http:\n  - domains: [app.example.com]\n    routes:\n"
        "      - {prefix: /grafana/, upstream: grafna}\n",
    )
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert lines(result.output) == [
        f"{path}:11:29: error: http[0].routes[0].upstream: unknown upstream 'grafna' "
        "(did you mean 'grafana'?)"
    ]
    assert result.output.rstrip().endswith("1 error; invalid.")


def test_all_errors_of_a_run_together_sorted_by_position(tmp_path: Path) -> None:
    # Written so that the meaning checks find them in another order than the file's.
    path = write(
        tmp_path,
        BASE + "tcp:\n  - {port: 8080, upstream: app}\n"
        "http:\n  - domains: [bad..name]\n    routes:\n"
        "      - {prefix: x/, upstream: graphana}\n",
    )
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert lines(result.output) == [
        f"{path}:9:6: error: tcp[0].port: ipv4 port 8080 is already used by the http listener "
        "(line 4) (every listener of a family needs its own port)",
        f"{path}:11:15: error: http[0].domains[0]: 'bad..name' is not a valid host name "
        "(letters, digits, - and dots)",
        f"{path}:13:10: error: http[0].routes[0].prefix: prefix must start with '/' (write /x/)",
        f"{path}:13:22: error: http[0].routes[0].upstream: unknown upstream 'graphana' "
        "(did you mean 'grafana'?)",
    ]
    assert "4 errors; invalid." in result.output


def test_schema_errors_are_all_reported_with_suggestions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE.replace("http: 8080", "htpp: 8080") + "http:\n  - domains: [on]\n    routs: []\n",
    )
    result = cli("validate", str(path))
    assert lines(result.output) == [
        f"{path}:4:28: error: listen.ipv4.htpp: unknown key 'htpp' (did you mean 'http'?)",
        f"{path}:9:5: error: http[0]: missing required key 'routes'",
        f"{path}:9:15: error: http[0].domains[0]: expected a string, got on "
        '(YAML reads a bare on as true) (quote it: "on")',
        f"{path}:10:5: error: http[0].routs: unknown key 'routs' (did you mean 'routes'?)",
    ]


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "  app: 127.0.0.1:4000\n" + ROUTES)
    result = cli("render", str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert lines(result.output) == [
        f"{path}:8:3: error: upstreams.app: duplicate key 'app' (first at line 6) "
        "(YAML would silently keep only the last one; remove one of them)"
    ]
    assert not (tmp_path / "out").exists()


def test_tab_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "http:\n\t- domains: [a.example.com]\n")
    result = cli("validate", str(path))
    assert lines(result.output) == [
        f"{path}:9:1: error: YAML syntax error: a tab character here (YAML indents with "
        "spaces, never tabs; in vi: :set expandtab, then :retab)"
    ]


def test_a_bom_at_the_start_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (BASE + ROUTES).encode())
    assert cli("validate", str(path)).exit_code == 0


def test_format_json_errors_and_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE + "http:\n  - domains: [app.example.com]\n    routes:\n"
        "      - {prefix: /, upstream: app}\n      - {prefix: /x, upstream: grafna}\n",
    )
    result = cli("validate", "--format", "json", str(path))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report == {
        "valid": False,
        "errors": [
            {
                "file": str(path),
                "line": 12,
                "column": 22,
                "path": "http[0].routes[1].upstream",
                "severity": "error",
                "message": "unknown upstream 'grafna'",
                "hint": "did you mean 'grafana'?",
            }
        ],
        "warnings": [
            {  # the upstream meant on line 12, misspelt there, is used nowhere
                "file": str(path),
                "line": 7,
                "column": 3,
                "path": "upstreams.grafana",
                "severity": "warning",
                "message": "upstream 'grafana' is not used by any route, port map or passthrough",
                "hint": "remove it, or route to it",
            },
            {
                "file": str(path),
                "line": 12,
                "column": 9,
                "path": "http[0].routes[1]",
                "severity": "warning",
                "message": "this route can never match: routes[0] (prefix /) matches first",
                "hint": "move it above the catch-all route",
            },
        ],
    }


def test_format_json_valid(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + ROUTES)
    result = cli("validate", "--format", "json", str(path))
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["warnings"] == []


# --------------------------------------------------------------------------- meaning: warnings


def test_shadowed_routes_are_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE + "http:\n  - domains: [app.example.com]\n    routes:\n"
        "      - {prefix: /api, upstream: app}\n"
        "      - {prefix: /api/v1, upstream: grafana}\n"
        "      - {path: /metrics, upstream: app}\n"
        "      - {path: /metrics, upstream: grafana}\n"
        "      - {prefix: /, upstream: app}\n"
        "      - {path: /late, upstream: grafana}\n",
    )
    result = cli("validate", str(path))
    assert result.exit_code == 0
    assert lines(result.output, "warning") == [
        f"{path}:12:9: warning: http[0].routes[1]: this route can never match: routes[0] "
        "(prefix /api) matches first (move it above routes[0])",
        f"{path}:14:9: warning: http[0].routes[3]: this route can never match: routes[2] "
        "(path /metrics) matches first (move it above routes[2])",
        f"{path}:16:9: warning: http[0].routes[5]: this route can never match: routes[4] "
        "(prefix /) matches first (move it above the catch-all route)",
    ]
    assert cli("validate", "--strict", str(path)).exit_code == 1


def _tls_inventory(tmp_path: Path, cert: Path, key: Path) -> Path:
    return write(
        tmp_path,
        BASE + f"certificates:\n  site: {{cert: {cert}, key: {key}}}\n"
        "http:\n  - domains: [app.example.com]\n    tls: site\n    routes:\n"
        "      - {prefix: /grafana/, upstream: grafana}\n      - {prefix: /, upstream: app}\n",
    )


def test_missing_certificate_warns_for_validate_and_render_errors_for_apply(tmp_path: Path) -> None:
    cert, key = tmp_path / "missing.pem", tmp_path / "missing.key"
    path = _tls_inventory(tmp_path, cert, key)
    warning = (
        f"{path}:9:10: warning: certificates.site.cert: {cert} does not exist "
        "(fine if you render for another machine)"
    )
    result = cli("validate", str(path))
    assert result.exit_code == 0 and warning in result.output
    out = tmp_path / "out"
    result = cli("render", str(path), "-o", str(out))
    assert result.exit_code == 0 and warning in result.output
    assert (out / "sds_site.yaml").exists()

    error = (
        f"{path}:9:10: error: certificates.site.cert: {cert} does not exist "
        "(Envoy would refuse the listener; fix the path)"
    )
    result = cli("validate", "--check-files", str(path))
    assert result.exit_code == 1 and error in result.output
    live = tmp_path / "live"
    live.mkdir()
    result = cli("apply", str(path), "--config-dir", str(live), "--no-envoy-check")
    assert result.exit_code == 1 and error in result.output
    assert list(live.iterdir()) == []


def test_certificate_that_is_a_directory(tmp_path: Path) -> None:
    certs = Certs(tmp_path / "certs")
    _, key = certs.issue("site", "app.example.com")
    path = _tls_inventory(tmp_path, tmp_path / "certs", key)
    result = cli("validate", "--check-files", str(path))
    assert (
        f"error: certificates.site.cert: {tmp_path / 'certs'} is not a regular file"
        in result.output
    )


def test_private_key_readable_by_others_warns(tmp_path: Path) -> None:
    certs = Certs(tmp_path / "certs")
    cert, key = certs.issue("site", "app.example.com")
    path = _tls_inventory(tmp_path, cert, key)
    result = cli("validate", "--check-files", str(path))
    assert result.exit_code == 0 and lines(result.output, "warning") == []
    os.chmod(key, 0o644)
    result = cli("validate", "--check-files", str(path))
    assert result.exit_code == 0
    assert lines(result.output, "warning") == [
        f"{path}:9:{16 + len(str(cert)) + 2}: warning: certificates.site.key: private key "
        f"{key} is readable by every user (chmod o-r it)"
    ]


def test_upstream_tls_verify_off_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE.replace(
            "  grafana: 127.0.0.1:3001\n",
            "  nas: {endpoints: [192.168.1.20:5001], tls: {verify: false}}\n",
        )
        + ROUTES.replace("upstream: grafana", "upstream: nas"),
    )
    result = cli("validate", str(path))
    assert result.exit_code == 0
    assert lines(result.output, "warning") == [
        f"{path}:7:47: warning: upstreams.nas.tls.verify: upstream certificate verification is "
        "off: anyone on the path to 192.168.1.20 can read and change the traffic (set tls.ca to "
        "the device's CA (or its self-signed certificate) instead)"
    ]


def test_admin_beyond_loopback_only_when_asked_then_loudly(tmp_path: Path) -> None:
    text = (
        BASE.replace("envoy: {access_log: off}", "envoy: {access_log: off, admin: '0.0.0.0:15001'}")
        + ROUTES
    )
    path = write(tmp_path, text)
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert lines(result.output) == [
        f"{path}:2:26: error: envoy.admin: admin address 0.0.0.0 is not loopback: it would "
        "expose /quitquitquit and /config_dump (use 127.0.0.1 or ::1, or set "
        "envoy.admin_allow_remote: true)"
    ]
    path = write(tmp_path, text.replace("admin:", "admin_allow_remote: true, admin:"))
    warning = (
        "warning: envoy.admin: Envoy's admin interface listens on 0.0.0.0, beyond "
        "loopback: anyone who reaches it can read the whole config and stop Envoy "
        "(/quitquitquit)"
    )
    for args in (
        ["validate", str(path)],
        ["render", str(path), "-o", str(tmp_path / "o")],
        ["bootstrap", str(path)],
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert warning in result.output, args
    assert 'address: "0.0.0.0"' in cli("bootstrap", str(path)).stdout


def test_upstream_reaching_admin_through_any_address(tmp_path: Path) -> None:
    text = (
        BASE.replace(
            "envoy: {access_log: off}",
            "envoy: {access_log: off, admin_allow_remote: true, admin: '0.0.0.0:15001'}",
        ).replace("0.0.0.0, http", "192.168.1.1, http")
        + "  lan: 192.168.1.1:15001\n  any: 0.0.0.0:15001\n  other: 192.168.1.2:15001\n"
        + ROUTES
    )
    result = cli("validate", str(write(tmp_path, text)))
    assert result.exit_code == 1
    located = lines(result.output)
    assert len(located) == 2
    assert "upstreams.lan: points at Envoy's own admin interface" in located[0]
    assert "upstreams.any: points at Envoy's own admin interface" in located[1]


def test_ports_per_family_and_protocol(tmp_path: Path) -> None:
    """http, https and tcp share a family's TCP ports; udp has its own; families are apart.
    (No TLS vhost: the https port 65535 makes no listener.)"""
    text = BASE.replace("listen:\n", "listen:\n  ipv6: {address: '::', http: 1, https: 65535}\n")
    text += ROUTES + (
        "tcp:\n  - {port: 9000, upstream: app, families: [ipv4]}\n"
        "  - {port: 9000, upstream: grafana, families: [ipv6]}\n"
        "udp:\n  - {port: 9000, upstream: app}\n  - {port: 8080, upstream: app}\n"
    )
    model = load_model(str(write(tmp_path, text)))
    assert sorted(
        (listener.family, listener.kind, listener.port)
        for listener in model.listeners
        if listener.port in (1, 9000, 8080, 65535)
    ) == [
        ("ipv4", "http", 8080),
        ("ipv4", "tcp", 9000),
        ("ipv4", "udp", 8080),
        ("ipv4", "udp", 9000),
        ("ipv6", "http", 1),
        ("ipv6", "tcp", 9000),
        ("ipv6", "udp", 8080),
        ("ipv6", "udp", 9000),
    ]


def test_ipv6_endpoints_are_normalised(tmp_path: Path) -> None:
    text = BASE.replace("127.0.0.1:3001", "'[FD00:0:0::1]:123'") + ROUTES
    model = load_model(str(write(tmp_path, text)))
    cluster = next(c for c in model.clusters if c.name == "grafana")
    assert [(e.host, e.port) for e in cluster.endpoints] == [("fd00::1", 123)]
    cds = load_yaml(render(model).cds)
    grafana = next(c for c in cds["resources"] if c["name"] == "grafana")
    address = grafana["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "fd00::1", "port_value": 123}


@pytest.mark.parametrize("written", ["off", "no", "false", "'off'"])
def test_access_log_off_in_every_spelling(tmp_path: Path, written: str) -> None:
    """YAML 1.1 reads a bare no/off as false: for access_log that means off, as documented."""
    text = BASE.replace("access_log: off", f"access_log: {written}") + ROUTES
    model = load_model(str(write(tmp_path, text)))
    assert model.envoy.access_log is None
    assert "access_log" not in render(model).lds


# --------------------------------------------------------------------------- safe defaults


def _defaults_model(tmp_path: Path) -> Any:
    text = (
        "version: 1\nlisten:\n  ipv4: {address: 0.0.0.0, http: 80, https: 443}\n"
        "upstreams:\n  app: 127.0.0.1:3000\n  nas: {endpoints: [nas.lan:5001], tls: {}}\n"
        "certificates:\n  site: {cert: /etc/ssl/site.pem, key: /etc/ssl/site.key}\n"
        "http:\n  - domains: [app.example.com]\n    tls: site\n    routes:\n"
        "      - {prefix: /, upstream: nas}\n  - domains: ['*']\n    routes:\n"
        "      - {prefix: /, upstream: app}\n"
    )
    return load_model(str(write(tmp_path, text)))


def test_default_admin_is_a_unix_socket_in_the_config_dir(tmp_path: Path) -> None:
    """No cluster can dial a Unix socket: the proxy can never reach its own admin."""
    bootstrap = load_yaml(render_bootstrap(_defaults_model(tmp_path)))
    assert bootstrap["admin"]["address"] == {
        "pipe": {"path": "/etc/envoy/admin.sock", "mode": 0o660}
    }


def test_default_global_connection_limit(tmp_path: Path) -> None:
    bootstrap = load_yaml(render_bootstrap(_defaults_model(tmp_path)))
    (monitor,) = bootstrap["overload_manager"]["resource_monitors"]
    assert monitor["name"] == "envoy.resource_monitors.global_downstream_max_connections"
    assert monitor["typed_config"]["max_active_downstream_connections"] == 1024


def test_every_http_connection_manager_uses_the_remote_address(tmp_path: Path) -> None:
    lds = load_yaml(render(_defaults_model(tmp_path)).lds)
    managers = [
        f["typed_config"]
        for listener in lds["resources"]
        for chain in listener["filter_chains"]
        for f in chain["filters"]
        if f["name"] == "envoy.filters.network.http_connection_manager"
    ]
    assert len(managers) == 2  # plain http and the TLS chain
    for manager in managers:
        assert manager["use_remote_address"] is True
        assert "xff_num_trusted_hops" not in manager  # no hop is trusted to set XFF


def test_upstream_tls_verifies_by_default(tmp_path: Path) -> None:
    cds = load_yaml(render(_defaults_model(tmp_path)).cds)
    nas = next(c for c in cds["resources"] if c["name"] == "nas")
    tls = nas["transport_socket"]["typed_config"]
    validation = tls["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"filename": "/etc/ssl/certs/ca-certificates.crt"}
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "nas.lan"}}
    ]
    assert tls["sni"] == "nas.lan"


# --------------------------------------------------------------------------- in real Envoy


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One Envoy with a tiny connection limit, an HTTP vhost, a TCP map and two TLS
    upstreams (the default CA bundle, and the CA that signed the backend)."""
    tmp = tmp_path_factory.mktemp("guarded")
    admin, http, tcp = free_ports(3)
    certs = Certs(tmp / "certs")
    cert, key = certs.issue("backend", "backend.test")
    web = HttpBackend("web")
    tls_backend = HttpBackend("tls_web", tls=(cert, key))
    echo = TcpEcho("echo")
    data = {
        "version": 1,
        "envoy": {"admin": f"127.0.0.1:{admin}", "access_log": "off", "max_connections": 3},
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http}},
        "upstreams": {
            "web": web.endpoint,
            "echo": echo.endpoint,
            "tls_default_ca": {"endpoints": [tls_backend.endpoint], "tls": {"sni": "backend.test"}},
            "tls_right_ca": {
                "endpoints": [tls_backend.endpoint],
                "tls": {"sni": "backend.test", "ca": str(certs.ca_path)},
            },
        },
        "http": [
            {
                "domains": ["*"],
                "routes": [
                    {"prefix": "/default-ca", "upstream": "tls_default_ca"},
                    {"prefix": "/right-ca", "upstream": "tls_right_ca"},
                    {"prefix": "/", "upstream": "web"},
                ],
            }
        ],
        "tcp": [{"port": tcp, "upstream": "echo"}],
    }
    inventory = tmp / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data))
    model = load_model(str(inventory), config_dir=str(tmp / "config"))
    rendered = render(model)
    write_plain(model.envoy.config_dir, rendered)
    (tmp / "bootstrap.yaml").write_text(render_bootstrap(model))
    envoy = Envoy(tmp / "bootstrap.yaml", admin, tmp / "envoy.log").start()
    try:
        envoy.wait_versions(rendered)
        yield envoy, http, tcp
    finally:
        envoy.stop()
        for backend in (web, tls_backend, echo):
            backend.close()


@pytest.mark.envoy
def test_client_cannot_spoof_its_address(guarded: Any) -> None:
    _, http, _ = guarded
    status, _, body = http_get("127.0.0.1", http, "/", {"Host": "a", "X-Forwarded-For": "6.6.6.6"})
    assert status == 200
    headers = json.loads(body)["headers"]
    # Envoy decides who the client is from the connection, not from the header it sent.
    assert headers["x-envoy-external-address"] == "127.0.0.1"
    # And the header itself holds only the real address: a backend reading its first entry
    # (most do) cannot be fooled either.
    assert headers["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.envoy
def test_global_connection_limit_holds(guarded: Any) -> None:
    envoy, _, tcp = guarded
    held = []
    try:
        for index in range(3):
            sock = socket.create_connection(("127.0.0.1", tcp), timeout=5)
            sock.sendall(b"hello%d" % index)
            assert sock.recv(100) == b"echo:hello%d" % index
            held.append(sock)
        extra = socket.create_connection(("127.0.0.1", tcp), timeout=5)
        held.append(extra)
        try:
            extra.sendall(b"one too many")
            refused = extra.recv(100) == b""
        except ConnectionResetError:
            refused = True
        assert refused
        assert int(envoy.stat(f"listener.tcp_{tcp}_ipv4.downstream_global_cx_overflow")) >= 1
    finally:
        for sock in held:
            sock.close()
    envoy.wait_for(
        lambda: tcp_roundtrip("127.0.0.1", tcp, b"again") == b"echo:again",
        what="a connection once the others closed",
    )


@pytest.mark.envoy
def test_upstream_certificate_is_verified_by_default(guarded: Any) -> None:
    envoy, http, _ = guarded
    status, _, body = http_get("127.0.0.1", http, "/right-ca/x", {"Host": "a"})
    assert (status, json.loads(body)["backend"]) == (200, "tls_web")
    # The same backend with the default CA bundle: its test CA is unknown there.
    status, _, _ = http_get("127.0.0.1", http, "/default-ca/x", {"Host": "a"})
    assert status == 503
    assert int(envoy.stat("cluster.tls_default_ca.ssl.fail_verify_error")) >= 1
