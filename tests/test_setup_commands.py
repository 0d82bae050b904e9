"""scripts/test (issue 12, item 1): README's test command installs what the suite drives
when it can, says what is missing when it cannot, and .ci/run runs nothing else.

Run here with stand-ins on PATH: `apt-get` and `id` that record and answer, a `python3`
whose venv module is there or not. busybox sh runs the script, as strict as dash.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest
from harness import REPO

SCRIPT = REPO / "scripts" / "test"
PROGRAMS = {
    "busybox": "busybox",
    "nft": "nftables",
    "pebble": "pebble",
    "pebble-challtestsrv": "pebble",
    "systemd-analyze": "systemd",
    "curl": "curl",
    "goaccess": "goaccess",
}


def busybox() -> str:
    path = shutil.which("busybox")
    if path is None:
        pytest.fail("busybox is missing: apt-get install busybox (scripts/test installs it)")
    return path


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!{busybox()} sh\n{body}\n")
    path.chmod(0o755)


def run_deps(
    tmp_path: Path, uid: int, present: tuple[str, ...], venv: bool = True
) -> tuple[subprocess.CompletedProcess[str], Optional[str]]:
    """scripts/test --deps with only `present` of the programs on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(busybox())
    log = tmp_path / "apt.log"
    stub(bin_dir, "id", f'[ "$1" = -u ] && echo {uid}')
    stub(bin_dir, "apt-get", f'echo "$DEBIAN_FRONTEND apt-get $*" >> "{log}"')
    stub(bin_dir, "python3", f"exit {0 if venv else 1}")
    for program in present:
        stub(bin_dir, program, "exit 0")
    result = subprocess.run(
        [busybox(), "sh", str(SCRIPT), "--deps"],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, log.read_text() if log.exists() else None


def test_as_root_installs_what_is_missing(tmp_path: Path) -> None:
    result, apt = run_deps(tmp_path, 0, present=("busybox", "pebble"), venv=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "scripts/test: installing nftables pebble systemd curl goaccess python3-venv\n"
    )
    assert apt == (
        " apt-get update -qq\n"
        "noninteractive apt-get install -y -qq --no-install-recommends "
        "nftables pebble systemd curl goaccess python3-venv\n"
    )


def test_without_root_names_what_is_missing(tmp_path: Path) -> None:
    result, apt = run_deps(tmp_path, 1000, present=("busybox", "nft", "curl", "goaccess"))
    assert result.returncode == 0
    assert apt is None
    assert result.stderr == (
        "scripts/test: missing: pebble systemd (as root: apt-get install pebble systemd); "
        "the tests that need them will fail\n"
    )


def test_nothing_missing_installs_nothing(tmp_path: Path) -> None:
    result, apt = run_deps(tmp_path, 0, present=tuple(PROGRAMS))
    assert (result.returncode, result.stdout, result.stderr, apt) == (0, "", "", None)


def test_this_machine_has_everything_the_suite_drives() -> None:
    for program, package in PROGRAMS.items():
        assert shutil.which(program), f"{program} missing: apt-get install {package}"
    result = subprocess.run(
        ["sh", str(SCRIPT), "--deps"], capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_script_is_posix_and_ends_in_the_test_run() -> None:
    for shell in (["sh", "-n"], [busybox(), "sh", "-n"]):
        assert subprocess.run([*shell, str(SCRIPT)], capture_output=True).returncode == 0
    text = SCRIPT.read_text()
    assert text.startswith("#!/bin/sh\n") and SCRIPT.stat().st_mode & 0o111
    assert text.rstrip().splitlines()[-3:] == [
        "python3 -m venv .venv",
        ".venv/bin/pip install -q -e '.[test]'",
        'exec .venv/bin/pytest "$@"',
    ]
    # The suite itself never installs anything: no test runs apt-get (this file only
    # writes a stand-in for it).
    for test in (REPO / "tests").glob("*.py"):
        if test.name != Path(__file__).name:
            assert not re.search(r"""["']apt-get["'],""", test.read_text()), test.name
