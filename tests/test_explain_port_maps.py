"""`xdsgen explain` with a URL whose port is a TCP map (issue 12, item 10): the answer is
the port map, as Envoy does it (a real Envoy carries the same request to that upstream).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from harness import HttpBackend, UdpEcho, free_ports, http_get, running_envoy, write_inventory

from xdsgen.cli import main


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("explain-maps")
    mapped, web = HttpBackend("mapped"), HttpBackend("web")
    dns = UdpEcho("dns")
    admin, http_port, map_port = free_ports(3)
    inventory = write_inventory(
        tmp / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"admin": f"127.0.0.1:{admin}", "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http_port}},
            "upstreams": {"mapped": mapped.endpoint, "web": web.endpoint, "dns": dns.endpoint},
            "tcp": [{"port": map_port, "upstream": "mapped"}],
            "udp": [{"port": map_port, "upstream": "dns"}],
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "web"}]}],
        },
    )
    try:
        with running_envoy(inventory, tmp) as envoy:
            yield {"inventory": inventory, "http": http_port, "map": map_port, "envoy": envoy}
    finally:
        for backend in (mapped, web, dns):
            backend.close()


def explain_json(inventory: Path, target: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["explain", "--json", str(inventory), target])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout)["hops"])


def test_url_on_a_tcp_map_port_is_the_port_map(env: dict[str, Any]) -> None:
    port = env["map"]
    for target in (
        f"http://127.0.0.1:{port}/",
        f"https://127.0.0.1:{port}/x",
        f"127.0.0.1:{port}/",
    ):
        hops = [h for h in explain_json(env["inventory"], target) if h["kind"] == "tcp"]
        assert [(h["listener"], h["upstream"]) for h in hops] == [(f"tcp_{port}_ipv4", "mapped")], (
            target
        )
    # A URL never reaches a UDP map; HOST:PORT shows both maps of the port.
    kinds = [h["kind"] for h in explain_json(env["inventory"], f"http://127.0.0.1:{port}/")]
    assert kinds == ["tcp"]
    kinds = [h["kind"] for h in explain_json(env["inventory"], f"127.0.0.1:{port}/")]
    assert kinds == ["tcp", "udp"]
    # Envoy agrees: the HTTP request sent to the mapped port reaches that upstream.
    status, _, body = http_get("127.0.0.1", port, "/anything")
    assert status == 200 and json.loads(body)["backend"] == "mapped"


def test_plain_text_answer_for_the_issue_url(env: dict[str, Any]) -> None:
    port = env["map"]
    result = CliRunner().invoke(
        main, ["--no-color", "explain", str(env["inventory"]), f"http://127.0.0.1:{port}/"]
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"explain http://127.0.0.1:{port}/",
        f"ipv4 tcp :{port} (listener tcp_{port}_ipv4)",
        "  result TCP port map: the connection goes to upstream mapped "
        f"({_endpoint(env, 'mapped')}) as it is (no HTTP routing, TLS not terminated)",
        "  times  idle 1h (Envoy's default), connect 5s",
    ]


def test_url_without_port_still_means_the_http_listener(env: dict[str, Any]) -> None:
    hops = explain_json(env["inventory"], "http://app.example.com/")
    assert [(h["kind"], h["upstream"]) for h in hops] == [("http", "web")]
    status, _, body = http_get("127.0.0.1", env["http"], "/", headers={"Host": "app.example.com"})
    assert status == 200 and json.loads(body)["backend"] == "web"


def _endpoint(env: dict[str, Any], upstream: str) -> str:
    from xdsgen.pipeline import load_model

    model = load_model(str(env["inventory"]))
    (cluster,) = [c for c in model.clusters if c.name == upstream]
    return ", ".join(f"{e.host}:{e.port}" for e in cluster.endpoints)
