"""Model decisions that are not visible in one golden file."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import write_inventory

from xdsgen.errors import InventoryError
from xdsgen.pipeline import load_model


def _inventory(tmp_path: Path, upstream: object) -> Path:
    return write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 18080}},
            "upstreams": {"nas": upstream},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "nas"}]}],
        },
    )


def test_upstream_tls_verify_defaults_sni_to_the_single_host_name(tmp_path: Path) -> None:
    model = load_model(str(_inventory(tmp_path, {"endpoints": ["nas.lan:5001"], "tls": {}})))
    (cluster,) = model.clusters
    assert cluster.tls is not None
    assert (cluster.tls.sni, cluster.tls.verify) == ("nas.lan", True)


def test_upstream_tls_verify_without_any_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_model(str(_inventory(tmp_path, {"endpoints": ["10.0.0.2:5001"], "tls": {}})))
    assert "cannot verify the upstream's certificate without a name" in str(caught.value)


def test_upstream_tls_verify_off_needs_no_name(tmp_path: Path) -> None:
    model = load_model(
        str(_inventory(tmp_path, {"endpoints": ["10.0.0.2:5001"], "tls": {"verify": False}}))
    )
    (cluster,) = model.clusters
    assert cluster.tls is not None and cluster.tls.sni is None and cluster.tls.ca is None


def test_out_dir_keeps_an_explicit_container_config_dir(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, "127.0.0.1:3000")
    text = (
        inventory.read_text()
        + "envoy: {config_dir: /srv/envoy, container_config_dir: /etc/envoy}\n"
    )
    inventory.write_text(text)
    model = load_model(str(inventory), config_dir=str(tmp_path / "out"))
    assert model.envoy.config_dir == str(tmp_path / "out")
    assert model.route_path("http_ipv4") == "/etc/envoy/rds_http_ipv4.yaml"


def test_out_dir_moves_references_without_a_container_config_dir(tmp_path: Path) -> None:
    model = load_model(
        str(_inventory(tmp_path, "127.0.0.1:3000")), config_dir=str(tmp_path / "out")
    )
    assert model.route_path("http_ipv4") == f"{tmp_path}/out/rds_http_ipv4.yaml"


def test_shape_and_meaning_errors_are_reported_together(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\n"
        "listen:\n  ipv4: {address: 0.0.0.0, http: 8080}\n"
        "upstreams:\n  app: 127.0.0.1:3000\n"
        "http:\n  - domains: ['*']\n    routes:\n      - {prefix: /, upstream: ap}\n"
        "tcp:\n  - {port: 70000, upstream: app}\n  - {port: 9000, upstream: nope}\n"
    )
    with pytest.raises(InventoryError) as caught:
        load_model(str(inventory))
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (9, "http[0].routes[0].upstream", "unknown upstream 'ap'"),
        (11, "tcp[0].port", "port 70000 is outside 1-65535"),
        (12, "tcp[1].upstream", "unknown upstream 'nope'"),
    ]


def test_meaning_errors_about_a_malformed_part_are_left_out(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "version: 1\n"
        "listen:\n  ipv4: {address: 0.0.0.0, http: 8080}\n"
        "upstreams:\n  app: 127.0.0.1:3000\n"
        "tcp:\n  - {port: 9000, upstream: 12}\n"
    )
    with pytest.raises(InventoryError) as caught:
        load_model(str(inventory))
    assert [p.path for p in caught.value.problems] == ["tcp[0].upstream"]
    assert "expected a string" in caught.value.problems[0].message
