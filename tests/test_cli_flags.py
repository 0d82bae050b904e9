"""What every command promises: --no-color, -q/--quiet and -v/--verbose are accepted
(also before the command), the top-level help fits 80 columns without cutting a
description, and validate --strict counts what it reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
from harness import write_inventory

from xdsgen.cli import main

FLAGS = ("--no-color", "-q", "--quiet", "-v", "--verbose")


def every_command() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in main.commands.items():
        found.append((name, command))
        for sub, child in getattr(command, "commands", {}).items():
            found.append((f"{name} {sub}", child))
    return found


def test_every_command_accepts_the_output_flags() -> None:
    for name, command in every_command():
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        missing = [flag for flag in FLAGS if flag not in options]
        assert missing == [], f"xdsgen {name} lacks {missing}"


def _run(*args: str, columns: str = "80") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": columns}
    return subprocess.run(
        [sys.executable, "-m", "xdsgen", *args], capture_output=True, text=True, env=env
    )


def test_quiet_before_or_after_the_command_silences_success(tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path / "inv.yaml",
        {
            "version": 1,
            "envoy": {"config_dir": str(tmp_path / "out"), "access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
            "upstreams": {"app": "127.0.0.1:3000"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        },
    )
    loud = _run("render", str(inventory))
    assert loud.returncode == 0 and loud.stderr.startswith("wrote 3 of 3 files")
    for args in (["-q", "render", str(inventory)], ["render", "-q", str(inventory)]):
        result = _run(*args)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), args
    for command in (["bootstrap"], ["firewall"], ["validate"]):
        result = _run("-q", *command, str(inventory))
        assert result.returncode == 0 and result.stderr == "", command


def test_top_level_help_fits_80_columns_and_cuts_nothing() -> None:
    result = _run("--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    commands = lines[lines.index("Commands:") + 1 :]
    described = [line for line in commands if line.startswith("  ") and line.strip()]
    assert len(described) >= len(main.commands)
    assert not any(line.rstrip().endswith(("...", "\u2026")) for line in described), described


def test_validate_strict_reports_and_counts_warnings_as_errors(tmp_path: Path) -> None:
    inventory = write_inventory(
        tmp_path / "inv.yaml",
        {
            "version": 1,
            "envoy": {"access_log": "off"},
            "listen": {"ipv4": {"address": "127.0.0.1", "http": 8080}},
            "upstreams": {"app": "127.0.0.1:3000", "spare": "127.0.0.1:3001"},
            "http": [{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "app"}]}],
        },
    )
    relaxed = _run("validate", str(inventory))
    assert relaxed.returncode == 0 and ": warning: upstreams.spare:" in relaxed.stderr
    strict = _run("validate", "--strict", str(inventory))
    assert strict.returncode == 1
    assert ": error: upstreams.spare:" in strict.stderr and ": warning:" not in strict.stderr
    assert strict.stderr.rstrip().endswith("1 error; invalid.")
