"""`xdsgen apply` / `rollback` as a command: exit codes, cron silence, dry-run, what is
(not) written. No Envoy runs here: the admin address points at a closed port, so apply
refuses to write (exit 6) unless --no-confirm lets it settle blindly between steps (the
tests with Envoy are in test_apply_envoy.py)."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import free_ports, write_inventory
from test_apply_helpers import file_facts, run_xdsgen


def inventory(
    tmp_path: Path, name: str = "inventory", upstream: str = "127.0.0.1:3000", **extra: Any
) -> Path:
    (admin,) = free_ports(1)  # nothing listens there
    data = {
        "version": 1,
        "envoy": {"config_dir": str(tmp_path / "config"), "admin": f"127.0.0.1:{admin}"},
        "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
        "upstreams": {"app": upstream},
        "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        **extra,
    }
    return write_inventory(tmp_path / f"{name}.yaml", data)


FAST = ("--settle", "0", "--no-envoy-check", "--no-confirm")


def test_first_apply_writes_world_readable_files_and_state(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    result = run_xdsgen("apply", str(path), *FAST)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # no TTY, no --verbose: silent on success
    assert "nothing was confirmed" in result.stderr  # but never silent about that
    config = tmp_path / "config"
    assert sorted(p.name for p in config.iterdir()) == [
        ".xdsgen",
        "cds.yaml",
        "lds.yaml",
        "rds_http_ipv4.yaml",
    ]
    for name in ("cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"):
        assert (
            stat.S_IMODE((config / name).stat().st_mode) == 0o644
        )  # Envoy's image runs as uid 101
    assert (config / ".xdsgen" / "state.json").is_file()


def test_invalid_inventory_exits_1_and_touches_nothing(tmp_path: Path) -> None:
    good = inventory(tmp_path)
    assert run_xdsgen("apply", str(good), *FAST).returncode == 0
    before = file_facts(tmp_path / "config")
    state_before = file_facts(tmp_path / "config" / ".xdsgen")
    bad = inventory(tmp_path, "bad", upstream="127.0.0.1:99999")
    result = run_xdsgen("apply", str(bad), *FAST)
    assert result.returncode == 1
    assert (
        "bad.yaml:" in result.stderr
        and "99999" in result.stderr
        and "nothing written" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert file_facts(tmp_path / "config") == before
    assert file_facts(tmp_path / "config" / ".xdsgen") == state_before


def test_missing_certificate_file_is_an_error_for_apply(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        listen={"ipv4": {"address": "127.0.0.1", "http": 8080, "https": 8443}},
        certificates={
            "site": {"cert": str(tmp_path / "nope.pem"), "key": str(tmp_path / "nope.key")}
        },
        http=[
            {
                "domains": ["site.example.com"],
                "tls": "site",
                "routes": [{"prefix": "/", "upstream": "app"}],
            }
        ],
    )
    result = run_xdsgen("apply", str(path), *FAST)
    assert result.returncode == 1
    assert "nope.pem does not exist" in result.stderr
    assert not (tmp_path / "config").exists()


def test_dry_run_shows_the_plan_and_tells_by_exit_code(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    dry = run_xdsgen("apply", str(path), "--dry-run")
    assert dry.returncode == 5
    assert dry.stdout.split() == [
        "+",
        "cluster",
        "app",
        "+",
        "route",
        "http_ipv4",
        "+",
        "listener",
        "http_ipv4",
        "3",
        "to",
        "add,",
        "0",
        "to",
        "change,",
        "0",
        "to",
        "remove",
    ]
    assert not (tmp_path / "config").exists()  # a dry run writes nothing, not even the lock
    assert run_xdsgen("apply", str(path), *FAST).returncode == 0
    assert run_xdsgen("apply", str(path), "--dry-run").returncode == 0
    changed = inventory(tmp_path, "changed", upstream="127.0.0.1:3001")
    # The same config directory (inventory() picks a new admin port, which no file holds).
    diff = run_xdsgen("apply", str(changed), "--dry-run", "--diff")
    assert diff.returncode == 5
    assert diff.stdout.splitlines()[0].split() == ["~", "cluster", "app", "load_assignment"]
    assert "--- a/cds.yaml" in diff.stdout and "+++ b/cds.yaml" in diff.stdout
    assert (
        "-              port_value: 3000" in diff.stdout
        and "+              port_value: 3001" in diff.stdout
    )


def test_stale_temp_files_are_swept(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    assert run_xdsgen("apply", str(path), *FAST).returncode == 0
    config = tmp_path / "config"
    (config / ".xdsgen-tmp-abc123.yaml").write_text("half a file")
    (config / ".xdsgen" / ".xdsgen-tmp-state").write_text("{")
    changed = inventory(tmp_path, "changed", upstream="127.0.0.1:3001")
    result = run_xdsgen("apply", str(changed), *FAST, "-v")
    assert result.returncode == 0
    assert "removed .xdsgen-tmp-abc123.yaml" in result.stdout
    assert not list(config.glob(".xdsgen-tmp-*")) and not list(
        (config / ".xdsgen").glob(".xdsgen-tmp-*")
    )


def test_verbose_tells_each_step_and_that_nothing_was_confirmed(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    result = run_xdsgen("apply", str(path), *FAST, "--verbose")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "  clusters: written" in lines and "  listeners: written" in lines
    assert lines[-1] == "applied: 3 to add, 0 to change, 0 to remove; NOT confirmed (--no-confirm)"


def test_silent_admin_is_exit_6_and_nothing_is_written(tmp_path: Path) -> None:
    """A dead Envoy must not pass for success in cron: without --no-confirm, nothing is
    written when the admin does not answer."""
    path = inventory(tmp_path)
    result = run_xdsgen("apply", str(path), "--no-envoy-check", "--timeout", "0.5")
    assert result.returncode == 6, result.stderr
    assert "is unreachable" in result.stderr and "nothing was written" in result.stderr
    assert "xdsgen render" in result.stderr and "--no-confirm" in result.stderr
    assert not (tmp_path / "config" / "cds.yaml").exists()
    assert "Traceback" not in result.stderr


def test_rollback_without_history_is_a_clear_error(tmp_path: Path) -> None:
    result = run_xdsgen("rollback", "--config-dir", str(tmp_path))
    assert result.returncode == 6
    assert "no apply history" in result.stderr
    assert run_xdsgen("rollback").returncode == 6


def test_rollback_without_envoy_restores_the_files(tmp_path: Path) -> None:
    first = inventory(tmp_path)
    assert run_xdsgen("apply", str(first), *FAST).returncode == 0
    before = {n: f[2] for n, f in file_facts(tmp_path / "config").items()}
    second = inventory(
        tmp_path, "second", upstream="127.0.0.1:3001", tcp=[{"port": 4450, "upstream": "app"}]
    )
    assert run_xdsgen("apply", str(second), *FAST).returncode == 0
    result = run_xdsgen(
        "rollback", "--config-dir", str(tmp_path / "config"), "--settle", "0", "--no-confirm"
    )
    assert result.returncode == 0, result.stderr
    assert {n: f[2] for n, f in file_facts(tmp_path / "config").items()} == before


@pytest.mark.parametrize("command", ["apply", "rollback"])
def test_help_documents_the_exit_codes(command: str) -> None:
    result = run_xdsgen(command, "--help")
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    for code in (
        "0 success",
        "1 invalid inventory",
        "3 Envoy refused",
        "4 another apply",
        "5 apply --dry-run: changes would be made",
        "6 a file",
    ):
        assert code in text, code


def test_terminal_gets_colour_and_the_plan_cron_gets_neither(tmp_path: Path) -> None:
    path = inventory(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xdsgen", "apply", str(path), "--dry-run"],
        stdout=child,
        stderr=child,
        stdin=child,
        env=env,
    )
    os.close(child)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], 20)
        if not ready:
            break
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(20)
    os.close(main)
    assert proc.returncode == 5
    assert b"\x1b[" in output and b"cluster" in output
    plain = run_xdsgen("apply", str(path), "--dry-run")
    assert "\x1b[" not in plain.stdout and "cluster" in plain.stdout
