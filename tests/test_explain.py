"""`xdsgen explain` says what Envoy does: every case is also sent through a real Envoy."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from harness import (
    Certs,
    HttpBackend,
    free_ports,
    http_get,
    peer_certificate_names,
    running_envoy,
    write_inventory,
)

from xdsgen.cli import main
from xdsgen.explain import explain, normalize_path, parse_target
from xdsgen.pipeline import load_model

HTTP_BACKENDS = [
    "exact_a",
    "api",
    "metrics",
    "moved",
    "wild",
    "deep_wild",
    "fallback",
    "secure_app",
]
FAMILIES = {"ipv4": "127.0.0.1", "ipv6": "::1"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("explain")
    certs = Certs(tmp / "certs")
    secure = certs.issue("secure", "secure.example.com")
    nas_cert = certs.issue("nas", "nas.example.com")
    backends = {name: HttpBackend(name) for name in HTTP_BACKENDS}
    backends["nas"] = HttpBackend("nas", tls=nas_cert)
    admin, http_port, https_port = free_ports(3)
    data = {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp / "config"),
            "admin": f"127.0.0.1:{admin}",
            "access_log": "off",
        },
        "listen": {
            "ipv4": {"address": "127.0.0.1", "http": http_port, "https": https_port},
            "ipv6": {"address": "::1", "http": http_port, "https": https_port},
        },
        "upstreams": {name: b.endpoint for name, b in backends.items()},
        "certificates": {"secure": {"cert": str(secure[0]), "key": str(secure[1])}},
        "http": [
            {
                "domains": ["a.example.com"],
                "routes": [
                    {"prefix": "/api/", "upstream": "api"},
                    {"path": "/metrics", "upstream": "metrics"},
                    {"prefix": "/old/", "upstream": "moved", "rewrite": "/new/"},
                    {"prefix": "/", "upstream": "exact_a"},
                ],
            },
            {"domains": ["*.example.com"], "routes": [{"prefix": "/", "upstream": "wild"}]},
            {"domains": ["*.b.example.com"], "routes": [{"prefix": "/", "upstream": "deep_wild"}]},
            {
                "domains": ["secure.example.com"],
                "tls": "secure",
                "redirect_to_https": True,
                "routes": [
                    {"prefix": "/api/", "upstream": "api"},
                    {"prefix": "/", "upstream": "secure_app"},
                ],
            },
            {"domains": ["only.example.com"], "routes": [{"path": "/exact", "upstream": "api"}]},
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": "fallback"}]},
        ],
        "tls_passthrough": [{"sni": ["nas.example.com"], "upstream": "nas"}],
    }
    inventory = write_inventory(tmp / "inventory.yaml", data)
    with running_envoy(inventory, tmp) as envoy:
        try:
            yield {
                "inventory": inventory,
                "model": load_model(str(inventory)),
                "certs": certs,
                "nas_cert": nas_cert,
                "http": http_port,
                "https": https_port,
                "envoy": envoy,
            }
        finally:
            for backend in backends.values():
                backend.close()


CASES = [
    # (target, expected upstream or outcome on the http listener)
    ("a.example.com/api/x", "api"),
    ("a.example.com/metrics", "metrics"),
    ("a.example.com/metrics/", "exact_a"),  # path match is exact: falls through to /
    ("a.example.com//api//x", "api"),  # merge_slashes
    ("a.example.com/x/../api/y", "api"),  # normalize_path
    ("a.example.com/old/page?x=1", "moved"),
    ("A.Example.COM/", "exact_a"),  # case does not matter (nor the Host port: send_http adds one)
    ("x.example.com/", "wild"),
    ("x.y.example.com/", "wild"),  # a suffix wildcard takes several labels
    ("x.b.example.com/", "deep_wild"),  # the longest suffix wins
    ("b.example.com/", "wild"),  # *.b.example.com needs something before .b
    ("other.lan/", "fallback"),
    ("only.example.com/exact", "api"),
    ("only.example.com/nope", "not_found"),
    ("secure.example.com/api/?q=2", "redirect"),
]


def send_http(env: dict[str, Any], family: str, target: str) -> tuple[int, dict[str, str], bytes]:
    parsed = parse_target(target)
    host = target.split("/", 1)[0] + ":1234"  # strip_any_host_port: the port is ignored
    return http_get(FAMILIES[family], env["http"], parsed.path, {"Host": host})


@pytest.mark.envoy
@pytest.mark.parametrize(("target", "expected"), CASES)
def test_http_listener_agrees_with_envoy(env: dict[str, Any], target: str, expected: str) -> None:
    parsed = parse_target(target)
    hops = {h.family: h for h in explain(env["model"], parsed) if h.kind == "http"}
    assert set(hops) == {"ipv4", "ipv6"}
    for family, hop in hops.items():
        want = hop.upstream if hop.outcome == "upstream" else hop.outcome
        assert want == expected, hop
        status, headers, body = send_http(env, family, target)
        if hop.outcome == "upstream":
            answer = json.loads(body)
            assert (status, answer["backend"]) == (200, hop.upstream)
            assert answer["path"].split("?")[0] == hop.path_sent
        elif hop.outcome == "redirect":
            assert status == 301
            assert headers["location"] == hop.location
        else:
            assert status == 404


HTTPS_CASES = [
    ("secure.example.com/api/x", "api"),
    ("secure.example.com/", "secure_app"),
    ("nas.example.com/", "passthrough"),
    ("unknown.example.com/", "closed"),
]


@pytest.mark.envoy
@pytest.mark.parametrize(("target", "expected"), HTTPS_CASES)
def test_https_listener_agrees_with_envoy(env: dict[str, Any], target: str, expected: str) -> None:
    parsed = parse_target(target)
    hops = {h.family: h for h in explain(env["model"], parsed) if h.kind == "https"}
    assert set(hops) == {"ipv4", "ipv6"}
    for family, hop in hops.items():
        address = FAMILIES[family]
        want = hop.upstream if hop.outcome == "upstream" else hop.outcome
        assert want == expected, hop
        if hop.outcome == "upstream":
            status, _, body = http_get(
                address,
                env["https"],
                parsed.path,
                {"Host": parsed.host},
                tls_context=env["certs"].client_context(),
                sni=parsed.host,
            )
            assert (status, json.loads(body)["backend"]) == (200, hop.upstream)
        elif hop.outcome == "passthrough":
            # The certificate the client sees is the upstream's own: TLS was not terminated.
            names = peer_certificate_names(address, env["https"], parsed.host, env["certs"].ca_path)
            assert names == ["nas.example.com"]
            assert hop.upstream == "nas"
        else:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                peer_certificate_names(address, env["https"], parsed.host, env["certs"].ca_path)


def test_url_with_scheme_and_port_picks_one_listener(env: dict[str, Any]) -> None:
    target = parse_target(f"https://secure.example.com:{env['https']}/api/")
    hops = explain(env["model"], target)
    assert [(h.family, h.kind) for h in hops] == [("ipv4", "https"), ("ipv6", "https")]
    assert hops[0].sni_match == 'exact "secure.example.com"'
    assert hops[0].vhost_match == 'exact "secure.example.com"'
    assert hops[0].route == 'routes[0] prefix "/api/"'


def test_parse_and_normalize() -> None:
    assert parse_target("Router.Example.com") == parse_target("router.example.com/")
    t = parse_target("http://h:8080/a?b=1")
    assert (t.scheme, t.host, t.port, t.path) == ("http", "h", 8080, "/a?b=1")
    assert normalize_path("/a//b/./c/../d?x") == "/a/b/d"
    assert normalize_path("/a/b/") == "/a/b/"
    assert normalize_path("/../..") == "/"


def test_cli_text_json_and_bad_target(env: dict[str, Any]) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["explain", str(env["inventory"]), "x.b.example.com/z"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "explain x.b.example.com/z"
    assert f"ipv4 http :{env['http']} (listener http_ipv4)" in lines
    assert '  vhost  vhost2_any.b.example.com (suffix wildcard "*.b.example.com")' in lines
    assert any(line.startswith("  result upstream deep_wild (127.0.0.1:") for line in lines)
    result = runner.invoke(
        main, ["explain", "--json", str(env["inventory"]), "only.example.com/nope"]
    )
    doc = json.loads(result.stdout)
    assert {h["result"] for h in doc["hops"] if h["kind"] == "http"} == {"404 (no route matches)"}
    result = runner.invoke(main, ["explain", str(env["inventory"]), "ftp://x/"])
    assert result.exit_code == 2
    assert "only http:// and https://" in result.stderr
