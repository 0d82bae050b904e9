"""examples/systemd (issue 12, item 4): the units pass `systemd-analyze verify` without a
single warning, are hardened, and run commands xdsgen and Envoy accept.

systemd-analyze comes with Debian's systemd package (scripts/test installs it; nothing is
booted). It fails the test when missing: the units must be checked, not assumed.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO

from xdsgen.cli import main

UNITS = REPO / "examples" / "systemd"
VENV_BIN = Path(sys.executable).parent


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (scripts/test does)")
    return path


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def verify(directory: Path, *names: str) -> str:
    """systemd-analyze verify's whole output (empty when the units are clean)."""
    result = subprocess.run(
        [systemd_analyze(), "verify", *(f"./{n}" for n in names)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (result.stdout + result.stderr).strip()
    return output if output or result.returncode == 0 else f"exit {result.returncode}"


def local_copies(tmp_path: Path) -> Path:
    """The units with /opt/xdsgen/bin pointing at this virtualenv, whose xdsgen and envoy
    exist (verify checks that ExecStart= is executable)."""
    for path in UNITS.glob("*.service"):
        text = path.read_text().replace("/opt/xdsgen/bin/", f"{VENV_BIN}/")
        (tmp_path / path.name).write_text(text)
    return tmp_path


def test_units_verify_without_warnings(tmp_path: Path) -> None:
    directory = local_copies(tmp_path)
    assert (VENV_BIN / "envoy").exists() and (VENV_BIN / "xdsgen").exists()
    assert verify(directory, "envoy.service", "xdsgen-watch.service") == ""


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    directory = local_copies(tmp_path)
    watch = directory / "xdsgen-watch.service"
    watch.write_text(watch.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "Unknown key 'ProtectSytem'" in verify(directory, "xdsgen-watch.service")
    envoy = directory / "envoy.service"
    envoy.write_text(envoy.read_text().replace(str(VENV_BIN), "/nonexistent"))
    assert "is not executable" in verify(directory, "envoy.service")


def test_units_name_no_man_pages() -> None:
    """verify runs `man` for every Documentation=man:... entry; a server without man
    pages (a fresh Debian) would fail it. Web addresses are not checked."""
    for path in UNITS.glob("*.service"):
        for line in path.read_text().splitlines():
            if line.startswith("Documentation="):
                assert all(d.startswith("https://") for d in line.split("=", 1)[1].split())


def test_units_are_hardened() -> None:
    for name, user in (("envoy.service", "envoy"), ("xdsgen-watch.service", "xdsgen")):
        service = unit(name)["Service"]
        assert service["User"] == user, name
        for key, value in (
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("NoNewPrivileges", "yes"),
            ("Restart", "on-failure"),
        ):
            assert service[key] == value, (name, key)
    envoy = unit("envoy.service")["Service"]
    assert envoy["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    # Envoy writes only its admin socket, in the config directory.
    assert envoy["ReadWritePaths"].split() == ["/etc/envoy"]
    watch = unit("xdsgen-watch.service")
    assert watch["Service"]["CapabilityBoundingSet"] == ""
    assert watch["Service"]["ReadWritePaths"].split()[0] == "/etc/envoy"
    assert watch["Unit"]["After"] == "envoy.service"
    assert watch["Unit"]["Wants"] == "envoy.service"


def test_exec_start_lines_are_commands_that_work(tmp_path: Path) -> None:
    watch = shlex.split(unit("xdsgen-watch.service")["Service"]["ExecStart"])
    assert watch[0] == "/opt/xdsgen/bin/xdsgen" and watch[1] == "apply"
    # With its parent, as the command line makes it (click caches each command's help
    # option from the first context it sees).
    parent = main.make_context("xdsgen", [], resilient_parsing=True)
    ctx = main.commands["apply"].make_context("apply", watch[2:], parent=parent)
    assert ctx.params["watch"] is True
    assert ctx.params["inventory"] == "/etc/xdsgen/inventory.yaml"

    envoy = shlex.split(unit("envoy.service")["Service"]["ExecStart"])
    assert envoy[:3] == ["/opt/xdsgen/bin/envoy", "-c", "/etc/envoy/bootstrap.yaml"]
    # The real Envoy accepts the rest of the line, with a bootstrap xdsgen wrote.
    from xdsgen.pipeline import load_model, render, write_plain
    from xdsgen.render import render_bootstrap

    inventory = REPO / "tests" / "cases" / "minimal-http" / "inventory.yaml"
    model = load_model(str(inventory), config_dir=str(tmp_path / "config"))
    write_plain(str(tmp_path / "config"), render(model))
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(render_bootstrap(model))
    result = subprocess.run(
        [str(VENV_BIN / "envoy"), "--mode", "validate", "-c", str(bootstrap), *envoy[3:]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_recipe_matches_the_units() -> None:
    recipe = (UNITS / "README.md").read_text()
    assert "python3 -m venv /opt/xdsgen" in recipe
    assert "/opt/xdsgen/bin/pip install -q '.[full,envoy]'" in recipe
    assert (
        "/opt/xdsgen/bin/xdsgen bootstrap /etc/xdsgen/inventory.yaml -o /etc/envoy/bootstrap.yaml"
        in recipe
    )
    assert "cp examples/systemd/envoy.service examples/systemd/xdsgen-watch.service" in recipe
    assert "useradd --system --user-group" in recipe and "--gid envoy" in recipe
    top = (REPO / "README.md").read_text()
    assert "`examples/systemd/`" in top
