"""Terminal output: plain for cron and pipes, rich colour on a TTY, same words either way."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from xdsgen.errors import Problem
from xdsgen.report.console import Console, plain_table

ANSI = re.compile(r"\x1b\[[0-9;]*m")
REPO = Path(__file__).resolve().parent.parent
XDSGEN = [sys.executable, "-m", "xdsgen"]

BAD_INVENTORY = """\
version: 1
listen:
  ipv4: {address: 127.0.0.1, http: 18080}
upstreams:
  grafana: 127.0.0.1:3000
http:
  - domains: [router.example.com]
    routes:
      - {prefix: /grafana/, upstream: grafan}
"""


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclass
class Change:
    action: str
    kind: str
    name: str
    detail: str = ""


def test_plan_plain_one_line_per_change_and_totals() -> None:
    out = io.StringIO()
    console = Console(color=False, out=out)
    totals = console.plan(
        [
            ("+", "cluster", "grafana"),
            {"action": "~", "kind": "listener", "name": "http_ipv4", "detail": "port 80 -> 8080"},
            Change("-", "route", "rds_https_ipv6"),
            ("+", "secret", "router"),
        ]
    )
    assert totals == "2 to add, 1 to change, 1 to remove"
    lines = out.getvalue().splitlines()
    assert [line.split()[:3] for line in lines[:4]] == [
        ["+", "cluster", "grafana"],
        ["~", "listener", "http_ipv4"],
        ["-", "route", "rds_https_ipv6"],
        ["+", "secret", "router"],
    ]
    assert lines[1].endswith("port 80 -> 8080")
    assert lines[-1] == totals
    assert not ANSI.search(out.getvalue())


def test_plan_rich_has_colour_and_the_same_words() -> None:
    out = io.StringIO()
    Console(color=True, out=out, width=100).plan(
        [("+", "cluster", "grafana"), ("-", "listener", "tcp_139_ipv4")]
    )
    text = out.getvalue()
    assert "\x1b[" in text  # coloured
    plain = ANSI.sub("", text)
    assert re.search(r"\+\s+cluster\s+grafana", plain)
    assert re.search(r"-\s+listener\s+tcp_139_ipv4", plain)
    assert "1 to add, 0 to change, 1 to remove" in plain


def test_plan_empty_and_quiet() -> None:
    out = io.StringIO()
    assert Console(out=out).plan([]) == "0 to add, 0 to change, 0 to remove"
    assert out.getvalue() == "no changes\n"
    out = io.StringIO()
    Console(out=out, quiet=True).plan([("+", "cluster", "a")])
    assert out.getvalue() == ""
    with pytest.raises(ValueError):
        Console(out=io.StringIO()).plan([("?", "cluster", "a")])


def test_error_block_shows_the_inventory_line_and_a_caret(tmp_path: Path) -> None:
    source = tmp_path / "inv.yaml"
    source.write_text(BAD_INVENTORY)
    err = io.StringIO()
    problem = Problem(
        9, 39, "http[0].routes[0].upstream", "unknown upstream 'grafan'", source=str(source)
    )
    Console(err=err).problems([problem])
    lines = err.getvalue().splitlines()
    assert lines[0] == problem.format()
    assert lines[1] == "    9 |       - {prefix: /grafana/, upstream: grafan}"
    assert lines[2].index("^") == lines[1].index("grafan}")


def test_plain_table_aligns_columns() -> None:
    assert plain_table(["name", "n"], [["a", "1"], ["long", "22"]]) == [
        "name  n",
        "a     1",
        "long  22",
    ]


def test_detect_respects_no_color_tty_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert Console.detect(out=FakeTty(), err=FakeTty()).color
    assert not Console.detect(out=io.StringIO(), err=io.StringIO()).color  # not a TTY
    assert not Console.detect(no_color=True, out=FakeTty(), err=FakeTty()).color
    monkeypatch.setenv("NO_COLOR", "1")
    assert not Console.detect(out=FakeTty(), err=FakeTty()).color


# --------------------------------------------------------------------------- the CLI on a PTY


def run_on_pty(args: list[str], env_extra: dict[str, str], python_prelude: str = "") -> str:
    """Run xdsgen with stdout and stderr on a pseudo-terminal, as a person would see it."""
    import pty

    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update({"TERM": "xterm-256color", "COLUMNS": "120", **env_extra})
    code = (
        f"{python_prelude}\nimport sys\nsys.argv = ['xdsgen', *{args!r}]\n"
        "from xdsgen.cli import main\nmain()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=REPO,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(10)
    os.close(primary)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture
def bad_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_INVENTORY)
    return path


def test_pty_error_is_coloured_and_shows_the_line(bad_inventory: Path) -> None:
    text = run_on_pty(["validate", str(bad_inventory)], {})
    assert "\x1b[" in text
    plain = ANSI.sub("", text)
    assert f"{bad_inventory}:9:" in plain
    assert "- {prefix: /grafana/, upstream: grafan}" in plain
    assert "did you mean 'grafana'" in plain


@pytest.mark.parametrize(
    ("args", "env", "prelude"),
    [
        (["--no-color"], {}, ""),
        ([], {"NO_COLOR": "1"}, ""),
        ([], {}, "import sys; sys.modules['rich'] = None"),  # rich not installed (OpenWrt)
    ],
    ids=["--no-color", "NO_COLOR", "rich-missing"],
)
def test_pty_plain_when_asked_or_without_rich(
    bad_inventory: Path, args: list[str], env: dict[str, str], prelude: str
) -> None:
    text = run_on_pty([*args, "validate", str(bad_inventory)], env, prelude)
    assert "\x1b[" not in text, text
    assert "Traceback" not in text
    assert "- {prefix: /grafana/, upstream: grafan}" in text
    assert "^" in text


def test_validate_summary_plain_quiet_and_verbose() -> None:
    example = str(REPO / "examples" / "home-router.yaml")
    plain = subprocess.run(
        [*XDSGEN, "validate", example], capture_output=True, text=True, check=True
    )
    assert plain.stdout.startswith(f"{example}: valid: 10 upstreams, 3 vhosts")
    assert not ANSI.search(plain.stdout + plain.stderr)  # a pipe is not a TTY
    quiet = subprocess.run(
        [*XDSGEN, "validate", "-q", example], capture_output=True, text=True, check=True
    )
    assert quiet.stdout == ""
    verbose = subprocess.run(
        [*XDSGEN, "-v", "validate", example], capture_output=True, text=True, check=True
    )
    table = verbose.stdout.splitlines()[1:]
    assert table[0].split() == ["family", "http", "https", "tcp", "udp"]
    assert table[1].split() == ["ipv4", "80", "8443", "139", "4450", "6800", "6881", "6881"]
    assert table[2].split() == ["ipv6", "80", "443", "139", "4450", "6881", "123", "6881"]


def test_validate_summary_rich_on_pty() -> None:
    text = ANSI.sub("", run_on_pty(["validate", "examples/home-router.yaml"], {}))
    assert "valid: 10 upstreams" in text
    assert re.search(r"^\s*ipv6\s+80\s+443\s+139 4450 6881\s+123 6881\s*$", text, re.M)


def test_help_imports_only_click() -> None:
    code = (
        "import sys\nsys.argv = ['xdsgen', '--help']\nfrom xdsgen.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'yaml', 'jinja2', 'jsonschema', 'watchfiles'))\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("HEAVY []")
