"""The core commands through click: validate, render, bootstrap, --version, exit codes, and
packaging (a built wheel carries the templates and the schema and works outside the checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from harness import EXAMPLE, REPO, write_inventory

from xdsgen import __version__
from xdsgen.cli import main
from xdsgen.errors import EXIT_CODES, EXIT_INVALID, EXIT_OK, EXIT_USAGE

CASES = Path(__file__).parent / "cases"
MINIMAL = CASES / "minimal-http" / "inventory.yaml"


def run(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def minimal(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load(MINIMAL.read_text())
    data["envoy"] = {"config_dir": str(tmp_path / "config")}
    data.update(changes)
    return write_inventory(tmp_path / "inventory.yaml", data)


# --------------------------------------------------------------------------- validate


def test_validate_valid_prints_one_summary_line() -> None:
    result = run("validate", str(MINIMAL))
    assert result.exit_code == EXIT_OK
    assert result.stdout == (
        f"{MINIMAL}: valid: 1 upstream, 1 vhost, 1 route, 0 certificates; ipv4: http 8080\n"
    )
    assert result.stderr == ""


def test_validate_example_summarizes_both_families() -> None:
    result = run("validate", str(EXAMPLE))
    assert result.exit_code == EXIT_OK
    (line,) = result.stdout.splitlines()
    assert line == (
        f"{EXAMPLE}: valid: 10 upstreams, 3 vhosts, 5 routes, 1 certificate; "
        "ipv4: http 80, https 8443, tcp 139, 4450, 6800, 6881, udp 6881; "
        "ipv6: http 80, https 443, tcp 139, 4450, 6881, udp 123, 6881"
    )
    # The example names certificate files of the router: warnings, not errors, for validate.
    missing = "/etc/ssl/router.example.com/fullchain.pem does not exist"
    assert f"warning: certificates.router.cert: {missing}" in result.stderr


MEANING_ERRORS = """\
version: 1
listen:
  ipv4: {address: 0.0.0.0, http: 8080, https: 8443}
upstreams:
  grafana: 127.0.0.1:3000
  nas: 192.168.1.20:5001
  broken: 127.0.0.1
  v6: "fd00::1:53"
certificates:
  site: {cert: /nonexist/c.pem, key: /nonexist/k.pem}
http:
  - domains: [nas.example.com]
    tls: site
    routes:
      - {prefix: /, upstream: grafna}
  - domains: [app.example.com, NAS.example.com]
    routes:
      - {prefix: /, upstream: grafana}
  - domains: [v6.example.com]
    tls: sitee
    families: [ipv6]
    routes:
      - {prefix: /, upstream: grafana}
tls_passthrough:
  - {sni: [nas.example.com], upstream: nas}
tcp:
  - {port: 8080, upstream: nas}
udp:
  - {port: 8080, upstream: nas}
