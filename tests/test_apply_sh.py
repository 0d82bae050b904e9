"""apply.sh under busybox sh, as OpenWrt's cron runs it: the real xdsgen, a stand-in
`logger` on PATH that records what would reach syslog."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from harness import REPO, free_ports, write_inventory

APPLY_SH = REPO / "xdsgen" / "data" / "apply.sh"  # package data: `xdsgen cron-script` installs it
# scripts/test installs busybox; a machine without it cannot prove the script runs on OpenWrt.
BUSYBOX = shutil.which("busybox")


def busybox() -> str:
    if BUSYBOX is None:
        pytest.fail(
            "busybox is not installed (apt-get install busybox): apply.sh must be tested under it"
        )
    return BUSYBOX


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """PATH for the script: a recording `logger`, an `xdsgen` that runs this checkout's,
    and busybox's applets for everything else (no GNU tools sneak in)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    log = tmp_path / "syslog"
    logger = directory / "logger"
    logger.write_text(f'#!{busybox()} sh\n{{ echo "ARGS $*"; cat; }} >> "{log}"\n')
    xdsgen = directory / "xdsgen"
    xdsgen.write_text(f'#!{busybox()} sh\nexec "{sys.executable}" -m xdsgen "$@"\n')
    for path in (logger, xdsgen):
        path.chmod(0o755)
    for applet in ("cat", "echo", "printf", "mktemp", "rm", "sh"):
        (directory / applet).symlink_to(busybox())
    return directory


