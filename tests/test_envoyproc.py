"""xdsgen/envoyproc.py: the one way the demo, the tests and the benchmarks start Envoy."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from harness import envoy_binary, write_inventory

from xdsgen.envoyproc import (
    EnvoyDidNotStart,
    EnvoyProcess,
    admin_text,
    bindable,
    find_envoy,
    free_ports,
)
from xdsgen.errors import IOProblem

pytestmark = pytest.mark.envoy


def test_admin_addresses_as_admin_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert admin_text(15001) == "127.0.0.1:15001"
    assert admin_text("127.0.0.1:9901") == "127.0.0.1:9901"
    assert admin_text("unix:/run/envoy/admin.sock") == "unix:/run/envoy/admin.sock"
    assert admin_text(tmp_path / "admin.sock") == f"unix:{tmp_path / 'admin.sock'}"
    monkeypatch.chdir(tmp_path)
    assert admin_text("admin.sock") == f"unix:{tmp_path / 'admin.sock'}"


def test_free_ports_bind_on_both_families() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(bindable(p) for p in ports)
    with socket.socket() as held:
        held.bind(("127.0.0.1", ports[0]))
        held.listen()
        assert not bindable(ports[0])


def test_envoy_starts_from_a_bootstrap_until_live_and_stops(tmp_path: Path) -> None:
    from xdsgen.pipeline import load_model, render, write_plain
    from xdsgen.render import render_bootstrap

    assert find_envoy() == envoy_binary()
    config = tmp_path / "config"
    (http4,) = free_ports(1)
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(config), "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": http4}},
            "upstreams": {"app": "127.0.0.1:9"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        },
    )
    model = load_model(str(inventory))
    write_plain(str(config), render(model))
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(render_bootstrap(model))
    with EnvoyProcess(bootstrap, config / "admin.sock", tmp_path / "envoy.log") as envoy:
        envoy.start(timeout=30)
        assert envoy.admin_address == f"unix:{config / 'admin.sock'}"
        assert envoy.pid > 0 and envoy.proc is not None and envoy.proc.poll() is None
        proc = envoy.proc
    assert proc.poll() is not None  # stopped on leaving the block


def test_an_envoy_that_exits_is_a_clear_error_with_its_log(tmp_path: Path) -> None:
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text("static_resources: {clusters: [{name: x, unknown_field: 1}]}\n")
    envoy = EnvoyProcess(bootstrap, tmp_path / "admin.sock", tmp_path / "envoy.log")
    with pytest.raises(EnvoyDidNotStart) as failure:
        envoy.start(timeout=30)
    assert isinstance(failure.value, IOProblem)
    message = str(failure.value)
    assert message.startswith("Envoy exited (") and "unknown_field" in message


def test_no_envoy_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xdsgen import envoyproc

    monkeypatch.setattr(envoyproc, "find_envoy", lambda: None)
    with pytest.raises(IOProblem, match="Envoy is not installed"):
        EnvoyProcess(tmp_path / "b.yaml", 1, tmp_path / "log").start()
