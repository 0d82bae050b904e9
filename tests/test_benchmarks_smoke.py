"""benchmarks/run.py works: every section runs in its tiny mode and reports what it measured.

A smoke test, not a timed one: numbers on a shared machine are noise, so nothing here
asserts a target. It proves the script runs end to end (real Envoy included), prints its
table, writes its JSON with the machine facts, and that the measurements are real ones
(the no-op apply wrote nothing, the watcher applied every save, Envoy loaded the files).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO, envoy_binary

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SCRIPT = REPO / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    envoy_binary()  # fails (never skips) without Envoy
    out = tmp_path_factory.mktemp("bench") / "result.json"
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["COLUMNS"] = "200"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(REPO),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


INSTALLS = ("essentials", "full")


def test_the_json_has_machine_facts_and_every_section(tiny: tuple) -> None:
    _, report = tiny
    machine = report["machine"]
    assert machine["cores"] == os.cpu_count()
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "1.40" in machine["envoy"]
    assert report["settings"]["tiny"] is True
    assert set(report["results"]) >= {
        "startup",
        "scale",
        "latency",
        "oneshot",
        "footprint",
        "noop",
        "apply_scale",
    }
    assert report["elapsed_s"] < 60
    assert "errors" not in report["results"], report["results"].get("errors")


def test_both_installs_are_measured_and_only_the_full_one_has_rich(tiny: tuple) -> None:
    _, report = tiny
    packages = report["results"]["installs"]
    assert set(packages) == set(INSTALLS)
    assert "rich" not in packages["essentials"] and "rich" in packages["full"]
    assert {"click", "Jinja2", "jsonschema", "PyYAML"} <= set(packages["essentials"])
    for section in ("startup", "latency", "oneshot", "footprint", "noop"):
        assert set(report["results"][section]) == set(INSTALLS), section


def test_startup_is_measured_against_the_floor(tiny: tuple) -> None:
    _, report = tiny
    for install in INSTALLS:
        startup = report["results"]["startup"][install]
        medians = startup["median_s"]
        for name in ("floor", "help", "validate", "render", "render_source"):
            assert 0 < medians[name] < 10, name
            assert len(startup["all_s"][name]) == startup["runs"] == 2
        # Peak RSS is the command's own (not the bench's): a bare interpreter is far smaller.
        assert 5 < startup["peak_rss_mb"]["python"] < startup["peak_rss_mb"]["floor"]
    rows = {(r["section"], r["measure"]): r for r in report["rows"]}
    help_row = rows[("start-up (essentials)", "xdsgen --help")]
    assert help_row["reference_name"] == "floor"
    assert math.isclose(help_row["ratio"], help_row["value"] / help_row["reference"], rel_tol=0.01)
    assert help_row["ok"] in (True, False) and help_row["target"] == "<= 0.6x floor"


def test_scale_renders_the_synthetic_inventory_and_envoy_loads_it(tiny: tuple) -> None:
    _, report = tiny
    scale = report["results"]["scale"]
    size = scale["sizes"]["10"]
    assert (size["vhosts"], size["routes"], size["upstreams"], size["tcp"]) == (10, 30, 2, 1)
    assert size["output_bytes"] > 1000 and size["render_median_s"] > 0
    envoy = scale["envoy"]
    assert envoy["cds_s"] > 0 and envoy["lds_rds_s"] > 0
    assert scale["phases"]["verify_s"] >= 0


def test_edits_are_timed_until_real_traffic_reaches_the_new_vhost(tiny: tuple) -> None:
    _, report = tiny
    for install in INSTALLS:
        latency = report["results"]["latency"][install]
        assert latency["saves"] == 3 and len(latency["all_s"]) == 3
        assert all(0 < s < 30 for s in latency["all_s"])
        assert latency["watcher_kind"] == "inotify"
        assert len(latency["envoy_floor_s"]) == 3
        # Envoy alone is faster than Envoy and xdsgen: the end point is the same request.
        assert median(latency["envoy_floor_s"]) < median(latency["all_s"])
        parts = latency["median_parts_ms"]
        assert parts["noticed_and_settled"] > 0 and parts["load_render_plan"] > 0
        oneshot = report["results"]["oneshot"][install]
        assert len(oneshot["apply_all_s"]) == len(oneshot["floor_all_s"]) == 2


def test_the_watcher_footprint_and_a_noop_that_wrote_nothing(tiny: tuple) -> None:
    _, report = tiny
    for install in INSTALLS:
        footprint = report["results"]["footprint"][install]
        assert footprint["applies"] == [2, 4] and all(mb > 5 for mb in footprint["rss_mb"])
        assert 0 <= footprint["idle_cpu_pct"] < 50
        noop = report["results"]["noop"][install]
        assert noop["changed_files"] == []
        assert noop["envoy_update_counters_before"] == noop["envoy_update_counters_after"]
        assert noop["envoy_update_counters_before"]  # the counters were really read


def test_apply_at_scale_is_compared_with_envoys_own_load(tiny: tuple) -> None:
    _, report = tiny
    result = report["results"]["apply_scale"]["essentials"]
    assert result["vhosts"] == 10
    # The one-vhost change touches the route files only (the vhost is on both listeners).
    assert result["changed_files"] == ["rds_http_ipv4.yaml", "rds_https_ipv4.yaml"]
    assert len(result["envoy_load_s"]) == len(result["apply_s"]) == 1
    assert result["served_s"][0] > 0 and result["apply_peak_rss_mb"] > 5
    rows = [r for r in report["rows"] if r["section"] == "apply at scale (essentials)"]
    assert rows and all(r["target_key"] is None for r in rows)  # targets are for N=10000


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def test_a_table_is_printed(tiny: tuple) -> None:
    proc, _ = tiny
    for text in ("xdsgen benchmarks", "floor", "edit-to-live p50", "no-op", "wrote "):
        assert text in proc.stdout


def test_plain_table_without_rich(tmp_path: Path) -> None:
    """rich is optional: the plain table works (exercised without running any section)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import run

    rows = [
        {
            "section": "s",
            "measure": "m",
            "value": 1.5,
            "unit": "ms",
            "reference": 3.0,
            "reference_name": "floor",
            "ratio": 0.5,
            "target": "<= 1x floor",
            "ok": True,
            "note": "",
        }
    ]
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def fake(name, *a, **k):\n"
        "    if name.startswith('rich'):\n"
        "        raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fake\n"
        f"sys.path.insert(0, {str(REPO / 'benchmarks')!r})\n"
        "import run\n"
        f"run.print_table({rows!r}, 'title')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "title" in proc.stdout and "0.50" in proc.stdout and "yes" in proc.stdout
    assert "┃" not in proc.stdout
    assert run.TARGETS["latency_p50_ms"] == ("value", 100.0)
    assert run.TARGETS["apply_scale"] == ("ratio", 1.5)


def test_the_benchmarks_never_put_tests_on_sys_path() -> None:
    """The Envoy-process helpers the benchmarks share with the tests live in
    xdsgen/envoyproc.py: nothing under benchmarks/ imports from tests/."""
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        text = path.read_text()
        assert "harness" not in text and '"tests"' not in text, path.name
