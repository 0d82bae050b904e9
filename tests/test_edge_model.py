"""The edge features' model decisions and messages (issue 15), without Envoy: what each
inventory key turns into, every mistake said with its key path, and `explain`/`firewall`
showing the new parts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from harness import write_inventory

from xdsgen.cli import main
from xdsgen.errors import InventoryError
from xdsgen.firewall import openings
from xdsgen.model import logformat
from xdsgen.model.pages import MAX_PAGE_BYTES
from xdsgen.pipeline import load_model, render


def inventory(tmp_path: Path, **sections: Any) -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "listen": {"ipv4": {"address": "127.0.0.1", "http": 18080}},
        "upstreams": {"app": "127.0.0.1:3000"},
        "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
    }
    data.update(sections)
    return write_inventory(tmp_path / "inventory.yaml", data)


def errors(path: Path) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_model(str(path))
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def warnings(path: Path) -> list[str]:
    return [f"{p.path}: {p.message}" for p in load_model(str(path)).warnings]


def vhost(**keys: Any) -> list[dict[str, Any]]:
    return [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}], **keys}]


# --------------------------------------------------------------------------- health


def test_checks_ejection_backup_and_h2_as_envoy_needs_them(tmp_path: Path) -> None:
    upstreams = {
        "app": {
            "endpoints": ["10.0.0.1:80", "10.0.0.2:80"],
            "backup": ["10.0.0.3:80"],
            "health_check": {"path": "/healthz", "interval": "250ms"},
            "h2": True,
        },
        "one": "10.0.0.9:80",
    }
    model = load_model(
        str(inventory(tmp_path, upstreams=upstreams, tcp=[{"port": 9, "upstream": "one"}]))
    )
    app, one = model.clusters
    assert [(e.host, e.port) for e in app.backup] == [("10.0.0.3", 80)]
    assert app.health_check is not None
    assert (app.health_check.interval, app.health_check.http2) == ("0.25s", True)
    assert app.panic_threshold == 0  # checked: no panic, a dead endpoint gets nothing
    assert app.overprovisioning_factor == 10000  # the backup only when none is healthy
    assert app.outlier is not None and app.outlier.consecutive_gateway_failure == 3
    assert app.http2
    # One endpoint, no checks: nothing to eject to, no panic setting, no spill-over.
    assert (one.outlier, one.panic_threshold, one.overprovisioning_factor) == (None, None, None)


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        (
            {"endpoints": ["10.0.0.1:80"], "health_check": {}},
            "upstreams.app.health_check: a health check needs path (an HTTP GET) or tcp: true",
        ),
        (
            {"endpoints": ["10.0.0.1:80"], "health_check": {"path": "/", "tcp": True}},
            "upstreams.app.health_check.tcp: path and tcp: true are two kinds of check",
        ),
        (
            {"endpoints": ["10.0.0.1:80"], "health_check": {"path": "healthz"}},
            "upstreams.app.health_check.path: path must start with '/'",
        ),
        (
            {"endpoints": ["10.0.0.1:80"], "health_check": {"tcp": True, "interval": "0s"}},
            "upstreams.app.health_check.interval: a health check interval of 0s",
        ),
        (
            {"endpoints": ["10.0.0.1:80"], "backup": ["10.0.0.1:80"]},
            "upstreams.app.backup[0]: '10.0.0.1:80' is also in endpoints",
        ),
        (
            {"endpoints": ["10.0.0.1:80"], "backup": ["backup.lan:80"]},
            "upstreams.app.backup[0]: backup and endpoints mix IP addresses and host names",
        ),
        (
            {"endpoints": ["10.0.0.1:80"], "backup": ["10.0.0.2:80", "10.0.0.2:80"]},
            "upstreams.app.backup[1]: '10.0.0.2:80' is listed twice",
        ),
        (
            {"endpoints": ["10.0.0.1:80"], "backup": ["http://10.0.0.2/"]},
            "upstreams.app.backup[0]:",
        ),
    ],
)
def test_health_and_backup_mistakes(tmp_path: Path, upstream: Any, message: str) -> None:
    found = errors(inventory(tmp_path, upstreams={"app": upstream}))
    assert any(line.startswith(message) for line in found), found


def test_h2_and_checks_warn_where_they_cannot_work(tmp_path: Path) -> None:
    upstreams = {
        "grpc": {"endpoints": ["10.0.0.1:50051"], "h2": True},
        "db": {"endpoints": ["10.0.0.2:5432"], "health_check": {"path": "/"}},
    }
    found = warnings(
        inventory(
            tmp_path,
            upstreams=upstreams,
            http=[
                {
                    "domains": ["*"],
                    "routes": [{"prefix": "/", "upstream": "grpc", "websocket": True}],
                }
            ],
            tcp=[{"port": 5432, "upstream": "db"}, {"port": 5433, "upstream": "grpc"}],
        )
    )
    assert any("routes[0].websocket: upstream 'grpc' speaks HTTP/2" in w for w in found)
    assert any("upstreams.grpc.h2: h2 applies to HTTP routes only: tcp[1]" in w for w in found)
    assert any("upstreams.db.health_check.path: 'db' is also used by tcp[0]" in w for w in found)


# --------------------------------------------------------------------------- routes


def test_streaming_routes_get_no_idle_cut_and_retries_are_safe(tmp_path: Path) -> None:
    routes = [
        {"prefix": "/ws", "upstream": "app", "websocket": True},
        {"prefix": "/poll", "upstream": "app", "timeout": "0s"},
        {"prefix": "/api", "upstream": "app", "timeout": "30s", "retries": 3},
        {"prefix": "/", "upstream": "app"},
    ]
    model = load_model(str(inventory(tmp_path, http=[{"domains": ["*"], "routes": routes}])))
    ws, poll, api, rest = model.route_configs[0].virtual_hosts[0].routes
    assert (ws.idle_timeout, poll.idle_timeout, api.idle_timeout, rest.idle_timeout) == (
        "0s",
        "0s",
        None,
        None,
    )
    assert (api.retries, api.retry_on) == (3, "connect-failure,refused-stream,reset-before-request")
    assert (rest.retries, rest.retry_on) == (0, None)


# --------------------------------------------------------------------------- pages


def test_pages_are_read_relative_to_the_inventory_with_their_type(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "down.txt").write_text("down for now\n")
    big = "<p>" + "x" * 5000 + "</p>\n"
    (tmp_path / "pages" / "big.html").write_text(big)
    http = [
        {
            "domains": ["a.test"],
            "error_page": "pages/down.txt",
            "routes": [{"prefix": "/", "upstream": "app"}],
        },
        {
            "domains": ["b.test"],
            "error_page": str(tmp_path / "pages" / "big.html"),
            "maintenance": True,
            "routes": [{"prefix": "/x", "upstream": "app"}, {"prefix": "/", "upstream": "app"}],
        },
    ]
    model = load_model(str(inventory(tmp_path, http=http)))
    (rc,) = model.route_configs
    a, b = rc.virtual_hosts
    assert a.error_page is not None
    assert (a.error_page.body, a.error_page.content_type) == (
        "down for now\n",
        "text/plain; charset=utf-8",
    )
    (route,) = b.routes  # maintenance: one route answering every path
    assert (route.direct_status, route.direct_body, route.cluster) == (503, big, None)
    assert route.headers is not None
    assert [(h.key, h.value) for h in route.headers.response_add] == [
        ("content-type", "text/html; charset=utf-8")
    ]
    assert rc.max_direct_response_body == MAX_PAGE_BYTES  # above Envoy's 4 KiB default
    (listener,) = model.listeners
    assert listener.filter_chains[0].http is not None and listener.filter_chains[0].http.error_pages


def test_maintenance_without_a_page_has_a_built_in_one(tmp_path: Path) -> None:
    model = load_model(str(inventory(tmp_path, http=vhost(maintenance=True))))
    (route,) = model.route_configs[0].virtual_hosts[0].routes
    assert route.direct_status == 503 and "maintenance" in (route.direct_body or "")
    assert model.route_configs[0].max_direct_response_body is None
    (listener,) = model.listeners
    assert listener.filter_chains[0].http is not None
    assert not listener.filter_chains[0].http.error_pages  # no page: no filter


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is not a regular file"),
        (lambda p: os.mkfifo(p), "is not a regular file"),
        (lambda p: p.write_bytes(b"x" * (MAX_PAGE_BYTES + 1)), "is larger than 64 KiB"),
        (lambda p: p.write_text("  \n"), "is empty"),
        (lambda p: p.write_bytes(b"\xff\xfe<h1>"), "is not UTF-8 text"),
        (lambda p: p.write_bytes(b"<h1>\x00</h1>"), "holds NUL bytes"),
        (lambda p: None, "cannot be read (Not a directory)"),
    ],
)
def test_page_mistakes_are_clear_errors(tmp_path: Path, make: Any, message: str) -> None:
    page = tmp_path / "page.html"
    make(page)
    name = "page.html"
    if "Not a directory" in message:
        (tmp_path / "file").write_text("x")
        name = "file/page.html"
    found = errors(inventory(tmp_path, http=vhost(error_page=name)))
    assert any(line.startswith("http[0].error_page: ") and message in line for line in found), found
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "inventory.yaml")])
    assert result.exit_code == 1 and "Traceback" not in result.output


# --------------------------------------------------------------------------- HTTP/3


def _tls_inventory(tmp_path: Path, **listen: Any) -> Path:
    return inventory(
        tmp_path,
        listen=listen,
        certificates={"site": {"cert": "/etc/ssl/site.pem", "key": "/etc/ssl/site.key"}},
        http=[
            {"domains": ["app.test"], "tls": "site", "routes": [{"prefix": "/", "upstream": "app"}]}
        ],
    )


def test_http3_listeners_per_family_with_alt_svc(tmp_path: Path) -> None:
    path = _tls_inventory(
        tmp_path,
        ipv4={"address": "0.0.0.0", "https": 8443, "http3": {"advertised_port": 443}},
        ipv6={"address": "::", "https": 443, "http3": True},
    )
    model = load_model(str(path))
    quic = [item for item in model.listeners if item.kind == "http3"]
    assert [(q.name, q.protocol, q.port) for q in quic] == [
        ("http3_ipv4", "UDP", 8443),
        ("http3_ipv6", "UDP", 443),
    ]
    chain = quic[0].filter_chains[0]
    assert (chain.quic, chain.secret, chain.server_names) == (True, "site", ("app.test",))
    assert chain.http is not None and chain.http.route_config == "https_ipv4"
    headers = {rc.name: rc.response_headers for rc in model.route_configs}
    assert headers["https_ipv4"] == (("alt-svc", 'h3=":443"; ma=86400'),)
    assert headers["https_ipv6"] == (("alt-svc", 'h3=":443"; ma=86400'),)
    # firewall opens the QUIC port over UDP next to the TCP one.
    opened = {(o.family, o.proto, o.port) for o in openings(model)}
    assert {("ipv4", "udp", 8443), ("ipv4", "tcp", 8443), ("ipv6", "udp", 443)} <= opened


def test_http3_mistakes(tmp_path: Path) -> None:
    found = errors(
        inventory(tmp_path, listen={"ipv4": {"address": "0.0.0.0", "http": 80, "http3": True}})
    )
    assert any(
        line.startswith("listen.ipv4.http3: http3 needs listen.ipv4.https") for line in found
    )
    path = _tls_inventory(tmp_path, ipv4={"address": "0.0.0.0", "https": 443, "http3": True})
    data = path.read_text() + "udp:\n- {port: 443, upstream: app}\n"
    path.write_text(data)
    found = errors(path)
    assert any(
        line.startswith("listen.ipv4.http3: ipv4 port 443 is already used by udp[0]")
        for line in found
    ), found
    path = inventory(
        tmp_path, listen={"ipv4": {"address": "0.0.0.0", "http": 80, "https": 443, "http3": True}}
    )
    assert any("nothing to serve" in w for w in warnings(path))


# --------------------------------------------------------------------------- logs


def test_log_formats_name_each_listener_and_are_recognised(tmp_path: Path) -> None:
    for kind in ("combined", "json"):
        path = inventory(
            tmp_path,
            envoy={"access_log": "/var/log/envoy.log", "access_log_format": kind},
            tcp=[{"port": 2222, "upstream": "app"}],
        )
        model = load_model(str(path))
        formats = {}
        for item in model.listeners:
            for chain in item.filter_chains:
                network = chain.http or chain.tcp
                assert network is not None and network.log_format is not None
                formats[network.stat_prefix] = network.log_format
        assert set(formats) == {"http_ipv4", "tcp_2222_ipv4"}
        for name, fmt in formats.items():
            if kind == "combined":
                assert fmt.text is not None and fmt.text.endswith(f" {name}\n")
                log_format = {"text_format_source": {"inline_string": fmt.text}}
            else:
                assert dict(fmt.json)["listener"] == name
                log_format = {"json_format": dict(fmt.json)}
            assert logformat.recognise(log_format) == kind
    assert logformat.recognise({"text_format_source": {"inline_string": "%PROTOCOL%\n"}}) is None
    found = errors(inventory(tmp_path, envoy={"access_log_format": "apache"}))
    assert any(line.startswith("envoy.access_log_format") for line in found), found


# --------------------------------------------------------------------------- explain


def test_explain_shows_timeouts_failover_page_and_http3(tmp_path: Path) -> None:
    (tmp_path / "down.html").write_text("<h1>down</h1>\n")
    path = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "listen": {"ipv4": {"address": "0.0.0.0", "http": 80, "https": 443, "http3": True}},
            "certificates": {"site": {"cert": "/etc/ssl/s.pem", "key": "/etc/ssl/s.key"}},
            "upstreams": {
                "app": {
                    "endpoints": ["10.0.0.1:80", "10.0.0.2:80"],
                    "backup": ["10.0.0.3:80"],
                    "health_check": {"path": "/healthz"},
                    "connect_timeout": "2s",
                },
                "shop": "10.0.0.9:80",
            },
            "http": [
                {
                    "domains": ["app.test"],
                    "tls": "site",
                    "error_page": "down.html",
                    "compress": True,
                    "routes": [
                        {"prefix": "/ws", "upstream": "app", "websocket": True},
                        {"prefix": "/", "upstream": "app", "retries": 2},
                    ],
                },
                {
                    "domains": ["shop.test"],
                    "maintenance": True,
                    "routes": [{"prefix": "/", "upstream": "shop"}],
                },
            ],
        },
    )
    runner = CliRunner()
    result = runner.invoke(main, ["--no-color", "explain", str(path), "https://app.test/x"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "ipv4 http3 :443 (listener http3_ipv4)" in lines
    assert "ipv4 https :443 (listener https_ipv4)" in lines
    assert "  result upstream app (10.0.0.1:80, 10.0.0.2:80), retries 2, compressed" in lines
    assert "  backup 10.0.0.3:80 (while no endpoint is healthy)" in lines
    assert "  health GET /healthz every 5s, timeout 2s; down after 2 failures, up after 1" in lines
    assert f"  page   Envoy's own 502/503/504 answers show {tmp_path / 'down.html'}" in lines
    assert (
        "  times  response 15s (Envoy's default), stream idle 5m (Envoy's default), connect 2s"
    ) in lines
    ws = runner.invoke(main, ["--no-color", "explain", str(path), "https://app.test/ws"]).stdout
    assert "  times  response 15s (Envoy's default), stream idle none (websocket), connect 2s" in ws
    shop = runner.invoke(main, ["explain", "--json", str(path), "http://shop.test/any"])
    (hop,) = json.loads(shop.stdout)["hops"]
    assert (hop["outcome"], hop["direct_status"]) == ("direct", 503)
    assert hop["result"] == "503 with the maintenance page (built in); no upstream"


def test_render_of_every_feature_is_verified(tmp_path: Path) -> None:
    """verify refuses a template that prints a feature otherwise than the model says."""
    from xdsgen.errors import RenderError
    from xdsgen.render import verify

    model = load_model(str(Path(__file__).parent / "cases" / "failover" / "inventory.yaml"))
    rendered = render(model)
    cds = rendered.files["cds.yaml"]
    for good, bad in (
        ("priority: 1", "priority: 2"),
        ("healthy_threshold: 1", "healthy_threshold: 3"),
        ("value: 0", "value: 50"),
        ("http2_protocol_options: {}", "http_protocol_options: {}"),
    ):
        assert good in cds
        broken = type(rendered)({**rendered.files, "cds.yaml": cds.replace(good, bad, 1)})
        with pytest.raises(RenderError):
            verify(model, broken)


def test_an_upstream_key_moved_right_is_the_line_named(tmp_path: Path) -> None:
    """Upstream blocks grow several keys (backup, health_check, h2): the first key moved
    right reads as a null beside its own block; the hint names that line, not the next."""
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: 1\nlisten:\n  ipv4: {address: 0.0.0.0, http: 80}\nupstreams:\n"
        "    app:\n    endpoints: [10.0.0.1:80]\n    backup: [10.0.0.2:80]\n"
        "  grpc: 10.0.0.3:80\nhttp: []\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:5:5: error: YAML syntax error: line 5 is indented 4 spaces" in result.stderr
    assert "(move line 5 2 spaces to the left" in result.stderr