def run_script(
    bin_dir: Path, *args: str, env: Optional[dict[str, str]] = None, script: Path = APPLY_SH
) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": str(bin_dir),
        "HOME": str(bin_dir.parent),
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    return subprocess.run(
        [busybox(), "sh", str(script), *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def syslog(bin_dir: Path) -> str:
    path = bin_dir.parent / "syslog"
    return path.read_text() if path.exists() else ""


def make_inventory(tmp_path: Path, upstream: str = "127.0.0.1:3000") -> Path:
    (admin,) = free_ports(1)
    return write_inventory(
        tmp_path / "inventory.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "ignored"), "admin": f"127.0.0.1:{admin}"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
            "upstreams": {"app": upstream},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        },
    )


FAST = {"XDSGEN_ARGS": "--settle 0 --no-envoy-check --no-confirm"}


def test_syntax_is_posix_for_busybox_ash() -> None:
    for shell in (["sh", "-n"], ["ash", "-n"]):
        result = subprocess.run([busybox(), *shell, str(APPLY_SH)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert APPLY_SH.read_text().startswith("#!/bin/sh\n")
    assert os.access(APPLY_SH, os.X_OK)


def test_cron_run_logs_to_syslog_and_passes_the_exit_code(bin_dir: Path, tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    config = tmp_path / "config"
    result = run_script(bin_dir, str(inventory), str(config), env=FAST)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (config / "lds.yaml").is_file()  # the argument won over envoy.config_dir
    assert not (tmp_path / "ignored").exists()
    log = syslog(bin_dir)
    assert "ARGS -t xdsgen -p daemon.notice" in log and "nothing was confirmed" in log

    # Nothing changed: xdsgen is silent, so syslog gets nothing.
    (bin_dir.parent / "syslog").unlink()
    result = run_script(bin_dir, str(inventory), str(config), env=FAST)
    assert (result.returncode, syslog(bin_dir)) == (0, "")

    # An invalid inventory: exit 1, the errors at priority err, the files untouched.
    before = (config / "cds.yaml").read_bytes()
    broken = make_inventory(tmp_path, upstream="127.0.0.1:99999")
    result = run_script(bin_dir, str(broken), str(config), env={**FAST, "XDSGEN_LOG_TAG": "proxy"})
    assert result.returncode == 1
    log = syslog(bin_dir)
    assert "ARGS -t proxy -p daemon.err" in log and "99999" in log and "nothing written" in log
    assert (config / "cds.yaml").read_bytes() == before


def test_environment_supplies_inventory_and_config_dir(bin_dir: Path, tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    config = tmp_path / "from-env"
    result = run_script(
        bin_dir,
        env={
            **FAST,
            "XDSGEN_INVENTORY": str(inventory),
            "XDSGEN_CONFIG_DIR": str(config),
            "XDSGEN": f"{sys.executable} -m xdsgen",
        },
    )
    assert result.returncode == 0, syslog(bin_dir)
    assert (config / "cds.yaml").is_file()


def test_lock_timeout_exit_code_reaches_cron(bin_dir: Path, tmp_path: Path) -> None:
    from xdsgen.live.lock import locked

    inventory = make_inventory(tmp_path)
    config = tmp_path / "config"
    config.mkdir()
    with locked(str(config), 1):
        result = run_script(
            bin_dir,
            str(inventory),
            str(config),
            env={"XDSGEN_ARGS": "--lock-timeout 0.2 --settle 0 --no-envoy-check"},
        )
    assert result.returncode == 4
    assert "daemon.err" in syslog(bin_dir) and "holds the lock" in syslog(bin_dir)


def test_missing_xdsgen_is_logged(bin_dir: Path, tmp_path: Path) -> None:
    result = run_script(bin_dir, str(make_inventory(tmp_path)), env={"XDSGEN": "no-such-xdsgen"})
    assert result.returncode == 127
    assert "no-such-xdsgen not found" in syslog(bin_dir)


def test_terminal_run_shows_output_instead_of_logging(bin_dir: Path, tmp_path: Path) -> None:
    inventory = make_inventory(tmp_path)
    main, child = pty.openpty()
    env = {
        "PATH": str(bin_dir),
        "PYTHONPATH": str(REPO),
        "TERM": "dumb",
        **FAST,
        "XDSGEN_ARGS": "--settle 0 --no-envoy-check --no-confirm --verbose",
    }
    proc = subprocess.Popen(
        [busybox(), "sh", str(APPLY_SH), str(inventory), str(tmp_path / "config")],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
    )
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(60) == 0
    os.close(main)
    assert b"applied: 3 to add" in output
    assert syslog(bin_dir) == ""


# --------------------------------------------------------------------------- xdsgen cron-script


def cron_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdsgen", "cron-script", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cron_script_prints_the_packaged_script_running_this_xdsgen() -> None:
    result = cron_script()
    assert result.returncode == 0, result.stderr
    packaged = APPLY_SH.read_text().splitlines()
    printed = result.stdout.splitlines()
    assert len(printed) == len(packaged)
    differ = [(a, b) for a, b in zip(packaged, printed) if a != b]
    assert differ == [
        (
            "xdsgen=${XDSGEN:-xdsgen} # default: set by xdsgen cron-script",
            f'xdsgen=${{XDSGEN:-"{sys.executable} -m xdsgen"}}',
        )
    ]


def test_cron_script_installs_where_cron_finds_it(bin_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "usr" / "share" / "xdsgen" / "apply.sh"
    result = cron_script(str(target))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"wrote {target}; crontab line: */15 * * * * {target} /etc/xdsgen/inventory.yaml\n"
    )
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert oct(target.parent.stat().st_mode & 0o777) == "0o755"
    assert target.read_text() == cron_script().stdout
    # Again: same file, still executable, nothing else in its directory.
    target.chmod(0o644)
    assert cron_script(str(target)).returncode == 0
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert [p.name for p in target.parent.iterdir()] == ["apply.sh"]

    # Cron's environment: no xdsgen on PATH (the stand-in is removed), no PYTHONPATH. The
    # installed copy runs this xdsgen by its interpreter's full path.
    (bin_dir / "xdsgen").unlink()
    inventory = make_inventory(tmp_path)
    config = tmp_path / "config"
    result = run_script(
        bin_dir, str(inventory), str(config), env={**FAST, "PYTHONPATH": ""}, script=target
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (config / "lds.yaml").is_file()
    assert "ARGS -t xdsgen -p daemon.notice" in syslog(bin_dir)


def test_cron_script_reports_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cron_script(str(blocker / "apply.sh"))
    assert result.returncode == 6
    target = blocker / "apply.sh"
    assert result.stderr == f"error: cannot write {target}: {blocker} is not a directory\n"
