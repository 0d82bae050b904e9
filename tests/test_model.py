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
