"""`xdsgen import`: hand-written v3 and v2 configs become inventory drafts; renders round-trip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from harness import EXAMPLE, envoy_binary

from xdsgen.cli import main
from xdsgen.envoycheck import check_with_envoy
from xdsgen.importer import duration_text, import_files, import_to
from xdsgen.pipeline import load_model, render, write_plain

HERE = Path(__file__).resolve().parent
CASES = HERE / "import_cases"
GOLDEN = sorted(
    p / "inventory.yaml" for p in (HERE / "cases").iterdir() if (p / "inventory.yaml").is_file()
)


def draft(tmp_path: Path, case: str) -> tuple[Any, Path]:
    """Import a case into tmp_path/draft.yaml, checking the draft is a valid inventory."""
    lds, cds = CASES / case / "lds.yaml", CASES / case / "cds.yaml"
    out = tmp_path / "draft.yaml"
    result, text, problems = import_to(str(lds), str(cds), str(out))
    assert problems == [], [p.format() for p in problems]
    assert out.read_text() == text
    return result, out


def notes_with(result: Any, text: str) -> list[str]:
    return [n for n in result.notes if text in n]


def test_v3_pair(tmp_path: Path) -> None:
    result, out = draft(tmp_path, "v3")
    inv = yaml.safe_load(out.read_text())
    assert not result.v2
    assert inv["listen"] == {"ipv4": {"address": "0.0.0.0", "http": 8080, "https": 8443}}
    # RDS is referenced as /etc/envoy/rds.yaml (a container path) and read from beside lds.yaml.
    assert inv["envoy"]["container_config_dir"] == "/etc/envoy"
    assert inv["envoy"]["config_dir"] == str(CASES / "v3")
    assert inv["envoy"]["access_log"] == "/var/log/envoy/access.log"
    assert inv["upstreams"]["web"] == {"endpoints": ["127.0.0.1:3000"], "connect_timeout": "0.25s"}
    assert inv["upstreams"]["api"]["endpoints"] == ["api1.lan:8000", "api2.lan:8000"]
    assert inv["upstreams"]["nas"] == "192.168.1.20:5001"
    assert inv["upstreams"]["dns"] == "[fd00::53]:53"
    assert inv["certificates"] == {
        "app.example.com": {
            "cert": "/etc/ssl/app.example.com/fullchain.pem",
            "key": "/etc/ssl/app.example.com/privkey.pem",
        }
    }
    app, default = inv["http"]
    assert app == {
        "domains": ["app.example.com"],
        "tls": "app.example.com",
        "redirect_to_https": True,
        "routes": [
            {"prefix": "/api/", "upstream": "api", "timeout": "30s"},
            {"prefix": "/", "upstream": "web"},
        ],
    }
    assert default["routes"] == [
        {"prefix": "/ws", "upstream": "web", "websocket": True},
        {"prefix": "/old/", "upstream": "web", "rewrite": "/new/"},
        {"prefix": "/", "upstream": "web"},
    ]
    assert inv["tls_passthrough"] == [{"sni": ["nas.example.com"], "upstream": "nas"}]
    assert inv["tcp"] == [{"port": 2222, "upstream": "ssh"}]
    assert inv["udp"] == [{"port": 5353, "upstream": "dns"}]
    # Everything it could not express is reported, with where it was.
    assert notes_with(result, "cluster 'api': lb_policy LEAST_REQUEST")
    assert notes_with(result, "cluster 'api': health_checks cannot be expressed")
    assert notes_with(result, "envoy.filters.http.cors cannot be expressed")
    assert notes_with(result, "vhost 'everything_else' routes[0]: match on safe_regex")
    header = out.read_text().split("version: 1", 1)[0]
    assert all(note in header for note in result.notes)


def test_v2_pair(tmp_path: Path) -> None:
    result, out = draft(tmp_path, "v2")
    inv = yaml.safe_load(out.read_text())
    assert result.v2 and "v2 names" in result.notes[0]
    assert inv["listen"] == {
        "ipv4": {"address": "0.0.0.0", "http": 80},
        "ipv6": {"address": "::", "https": 443},
    }
    assert inv["envoy"]["access_log"] == "off"
    assert inv["upstreams"]["service_lede"]["endpoints"] == ["127.0.0.1:81"]  # v2 `hosts:`
    assert inv["upstreams"]["home_assistant"]["tls"] == {
        "sni": "homeassistant.lan",
        "verify": False,
    }
    assert inv["certificates"]["router"] == {
        "cert": "/etc/ssl/router/fullchain.pem",
        "key": "/etc/ssl/router/privkey.pem",
    }
    plain, tls = inv["http"]
    assert plain["routes"] == [
        {"prefix": "/grafana/", "upstream": "grafana", "rewrite": "/"},
        {"prefix": "/ha/", "upstream": "home_assistant", "websocket": True},  # use_websocket
        {"prefix": "/", "upstream": "service_lede"},
    ]
    assert tls == {
        "domains": ["router.example.com"],
        "tls": "router",
        "families": ["ipv6"],
        "routes": [{"prefix": "/", "upstream": "service_lede"}],
    }
    assert inv["tcp"] == [{"port": 4450, "upstream": "smb", "families": ["ipv4"]}]
    assert notes_with(result, "cluster 'grafana': LOGICAL_DNS becomes strict DNS")
    assert notes_with(result, "cluster 'grafana': dns_lookup_family V4_ONLY")


@pytest.mark.envoy
@pytest.mark.parametrize("case", ["v3", "v2"])
def test_drafts_render_to_configs_envoy_accepts(tmp_path: Path, case: str) -> None:
    _, out = draft(tmp_path, case)
    model = load_model(str(out), config_dir=str(tmp_path / "config"))
    check_with_envoy(model, render(model), envoy_binary(), stand_ins=True)


@pytest.mark.parametrize("inventory", [EXAMPLE, *GOLDEN], ids=lambda p: p.parent.name)
def test_round_trip_import_of_a_render_renders_the_same(tmp_path: Path, inventory: Path) -> None:
    original = load_model(str(inventory))
    files = render(original)
    config = tmp_path / "config"
    write_plain(str(config), files)
    result, _, problems = import_to(
        str(config / "lds.yaml"), str(config / "cds.yaml"), str(tmp_path / "draft.yaml")
    )
    assert problems == []
    assert result.notes == []
    again = render(load_model(str(tmp_path / "draft.yaml")))
    assert again.files == files.files


def test_missing_rds_file_is_reported(tmp_path: Path) -> None:
    shutil.copy(CASES / "v3" / "lds.yaml", tmp_path / "lds.yaml")
    shutil.copy(CASES / "v3" / "cds.yaml", tmp_path / "cds.yaml")
    result = import_files(str(tmp_path / "lds.yaml"), str(tmp_path / "cds.yaml"))
    assert notes_with(result, "RDS file /etc/envoy/rds.yaml not found")
    assert [v["domains"] for v in result.inventory["http"]] == [["app.example.com"]]


def test_durations() -> None:
    assert duration_text("0.25s") == "0.25s"
    assert duration_text({"seconds": 1, "nanos": 500000000}) == "1.5s"
    assert duration_text({"seconds": 30}) == "30s"
    assert duration_text(None) is None


def test_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    lds, cds = str(CASES / "v2" / "lds.yaml"), str(CASES / "v2" / "cds.yaml")
    result = runner.invoke(main, ["import", lds, cds])
    assert result.exit_code == 0, result.output
    assert "upstreams:" in result.stdout
    assert "note: v2 names" in result.stderr
    out = tmp_path / "inventory.yaml"
    assert runner.invoke(main, ["import", lds, cds, "-o", str(out)]).exit_code == 0
    again = runner.invoke(main, ["import", lds, cds, "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr
    assert runner.invoke(main, ["import", lds, cds, "-o", str(out), "--force"]).exit_code == 0
    assert oct(os.stat(out).st_mode & 0o777) == "0o644"
    # A listener naming a cluster that CDS lacks: the draft is written, exit 1 says it needs edits.
    partial = tmp_path / "cds.yaml"
    doc = yaml.safe_load(Path(cds).read_text())
    doc["resources"] = [r for r in doc["resources"] if r["name"] != "smb"]
    partial.write_text(yaml.safe_dump(doc))
    draft_path = tmp_path / "partial.yaml"
    result = runner.invoke(main, ["import", lds, str(partial), "-o", str(draft_path)])
    assert result.exit_code == 1
    assert draft_path.exists()
    assert "upstream 'smb' is used but not in" in result.stderr
    assert "unknown upstream 'smb'" in result.stderr
    result = runner.invoke(main, ["import", str(tmp_path / "nope.yaml"), cds])
    assert result.exit_code == 6 and "file not found" in result.stderr
