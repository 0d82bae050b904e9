"""`export k8s` with real Envoy: the exported bootstrap and files, laid out as kubelet lays
out a ConfigMap volume (tests/kubelet.py), load and route; swapping `..data` to a new export
changes what Envoy serves (watched_directory), and a renewed certificate Secret is served
without a restart. Without watched_directory the same swap goes unnoticed."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Certs, Envoy, HttpBackend, free_ports, http_get, peer_certificate_names
from kubelet import DATA_DIR, KubeletVolume

from xdsgen.export.k8s import K8sOptions, export_k8s
from xdsgen.export.source import load

pytestmark = pytest.mark.envoy


def test_kubelet_volume_layout(tmp_path: Path) -> None:
    volume = KubeletVolume(tmp_path / "vol")
    volume.write({"a.yaml": "one", "b.yaml": "two"})
    first = os.readlink(tmp_path / "vol" / DATA_DIR)
    assert first.startswith("..") and (tmp_path / "vol" / first / "a.yaml").read_text() == "one"
    assert os.readlink(tmp_path / "vol" / "a.yaml") == f"{DATA_DIR}/a.yaml"
    inode = os.lstat(tmp_path / "vol" / "a.yaml").st_ino
    volume.write({"a.yaml": "uno", "c.yaml": "three"})
    second = os.readlink(tmp_path / "vol" / DATA_DIR)
    assert second != first and not (tmp_path / "vol" / first).exists()
    # The visible name is the same symlink (never moved), now reading the new content.
    assert os.lstat(tmp_path / "vol" / "a.yaml").st_ino == inode
    assert (tmp_path / "vol" / "a.yaml").read_text() == "uno"
    assert not (tmp_path / "vol" / "b.yaml").exists()
    assert (tmp_path / "vol" / "c.yaml").read_text() == "three"


def _inventory(
    tmp_path: Path, upstream: str, ports: list[int], cert: Path, key: Path, backends: dict
) -> Path:
    admin, http_port, https_port = ports
    data: dict[str, Any] = {
        "version": 1,
        "envoy": {
            "config_dir": str(tmp_path / "mount"),
            "admin": f"127.0.0.1:{admin}",
            "access_log": "off",
        },
        "listen": {"ipv4": {"address": "127.0.0.1", "http": http_port, "https": https_port}},
        "upstreams": {name: b.endpoint for name, b in backends.items()},
        "certificates": {"site": {"cert": str(cert), "key": str(key)}},
        "http": [
            {
                "domains": ["www.example.com"],
                "tls": "site",
                "routes": [{"prefix": "/", "upstream": upstream}],
            },
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": upstream}]},
        ],
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _export(inventory: Path, certs_dir: Path) -> dict[str, dict[str, Any]]:
    result = export_k8s(load(str(inventory)), K8sOptions(certs_dir=str(certs_dir)))
    assert not result.report.differs, result.report.lines()
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(result.text)}


def _secret_files(secret: dict[str, Any]) -> dict[str, bytes]:
    return {name: base64.b64decode(value) for name, value in secret["data"].items()}


@contextlib.contextmanager
def _envoy(mount: Path, admin: int, log: Path) -> Iterator[Envoy]:
    envoy = Envoy(mount / "bootstrap.yaml", admin, log).start()
    try:
        yield envoy
    finally:
        envoy.stop()


def _backend_of(port: int, host: str = "anything.lan") -> str:
    status, _, body = http_get("127.0.0.1", port, "/", {"Host": host})
    assert status == 200
    return str(json.loads(body)["backend"])


def test_configmap_volume_swap_reaches_envoy(tmp_path: Path) -> None:
    certs = Certs(tmp_path / "tls")
    cert, key = certs.issue("site", "www.example.com")
    backends = {"blue": HttpBackend("blue"), "green": HttpBackend("green")}
    ports = free_ports(3)
    admin, http_port, https_port = ports
    mount, certs_dir = tmp_path / "mount", tmp_path / "certs"
    try:
        objects = _export(_inventory(tmp_path, "blue", ports, cert, key, backends), certs_dir)
        daemonset = objects["DaemonSet/xdsgen"]
        container = daemonset["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["-c", f"{mount}/bootstrap.yaml"]
        assert {"name": "xds", "mountPath": str(mount), "readOnly": True} in container[
            "volumeMounts"
        ]
        config = KubeletVolume(mount)
        config.write(objects["ConfigMap/xdsgen-xds"]["data"])
        secret_volume = KubeletVolume(certs_dir / "site")
        secret_volume.write(_secret_files(objects["Secret/xdsgen-tls-site"]))

        with _envoy(mount, admin, tmp_path / "envoy.log") as envoy:
            assert _backend_of(http_port) == "blue"
            status, _, body = http_get(
                "127.0.0.1",
                https_port,
                "/",
                {"Host": "www.example.com"},
                tls_context=certs.client_context(),
                sni="www.example.com",
            )
            assert (status, json.loads(body)["backend"]) == (200, "blue")

            # A new export, delivered as kubelet delivers a changed ConfigMap.
            objects = _export(_inventory(tmp_path, "green", ports, cert, key, backends), certs_dir)
            config.write(objects["ConfigMap/xdsgen-xds"]["data"])
            envoy.wait_for(lambda: _backend_of(http_port) == "green", 15, "the swapped route")
            assert _backend_of(http_port, "www.example.com") == "green"

            # A renewed certificate in the Secret volume: Envoy's SDS watches its directory.
            renewed_cert, renewed_key = certs.issue(
                "renewed", "www.example.com", "renewed.example.com"
            )
            secret_volume.write(
                {"tls.crt": renewed_cert.read_bytes(), "tls.key": renewed_key.read_bytes()}
            )
            envoy.wait_for(
                lambda: (
                    "renewed.example.com"
                    in peer_certificate_names(
                        "127.0.0.1", https_port, "www.example.com", certs.ca_path
                    )
                ),
                15,
                "the renewed certificate",
            )
            assert envoy.stat("listener_manager.lds.update_rejected") in ("0", "")
            assert config.updates == 2
    finally:
        for backend in backends.values():
            backend.close()


def test_without_watched_directory_the_swap_goes_unnoticed(tmp_path: Path) -> None:
    """The control: xdsgen's plain render in the same volume. Envoy watches each file for a
    move, kubelet never moves one, so the old route stays: watched_directory is the fix."""
    from xdsgen.render import render, render_bootstrap

    certs = Certs(tmp_path / "tls")
    cert, key = certs.issue("site", "www.example.com")
    backends = {"blue": HttpBackend("blue"), "green": HttpBackend("green")}
    ports = free_ports(3)
    admin, http_port, _ = ports
    mount = tmp_path / "mount"

    def plain_files(upstream: str) -> dict[str, str]:
        model = load(str(_inventory(tmp_path, upstream, ports, cert, key, backends))).model
        assert model.envoy.watched_directory is None
        files = dict(render(model).files)
        files["bootstrap.yaml"] = render_bootstrap(model)
        assert "watched_directory:" not in "".join(files.values())
        return files

    try:
        volume = KubeletVolume(mount)
        volume.write(plain_files("blue"))
        with _envoy(mount, admin, tmp_path / "envoy.log") as envoy:
            assert _backend_of(http_port) == "blue"
            volume.write(plain_files("green"))
            with pytest.raises(AssertionError, match="timed out"):
                envoy.wait_for(lambda: _backend_of(http_port) == "green", 3, "a swap")
            assert _backend_of(http_port) == "blue"
    finally:
        for backend in backends.values():
            backend.close()
