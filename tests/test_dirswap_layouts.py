"""Directory-swap mode's layout is kubelet's: files xdsgen rendered, delivered by kubelet's
own sequence (tests/kubelet.py) into a directory, reach an Envoy started with xdsgen's
bootstrap, and xdsgen and kubelet can take turns on the same directory. And a directory
moves between the rename and directory layouts (and back) under a running Envoy."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Envoy, HttpBackend, free_ports, write_inventory
from kubelet import KubeletVolume
from test_apply_envoy import _backend_of
from test_apply_helpers import file_facts, run_xdsgen, wait_until
from test_dirswap_envoy import assert_swap_layout

from xdsgen.conventions import DATA_LINK, file_version
from xdsgen.live.confirm import subscriptions
from xdsgen.live.swap import is_stamp_dir, write_generation
from xdsgen.live.transition import read_files
from xdsgen.pipeline import load_model, render, render_into
from xdsgen.render import render_bootstrap

pytestmark = pytest.mark.envoy


def _inventory(
    path: Path, config: Path, port: int, upstreams: dict[str, Any], layout: str, **more: Any
) -> Path:
    names = list(upstreams)
    data = {
        "version": 1,
        "envoy": {"config_dir": str(config), "access_log": "off", "layout": layout},
        "listen": {"ipv4": {"address": "127.0.0.1", "http": port}},
        "upstreams": {n: b.endpoint for n, b in upstreams.items()},
        "http": [
            *(
                {"domains": [f"{n}.test"], "routes": [{"prefix": "/", "upstream": n}]}
                for n in names
            ),
            {"domains": ["*"], "routes": [{"prefix": "/", "upstream": names[-1]}]},
        ],
        **more,
    }
    return write_inventory(path, data)


@contextlib.contextmanager
def _envoy(inventory: Path, workdir: Path, name: str) -> Iterator[Envoy]:
    """Envoy with the bootstrap `xdsgen bootstrap` writes for this inventory."""
    model = load_model(str(inventory))
    bootstrap = workdir / f"{name}-bootstrap.yaml"
    bootstrap.write_text(render_bootstrap(model))
    envoy = Envoy(bootstrap, model.envoy.admin.path, workdir / f"{name}.log").start()
    try:
        yield envoy
    finally:
        envoy.stop()


def _runs(envoy: Envoy, files: dict[str, str], timeout: float = 10) -> None:
    expected = {
        "cluster_manager.cds": file_version(files["cds.yaml"]),
        "listener_manager.lds": file_version(files["lds.yaml"]),
    }
    for name, prefix in subscriptions(files["lds.yaml"]).items():
        expected[prefix] = file_version(files[name])

    def converged() -> bool:
        stats = envoy.stats()
        return all(stats.get(f"{p}.version_text") == f'"{v}"' for p, v in expected.items())

    wait_until(converged, timeout, f"Envoy to run {expected}")


def test_kubelet_delivers_what_xdsgen_renders_in_directory_mode(tmp_path: Path) -> None:
    """The k8s story on one box: the bootstrap of a directory-mode inventory, the files
    it renders, kubelet's own AtomicWriter sequence delivering each new set, and xdsgen's
    render and kubelet taking turns on the one directory."""
    blue, green, extra = HttpBackend("blue"), HttpBackend("green"), HttpBackend("extra")
    (http4,) = free_ports(1)
    mount = tmp_path / "mount"

    def rendered(name: str, upstreams: dict[str, Any]) -> tuple[Path, dict[str, str]]:
        inventory = _inventory(tmp_path / f"{name}.yaml", mount, http4, upstreams, "directory")
        return inventory, dict(render(load_model(str(inventory))).files)

    try:
        first, files = rendered("blue", {"blue": blue})
        kubelet = KubeletVolume(mount)
        kubelet.write(files)
        with _envoy(first, tmp_path, "envoy") as envoy:
            assert _backend_of(http4, "any", "/") == "blue"
            # kubelet swaps in a changed set: a route to another upstream, a new vhost
            _, files = rendered("green", {"extra": extra, "green": green})
            kubelet.write(files)
            _runs(envoy, files)
            assert _backend_of(http4, "any", "/") == "green"
            assert _backend_of(http4, "extra.test", "/") == "extra"
            # xdsgen's own swap on the directory kubelet laid out ...
            third, files = rendered("blue-again", {"blue": blue})
            render_into(str(mount), render(load_model(str(third))), "directory")
            _runs(envoy, read_files(str(mount)))
            assert _backend_of(http4, "any", "/") == "blue"
            # ... and kubelet's again on xdsgen's
            _, files = rendered("green-again", {"green": green})
            kubelet.write(files)
            _runs(envoy, files)
            assert _backend_of(http4, "any", "/") == "green"
            assert envoy.stat("listener_manager.lds.update_rejected") in ("0", "")
            assert envoy.stat("cluster_manager.cds.update_rejected") in ("0", "")
        assert kubelet.updates == 3
    finally:
        for backend in (blue, green, extra):
            backend.close()


def test_moving_between_the_layouts_under_a_running_envoy(tmp_path: Path) -> None:
    """rename -> directory is refused while Envoy's bootstrap does not watch the directory
    (nothing written); with the new bootstrap, apply moves the files to links through
    ..data and swaps from then on. directory -> rename moves them back, and an Envoy that
    still watches the directory follows."""
    a, b = HttpBackend("a"), HttpBackend("b")
    (http4,) = free_ports(1)
    config = tmp_path / "config"

    def inventory(name: str, upstreams: dict[str, Any], layout: str) -> Path:
        return _inventory(tmp_path / f"{name}.yaml", config, http4, upstreams, layout)

    try:
        renamed = inventory("rename", {"a": a}, "rename")
        render_into(str(config), render(load_model(str(renamed))))
        with _envoy(renamed, tmp_path, "rename-envoy"):
            assert run_xdsgen("apply", str(renamed)).returncode == 0
            before = file_facts(config)
            refused = run_xdsgen("apply", str(inventory("directory", {"a": a}, "directory")))
            assert refused.returncode == 3, refused.stderr
            assert "bootstrap watches no directory" in refused.stderr
            assert "Nothing was written" in refused.stderr
            assert file_facts(config) == before
            assert DATA_LINK not in os.listdir(config)
        directory = inventory("directory", {"a": a}, "directory")
        with _envoy(directory, tmp_path, "directory-envoy") as envoy:
            moved = run_xdsgen("apply", str(directory), "-v")
            assert moved.returncode == 0, moved.stderr
            assert "moves to the directory layout" in moved.stderr
            # The listeners change too: their route subscriptions now watch the directory.
            assert "~  listener  http_ipv4" in moved.stdout
            assert "confirmed by Envoy" in moved.stdout
            files = assert_swap_layout(config)
            assert {n: f[2].decode() for n, f in file_facts(config).items()} == files
            _runs(envoy, files)
            changed = run_xdsgen("apply", str(inventory("directory-b", {"b": b}, "directory")))
            assert changed.returncode == 0, changed.stderr
            assert _backend_of(http4, "any", "/") == "b"
            _runs(envoy, assert_swap_layout(config))
            # ... and back to the rename layout; this Envoy still watches the directory.
            back = run_xdsgen("apply", str(inventory("rename-b", {"b": b}, "rename")), "-v")
            assert back.returncode == 0, back.stderr
            assert "moves to the rename layout" in back.stderr
            names = os.listdir(config)
            assert DATA_LINK not in names and not [n for n in names if is_stamp_dir(n)]
            files = read_files(str(config))
            assert files and not any(os.path.islink(config / n) for n in files)
            _runs(envoy, files)
            again = run_xdsgen("apply", str(inventory("rename-a", {"a": a}, "rename")))
            assert again.returncode == 0, again.stderr
            assert _backend_of(http4, "any", "/") == "a"
    finally:
        a.close()
        b.close()


class SlowLinkingKubelet(KubeletVolume):
    """kubelet, busy for a moment between the rename of ..data and the links of new names
    (its sequence is unchanged; only the pause is added, as a loaded node would have)."""

    def __init__(self, directory: Path, pause: float):
        super().__init__(directory)
        self.pause = pause

    def write(self, files: dict[str, Any]) -> None:
        real_rename = os.rename

        def rename_then_pause(src: Any, dst: Any) -> None:
            real_rename(src, dst)
            if str(dst).endswith(DATA_LINK):
                time.sleep(self.pause)

        os.rename = rename_then_pause  # type: ignore[assignment]
        try:
            super().write(files)
        finally:
            os.rename = real_rename  # type: ignore[assignment]


def test_a_new_file_linked_after_the_swap_can_be_missed_but_not_one_linked_before(
    tmp_path: Path,
) -> None:
    """Why xdsgen links a new name before the swap: Envoy checks that the route file of a
    listener exists when it reads the listener. kubelet links a new file only after the
    rename; an Envoy that reads the new lds.yaml first refuses the new listener ("paths
    must refer to an existing path") and, with no later move, never retries. xdsgen's
    writer, same generation: the file is there, the listener serves."""
    app = HttpBackend("app")
    http4, http6 = free_ports(2)
    mount = tmp_path / "mount"

    def files(ipv6: bool) -> tuple[Path, dict[str, str]]:
        listen = {"ipv4": {"address": "127.0.0.1", "http": http4}}
        if ipv6:
            listen["ipv6"] = {"address": "::1", "http": http6}
        data = {
            "version": 1,
            "envoy": {"config_dir": str(mount), "access_log": "off", "layout": "directory"},
            "listen": listen,
            "upstreams": {"app": app.endpoint},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        }
        inventory = write_inventory(tmp_path / f"ipv6-{ipv6}.yaml", data)
        return inventory, dict(render(load_model(str(inventory))).files)

    rejected = "listener_manager.lds.update_rejected"
    try:
        first, without = files(False)
        _, with_ipv6 = files(True)
        kubelet = SlowLinkingKubelet(mount, pause=1.0)
        kubelet.write(without)
        with _envoy(first, tmp_path, "kubelet-envoy") as envoy:
            kubelet.write(with_ipv6)
            wait_until(lambda: envoy.stat(rejected) not in ("", "0"), 5, "the refusal")
            assert "paths must refer to an existing path" in envoy.log()
            time.sleep(0.5)  # the link is there by now; nothing makes Envoy read it again
            assert os.path.exists(mount / "rds_http_ipv6.yaml")
            with pytest.raises(OSError):
                socket.create_connection(("::1", http6), timeout=1).close()
        shutil.rmtree(mount)
        mount.mkdir()
        write_generation(str(mount), without, ())
        with _envoy(first, tmp_path, "xdsgen-envoy") as envoy:
            write_generation(str(mount), with_ipv6, without)
            _runs(envoy, with_ipv6)
            assert envoy.stat(rejected) in ("", "0")
            assert _backend_of(http6, "any", "/", "::1") == "app"
    finally:
        app.close()
