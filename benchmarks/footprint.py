"""The watcher's footprint (RSS after many applies, CPU while idle) and the cost of a
no-op `xdsgen apply` (nothing to change: against the import floor, and nothing written)."""

from __future__ import annotations

import time
from typing import Any

from common import FLOOR_CODE, median, proc_cpu_seconds, proc_rss_kb, rss_mb, run_timed
from installs import Install
from lab import LiveLab


def footprint(bench: Any, lab: LiveLab, install: Install) -> None:
    first, last = bench.args.footprint
    while lab.applies < first:
        lab.save_and_wait()
    rss_first = proc_rss_kb(lab.watcher_pid)
    while lab.applies < last:
        lab.save_and_wait()
    rss_last = proc_rss_kb(lab.watcher_pid)
    time.sleep(1.0)  # the last apply's aftermath (its uptime probe, the collector) is over
    idle = bench.args.idle_seconds
    cpu_before = proc_cpu_seconds(lab.watcher_pid)
    time.sleep(idle)
    cpu = (proc_cpu_seconds(lab.watcher_pid) - cpu_before) / idle * 100
    growth = (rss_last - rss_first) / 1024
    bench.results.setdefault("footprint", {})[install.name] = {
        "applies": [first, last],
        "rss_mb": [rss_mb(rss_first), rss_mb(rss_last)],
        "growth_mb": round(growth, 2),
        "idle_seconds": idle,
        "idle_cpu_pct": round(cpu, 3),
    }
    section = f"footprint ({install.name})"
    rows = bench.rows
    rows.row(section, f"watcher RSS after {first} applies", rss_mb(rss_first), "MB")
    rows.row(section, f"watcher RSS after {last} applies", rss_mb(rss_last), "MB")
    rows.row(
        section,
        f"RSS growth {first} -> {last} applies",
        round(growth, 2),
        "MB",
        target="watcher_growth_mb",
    )
    rows.row(
        section,
        f"watcher CPU while idle ({idle:g} s, inotify)",
        round(cpu, 3),
        "%",
        target="watcher_idle_cpu_pct",
    )


def noop(bench: Any, lab: LiveLab, install: Install) -> None:
    runs = bench.args.runs
    floor_cmd = [install.python, "-c", FLOOR_CODE]
    apply_cmd = lab.apply_command()
    run_timed(apply_cmd, install.env)  # warm-up (and proof that it is a no-op below)
    run_timed(apply_cmd, install.env_src)
    before = lab.snapshot()
    counters = lab.update_counters()
    floor, plain, source_only = [], [], []
    for _ in range(runs):
        floor.append(run_timed(floor_cmd, install.env).seconds)
        plain.append(run_timed(apply_cmd, install.env).seconds)
        source_only.append(run_timed(apply_cmd, install.env_src).seconds)
    after = lab.snapshot()
    changed = sorted({p for p in set(before) | set(after) if before.get(p) != after.get(p)})
    counters_after = lab.update_counters()
    bench.results.setdefault("noop", {})[install.name] = {
        "runs": runs,
        "floor_median_s": median(floor),
        "apply_median_s": median(plain),
        "apply_source_only_median_s": median(source_only),
        "changed_files": changed,
        "envoy_update_counters_before": counters,
        "envoy_update_counters_after": counters_after,
    }
    section = f"no-op ({install.name})"
    rows = bench.rows
    rows.row(section, "import floor (same run)", median(floor) * 1000, "ms")
    rows.row(
        section,
        "xdsgen apply, nothing changed",
        median(plain) * 1000,
        "ms",
        median(floor) * 1000,
        "floor",
        "noop",
    )
    rows.row(
        section,
        "xdsgen apply, nothing changed, source only",
        median(source_only) * 1000,
        "ms",
        median(floor) * 1000,
        "floor",
        note="no .pyc for xdsgen",
    )
    rows.row(
        section,
        "files written or touched (all runs)",
        float(len(changed)),
        "files",
        target="noop_writes",
        note=", ".join(changed)[:80],
    )
    changes = sum(
        1 for k in set(counters) | set(counters_after) if counters.get(k) != counters_after.get(k)
    )
    rows.row(
        section, "Envoy update attempts caused", float(changes), "updates", target="noop_writes"
    )
