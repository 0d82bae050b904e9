"""Install (issue 12, items 1-3): the sdist and wheel `python -m build` makes hold what
xdsgen needs at run time (templates, schema, apply.sh) and the sdist what the tests need;
the wheel works without the checkout; README's first set-up command works as written,
in a copy of the checkout, into a virtualenv (never the system Python).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import REPO

from xdsgen import __version__

NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "dist",
    "build",
    "out",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
)
TEMPLATES = sorted(p.name for p in (REPO / "templates").glob("*.j2"))
MODULES = sorted(p.name for p in (REPO / "xdsgen").glob("*.py"))


def checkout_copy(directory: Path) -> Path:
    """The source tree as a fresh clone has it (no virtualenv, no caches)."""
    copy = directory / "xdsgen-src"
    shutil.copytree(REPO, copy, ignore=NOT_SOURCE, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("dist")
    source = checkout_copy(tmp)
    out = tmp / "out"
    # sdist first, then the wheel built from the unpacked sdist (build's default): a file
    # missing from the sdist breaks the wheel, as it would for anyone building from it.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    yield {"sdist": sdist, "wheel": wheel, "tmp": tmp}


def test_release_files_are_named_for_the_version(dist: dict[str, Path]) -> None:
    assert dist["sdist"].name == f"xdsgen-{__version__}.tar.gz"
    assert dist["wheel"].name == f"xdsgen-{__version__}-py3-none-any.whl"


def test_wheel_holds_what_xdsgen_needs_at_run_time(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = {i.filename: i for i in wheel.infolist()}
        meta_dir = f"xdsgen-{__version__}.dist-info"
        metadata = wheel.read(f"{meta_dir}/METADATA").decode()
        entry_points = wheel.read(f"{meta_dir}/entry_points.txt").decode()
    assert {f"xdsgen/{m}" for m in MODULES} <= names
    assert {f"xdsgen/templates/{t}" for t in TEMPLATES} <= names
    assert "xdsgen/schemas/inventory.schema.json" in names
    assert "xdsgen/data/apply.sh" in names
    assert (info["xdsgen/data/apply.sh"].external_attr >> 16) & 0o111, "apply.sh not executable"
    # Nothing from outside the package: no tests, examples or benchmarks in site-packages.
    assert {n.split("/")[0] for n in names} == {"xdsgen", meta_dir}
    assert re.search(r"^\[console_scripts\]\nxdsgen = xdsgen.cli.leave:run$", entry_points, re.M)
    assert "Requires-Python: >=3.9" in metadata
    for requirement in ("click>=8.0", "pyyaml>=5.4", "jinja2>=3.0", "jsonschema>=4.0"):
        assert f"Requires-Dist: {requirement}\n" in metadata, requirement
    assert "Provides-Extra: full" in metadata and "Provides-Extra: envoy" in metadata


def test_sdist_holds_what_the_tests_and_examples_need(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    expected = {
        "pyproject.toml",
        "README.md",
        "scripts/test",
        "xdsgen/data/apply.sh",
        "schemas/inventory.schema.json",
        "examples/home-router.yaml",
        "examples/systemd/envoy.service",
        "examples/systemd/xdsgen-watch.service",
        "examples/openwrt/xdsgen.init",
        "examples/openwrt/crontab",
        "tests/harness.py",
        "benchmarks/run.py",
        *(f"templates/{t}" for t in TEMPLATES),
    }
    assert expected <= names, expected - names
    assert not {n for n in names if n.startswith((".venv/", ".git/")) or "__pycache__" in n}


def test_installed_wheel_runs_without_the_checkout(dist: dict[str, Path]) -> None:
    """The wheel unpacked as pip lays it out, run from an empty directory: templates,
    schema and apply.sh come from the package, not from a checkout next to it."""
    site = dist["tmp"] / "site"
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        wheel.extractall(site)
    workdir = dist["tmp"] / "elsewhere"
    workdir.mkdir()
    shutil.copy(REPO / "examples" / "home-router.yaml", workdir / "inventory.yaml")
    env = {**os.environ, "PYTHONPATH": str(site), "XDSGEN_CACHE_DIR": "off"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xdsgen", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import xdsgen, sys; print(xdsgen.__file__)"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(site / "xdsgen" / "__init__.py")
    render = run("render", "inventory.yaml", "-o", "out")
    assert render.returncode == 0, render.stderr
    assert (workdir / "out" / "lds.yaml").is_file()
    schema = run("schema")
    assert schema.stdout == (REPO / "schemas" / "inventory.schema.json").read_text()
    script = run("cron-script")
    assert script.returncode == 0 and script.stdout.startswith("#!/bin/sh\n")


@pytest.mark.slow
def test_readme_install_command_in_a_fresh_copy(tmp_path: Path) -> None:
    """README's first set-up command, verbatim, in a copy of the checkout."""
    readme = (REPO / "README.md").read_text()
    (command,) = re.findall(
        r"^    (python3 -m venv \.venv && .*examples/home-router\.yaml.*)$", readme, re.M
    )
    copy = checkout_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # The machine's python3, as for a person at a shell: not this suite's virtualenv.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if p != venv_bin)
    result = subprocess.run(
        ["sh", "-c", command], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (copy / "out" / "lds.yaml").is_file()
    assert (copy / ".venv" / "bin" / "xdsgen").is_file()
    assert "wrote" in result.stderr