"""


def test_validate_lists_every_meaning_problem_with_position_path_and_hint(tmp_path: Path) -> None:
    inventory = tmp_path / "bad.yaml"
    inventory.write_text(MEANING_ERRORS)
    result = run("validate", str(inventory))
    assert result.exit_code == EXIT_INVALID
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    src = str(inventory)
    assert errors == [
        f"{src}:7:3: error: upstreams.broken: malformed host:port '127.0.0.1' "
        "(write HOST:PORT, IPv6 as [addr]:port)",
        f"{src}:8:3: error: upstreams.v6: IPv6 address must be in brackets: [fd00::1]:53 "
        "(write HOST:PORT, IPv6 as [addr]:port)",
        f"{src}:15:21: error: http[0].routes[0].upstream: unknown upstream 'grafna' "
        "(did you mean 'grafana'?)",
        f"{src}:16:32: error: http[1].domains[1]: domain 'NAS.example.com' is already served by "
        "http[0] on ipv4 (a domain may be in one vhost per listener)",
        f"{src}:20:5: error: http[2].tls: unknown certificate 'sitee' (did you mean 'site'?)",
        f"{src}:21:16: error: http[2].families[0]: family 'ipv6' has no entry in listen "
        "(add listen.ipv6, or remove it here)",
        f"{src}:25:12: error: tls_passthrough[0].sni[0]: SNI 'nas.example.com' is both passed "
        "through and terminated by http[0] on ipv4 (Envoy can do only one of them for a name)",
        f"{src}:27:6: error: tcp[0].port: ipv4 port 8080 is already used by the http listener "
        "(line 3) (every listener of a family needs its own port)",
    ]
    # udp has its own port space: udp 8080 next to http 8080 is fine.
    assert "udp[0]" not in result.stderr
    assert result.stderr.rstrip().endswith(f"{len(errors)} errors; invalid.")


def test_validate_schema_problems_are_located(tmp_path: Path) -> None:
    inventory = tmp_path / "schema.yaml"
    inventory.write_text(
        "version: 1\n"
        "listen:\n"
        "  ipv4: {address: 0.0.0.0, http: 8080}\n"
        "upstreams:\n"
        "  app: 127.0.0.1:3000\n"
        "tcp:\n"
        "  - {port: 70000, upstream: app}\n"
        "  - {port: 0, upstream: app}\n"
    )
    result = run("validate", str(inventory))
    assert result.exit_code == EXIT_INVALID
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == [
        f"{inventory}:7:6: error: tcp[0].port: port 70000 is outside 1-65535",
        f"{inventory}:8:6: error: tcp[1].port: port 0 is outside 1-65535",
    ]
    assert result.stderr.rstrip().endswith("2 errors; invalid.")


def test_validate_json_format(tmp_path: Path) -> None:
    import json

    result = run("validate", "--format", "json", str(MINIMAL))
    assert result.exit_code == EXIT_OK
    answer = json.loads(result.stdout)
    assert answer["valid"] is True
    assert answer["summary"]["listeners"] == {"ipv4": ["http 8080"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\x00\xff\xfe", "NUL bytes"),
        (b"- a\n- b\n", "must be a mapping"),
        (b"version: 1\nlisten: {ipv4: {address: 0.0.0.0, http: 80}\n", ""),  # unclosed flow mapping
        (b"version: 1\n\tlisten: {}\n", ""),  # a tab
        (b"[" * 5000, ""),
    ],
)
def test_validate_never_shows_a_traceback(tmp_path: Path, content: bytes, message: str) -> None:
    inventory = tmp_path / "weird.yaml"
    inventory.write_bytes(content)
    result = run("validate", str(inventory))
    assert result.exit_code == EXIT_INVALID
    assert message in result.stderr
    assert result.stderr.rstrip().endswith("invalid.")


def test_validate_missing_file(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == EXIT_INVALID
    assert "file not found" in result.stderr


# --------------------------------------------------------------------------- render


def _stat(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def test_render_out_dir_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("render", str(MINIMAL), "-o", str(out))
    assert result.exit_code == EXIT_OK
    assert sorted(os.listdir(out)) == ["cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"]
    assert result.stderr == f"wrote 3 of 3 files to {out}\n"
    # cds and rds do not name the directory: byte-identical to the golden files.
    for name in ("cds.yaml", "rds_http_ipv4.yaml"):
        assert (out / name).read_text() == (CASES / "minimal-http" / "expected" / name).read_text()
    lds = yaml.safe_load((out / "lds.yaml").read_text())
    rds = lds["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]["rds"]
    assert rds["config_source"]["path_config_source"]["path"] == str(out / "rds_http_ipv4.yaml")
    for name in os.listdir(out):
        assert (out / name).stat().st_mode & 0o777 == 0o644


def test_render_relative_out_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("render", str(MINIMAL), "-o", "rel").exit_code == EXIT_OK
    lds = (tmp_path / "rel" / "lds.yaml").read_text()
    assert f'path: "{tmp_path / "rel" / "rds_http_ipv4.yaml"}"' in lds


def test_render_second_run_touches_nothing_and_a_change_rewrites_only_its_file(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    assert run("render", str(MINIMAL), "-o", str(out)).exit_code == EXIT_OK
    before = _stat(out)
    result = run("render", str(MINIMAL), "-o", str(out))
    assert result.exit_code == EXIT_OK
    assert result.stderr == f"{out}: all 3 files already up to date, nothing written\n"
    assert _stat(out) == before

    changed = minimal(tmp_path, upstreams={"app": "127.0.0.1:3001"})
    result = run("render", str(changed), "-o", str(out))
    assert result.exit_code == EXIT_OK
    assert result.stderr == f"wrote 1 of 3 files to {out} (2 unchanged)\n"
    assert run("-q", "render", str(changed), "-o", str(out)).stderr == ""
    after = _stat(out)
    assert {name for name in after if after[name] != before[name]} == {"cds.yaml"}
    assert "port_value: 3001" in (out / "cds.yaml").read_text()


def test_render_defaults_to_the_inventorys_config_dir(tmp_path: Path) -> None:
    inventory = minimal(tmp_path)
    assert run("render", str(inventory)).exit_code == EXIT_OK
    assert sorted(os.listdir(tmp_path / "config")) == ["cds.yaml", "lds.yaml", "rds_http_ipv4.yaml"]
    # A relative config_dir is relative to the inventory, not to the working directory.
    relative = minimal(tmp_path, envoy={"config_dir": "relative-out"})
    assert run("render", str(relative)).exit_code == EXIT_OK
    assert (tmp_path / "relative-out" / "cds.yaml").is_file()


def test_render_stdout_prints_every_file_and_writes_nothing(tmp_path: Path) -> None:
    inventory = minimal(tmp_path)
    result = run("render", str(inventory), "--stdout")
    assert result.exit_code == EXIT_OK
    assert not (tmp_path / "config").exists()
    headers = [line for line in result.stdout.splitlines() if line.startswith("# --- ")]
    assert headers == ["# --- cds.yaml", "# --- lds.yaml", "# --- rds_http_ipv4.yaml"]
    cds = result.stdout.split("# --- cds.yaml\n")[1].split("# --- lds.yaml\n")[0]
    assert cds == (CASES / "minimal-http" / "expected" / "cds.yaml").read_text()


def test_render_invalid_writes_nothing(tmp_path: Path) -> None:
    inventory = minimal(
        tmp_path, http=[{"domains": ["*"], "routes": [{"prefix": "/", "upstream": "nope"}]}]
    )
    out = tmp_path / "out"
    result = run("render", str(inventory), "-o", str(out))
    assert result.exit_code == EXIT_INVALID
    assert "unknown upstream 'nope'" in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_defaults(tmp_path: Path) -> None:
    result = run("bootstrap", str(MINIMAL))
    assert result.exit_code == EXIT_OK
    boot = yaml.safe_load(result.stdout)
    assert boot["admin"]["address"] == {"pipe": {"path": "/etc/envoy/admin.sock", "mode": 0o660}}
    dynamic = boot["dynamic_resources"]
    for kind, file_name in (("cds_config", "cds.yaml"), ("lds_config", "lds.yaml")):
        assert dynamic[kind]["resource_api_version"] == "V3"
        assert dynamic[kind]["path_config_source"]["path"] == f"/etc/envoy/{file_name}"
    (monitor,) = boot["overload_manager"]["resource_monitors"]
    assert monitor["typed_config"]["max_active_downstream_connections"] == 1024
    assert boot["node"]["id"] == "xdsgen"
    assert result.stdout == (CASES / "minimal-http" / "expected" / "bootstrap.yaml").read_text()


def test_bootstrap_output_file_and_config_dir(tmp_path: Path) -> None:
    target = tmp_path / "envoy.yaml"
    result = run(
        "bootstrap", str(MINIMAL), "-o", str(target), "--config-dir", str(tmp_path / "xds")
    )
    assert result.exit_code == EXIT_OK
    assert result.stdout == ""
    assert result.stderr == f"wrote {target}\n"
    # The default admin socket moves with the config directory.
    boot = yaml.safe_load(target.read_text())
    assert boot["admin"]["address"]["pipe"]["path"] == str(tmp_path / "xds" / "admin.sock")
    boot = yaml.safe_load(target.read_text())
    assert boot["dynamic_resources"]["lds_config"]["path_config_source"]["path"] == str(
        tmp_path / "xds" / "lds.yaml"
    )
    assert boot["dynamic_resources"]["cds_config"]["path_config_source"]["path"] == str(
        tmp_path / "xds" / "cds.yaml"
    )


def test_bootstrap_uses_the_inventorys_admin_and_limits(tmp_path: Path) -> None:
    inventory = minimal(
        tmp_path, envoy={"admin": "[::1]:15002", "max_connections": 64, "node_id": "router"}
    )
    boot = yaml.safe_load(run("bootstrap", str(inventory)).stdout)
    assert boot["admin"]["address"]["socket_address"] == {"address": "::1", "port_value": 15002}
    assert (
        boot["overload_manager"]["resource_monitors"][0]["typed_config"][
            "max_active_downstream_connections"
        ]
        == 64
    )
    assert boot["node"] == {"id": "router", "cluster": "router"}


def test_bootstrap_refuses_a_non_loopback_admin(tmp_path: Path) -> None:
    inventory = minimal(tmp_path, envoy={"admin": "0.0.0.0:15001"})
    result = run("bootstrap", str(inventory))
    assert result.exit_code == EXIT_INVALID
    assert "envoy.admin: admin address 0.0.0.0 is not loopback" in result.stderr
    assert result.stdout == ""


# --------------------------------------------------------------------------- version, exit codes


def _python_m(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xdsgen", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_python_m_version(tmp_path: Path) -> None:
    done = _python_m("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, f"xdsgen, version {__version__}\n")


def test_python_m_works_like_the_script(tmp_path: Path) -> None:
    done = _python_m("validate", str(MINIMAL), cwd=tmp_path)
    assert done.returncode == EXIT_OK
    assert done.stdout == run("validate", str(MINIMAL)).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(MEANING_ERRORS)
    done = _python_m("validate", str(bad), cwd=tmp_path)
    assert done.returncode == EXIT_INVALID
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],  # missing argument
        ["validate", "--bogus", "x"],
        ["no-such-command"],
        ["render", str(MINIMAL), "--out-dir"],  # option without its value
        ["validate", "--format", "xml", str(MINIMAL)],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Usage:" in result.stderr or "Error:" in result.stderr


def test_exit_codes_are_documented_in_help() -> None:
    result = run("--help")
    assert result.exit_code == EXIT_OK
    text = " ".join(result.stdout.split())
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in text
    assert EXIT_CODES[0].startswith("success") and EXIT_CODES[1].startswith("invalid inventory")
    assert EXIT_CODES[2].startswith("usage error")


# --------------------------------------------------------------------------- packaging


@pytest.mark.slow
def test_wheel_carries_templates_and_schema_and_works_outside_the_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("xdsgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"xdsgen/templates/{p.name}" for p in (REPO / "templates").glob("*.j2")}
    assert templates >= {
        f"xdsgen/templates/{n}.yaml.j2" for n in ("bootstrap", "cds", "lds", "rds", "sds")
    }
    assert templates <= names
    assert "xdsgen/schemas/inventory.schema.json" in names

    # Unpacked first on sys.path (ahead of the editable checkout), run from elsewhere: it
    # must find its own templates and schema and render what the checkout renders.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLE, work / "inventory.yaml")
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import xdsgen, xdsgen.resources as r; print(xdsgen.__file__); "
            "print(r.directory('templates')); print(r.directory('schemas'))",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=60,
    )
    assert probe.stdout.splitlines() == [
        str(site / "xdsgen" / "__init__.py"),
        str(site / "xdsgen" / "templates"),
        str(site / "xdsgen" / "schemas"),
    ], probe.stderr
    done = subprocess.run(
        [sys.executable, "-m", "xdsgen", "render", "inventory.yaml", "-o", "out"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert run("render", str(EXAMPLE), "-o", str(tmp_path / "checkout")).exit_code == EXIT_OK
    assert sorted(os.listdir(work / "out")) == sorted(os.listdir(tmp_path / "checkout"))
    for name in os.listdir(tmp_path / "checkout"):
        # The files name their directory (and so their version_info differs): compare the rest.
        ours = (tmp_path / "checkout" / name).read_text().split("\n", 1)[1]
        theirs = (work / "out" / name).read_text().split("\n", 1)[1]
        assert ours.replace(str(tmp_path / "checkout"), "DIR") == theirs.replace(
            str(work / "out"), "DIR"
        )
