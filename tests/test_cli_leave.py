"""render, validate and apply leave with os._exit (xdsgen/cli/leave.py): no interpreter
teardown, yet every line is out and the exit status is the command's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import EXAMPLE

# The console script's code, plus an atexit handler: it runs only on an ordinary exit.
_RUN = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('ORDINARY EXIT', file=sys.stderr))\n"
    "sys.argv = ['xdsgen', *sys.argv[1:]]\n"
    "from xdsgen.cli.leave import run\n"
    "run()\n"
)


def _xdsgen(*args: str) -> subprocess.CompletedProcess[str]:
    # Pipes, not a terminal: Python buffers stdout, so a missing flush would lose lines.
    return subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_render_leaves_fast_with_its_last_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _xdsgen("render", str(EXAMPLE), "-o", str(out), "-v")
    assert done.returncode == 0, done.stderr
    assert "ORDINARY EXIT" not in done.stderr
    # The result line is the last thing said (on stderr without a terminal).
    assert done.stderr.rstrip().splitlines()[-1].startswith("wrote ")
    assert (out / "cds.yaml").exists() and (out / "lds.yaml").exists()


def test_render_to_stdout_prints_every_file(tmp_path: Path) -> None:
    done = _xdsgen("render", str(EXAMPLE), "--stdout")
    assert done.returncode == 0 and "ORDINARY EXIT" not in done.stderr
    # Every file, to its last line (block-buffered stdout, flushed before os._exit).
    assert done.stdout.count("# --- ") >= 4
    assert done.stdout.endswith("\n") and "# --- sds_" in done.stdout


def test_an_error_leaves_fast_with_its_message_and_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlisten: {ipv4: {address: 127.0.0.1, http: 80}}\nhttp: 7\n")
    done = _xdsgen("render", str(bad), "-o", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "ORDINARY EXIT" not in done.stderr
    assert "bad.yaml:3" in done.stderr
    assert not (tmp_path / "out").exists()


def test_validate_leaves_fast_with_its_summary() -> None:
    done = _xdsgen("validate", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert "ORDINARY EXIT" not in done.stderr
    assert "valid:" in done.stdout


def test_other_commands_exit_as_python_does() -> None:
    """Only the commands that opted in skip the teardown."""
    done = _xdsgen("schema")
    assert done.returncode == 0
    assert "ORDINARY EXIT" in done.stderr
    assert '"$schema"' in done.stdout
    usage = _xdsgen("render")  # click's usage error (exit 2) comes before the command runs
    assert usage.returncode == 2 and "ORDINARY EXIT" in usage.stderr


def test_python_m_xdsgen_and_the_console_script_use_it() -> None:
    main = (Path(__file__).resolve().parent.parent / "xdsgen" / "__main__.py").read_text()
    assert "from xdsgen.cli.leave import run" in main
    from importlib import metadata

    (entry,) = [
        e
        for e in metadata.distribution("xdsgen").entry_points
        if e.group == "console_scripts" and e.name == "xdsgen"
    ]
    assert entry.value == "xdsgen.cli.leave:run"
