"""Edit-to-live: how long from an editor's save (a rename of the inventory) to the first
request the new vhost serves, with `apply --watch` (per install) and with a one-shot
`xdsgen apply` (against the import floor). Envoy's own floor is measured in the same run:
the same route file renamed into place by hand.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Optional

from common import FLOOR_CODE, median, percentile, run_timed
from installs import Install
from lab import EDIT_BACKEND, LiveLab


class Probe:
    """xdsgen's own watcher (xdsgen.filewatch.make_watcher, the same files and debounce) in
    a thread of the bench: when it returns, the real watcher would start applying. Its delay
    after a save is the share of the latency spent noticing the change and settling."""

    def __init__(self, inventory: Path, debounce: float):
        from xdsgen import filewatch

        self.stop = threading.Event()
        self.waker = filewatch.Waker()
        self.watcher = filewatch.make_watcher({str(inventory.resolve())}, debounce, self.waker)
        self.fired: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.watcher.wait(None):
                self.fired.append(time.perf_counter())

    def result(self, since: float, timeout: float = 5) -> Optional[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            after = [t for t in self.fired if t >= since]
            if after:
                return after[0] - since
            time.sleep(0.002)
        return None

    def close(self) -> None:
        self.stop.set()
        self.waker.wake()
        self.thread.join(5)
        self.watcher.close()
        self.waker.close()


def default_debounce(bench: Any = None) -> float:
    """--debounce, else the watcher's own default."""
    from xdsgen.watch import DEFAULT_DEBOUNCE

    chosen = getattr(getattr(bench, "args", None), "debounce", None)
    return DEFAULT_DEBOUNCE if chosen is None else float(chosen)


def envoy_floor(lab: LiveLab, samples: int) -> list[float]:
    """Envoy alone serving a renamed-in route file (before the watcher starts)."""
    floor = [lab.envoy_floor() for _ in range(samples)]
    lab.apply_once()  # the inventory's own config again
    return floor


def watch_latency(bench: Any, lab: LiveLab, install: Install, floor: list[float]) -> None:
    """`apply --watch`: `saves` renames, each timed until the new vhost serves."""
    saves = bench.args.saves
    probe = Probe(lab.inventory, default_debounce(bench))
    results = []
    try:
        lab.client.until(f"edit{lab.edits}.bench.test", EDIT_BACKEND, time.perf_counter())
        for _ in range(saves):
            start = time.perf_counter()
            latency = lab.save_and_wait()
            parts = lab.parts(start)
            results.append(
                {
                    "latency_s": latency,
                    "noticed_s": probe.result(start),
                    **{f"{k}_s": (v - start if v is not None else None) for k, v in parts.items()},
                }
            )
            time.sleep(0.02)  # a person does not save twice within milliseconds
    finally:
        probe.close()
    latencies = [r["latency_s"] for r in results]
    p50, p95 = percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000

    def med_ms(key: str, minus: str = "") -> float:
        values = [
            r[key] - (r[minus] if minus else 0.0)
            for r in results
            if r[key] is not None and (not minus or r[minus] is not None)
        ]
        return median(values) * 1000 if values else float("nan")

    noticed = med_ms("noticed_s")
    planned = med_ms("planned_s", "noticed_s")
    live = med_ms("latency_s", "planned_s")
    floor_p50 = median(floor) * 1000
    bench.results.setdefault("latency", {})[install.name] = {
        "saves": saves,
        "all_s": latencies,
        "p50_ms": p50,
        "p95_ms": p95,
        "max_ms": max(latencies) * 1000,
        "debounce_s": default_debounce(bench),
        "watcher_kind": lab.watcher_kind,
        "envoy_floor_s": floor,
        "envoy_floor_p50_ms": floor_p50,
        "median_parts_ms": {
            "noticed_and_settled": noticed,
            "load_render_plan": planned,
            "write_until_served": live,
        },
        "per_save": results,
    }
    section = f"latency ({install.name})"
    debounce = default_debounce(bench)
    note = f"{saves} renames of a vhost; watcher: {lab.watcher_kind}, debounce {debounce:g}s"
    bench.rows.row(section, "edit-to-live p50", p50, "ms", target="latency_p50_ms", note=note)
    bench.rows.row(section, "edit-to-live p95", p95, "ms", target="latency_p95_ms")
    bench.rows.row(section, "Envoy alone: a renamed-in route file serves (p50)", floor_p50, "ms")
    bench.rows.row(
        section,
        "  part: change noticed and settled (median)",
        noticed,
        "ms",
        p50,
        "p50",
        note="xdsgen's watcher code, same settings, in the bench process",
    )
    bench.rows.row(section, "  part: load, render, plan (median)", planned, "ms", p50, "p50")
    bench.rows.row(section, "  part: write until the vhost serves (median)", live, "ms", p50, "p50")


def oneshot(bench: Any, lab: LiveLab, install: Install) -> None:
    """One `xdsgen apply` of a one-vhost change, confirmed, against the import floor
    (interleaved runs); the vhost is then served."""
    runs = bench.args.runs
    floor_cmd = [install.python, "-c", FLOOR_CODE]
    floors, applies = [], []
    for _ in range(runs):
        floors.append(run_timed(floor_cmd, install.env).seconds)
        data, host = lab.next_edit()
        lab.write(data)
        proc = run_timed(lab.apply_command(), install.env)
        applies.append(proc.seconds)
        lab.client.until(host, EDIT_BACKEND, time.perf_counter(), timeout=5)
    floor, apply = median(floors), median(applies)
    bench.results.setdefault("oneshot", {})[install.name] = {
        "runs": runs,
        "floor_median_s": floor,
        "apply_median_s": apply,
        "floor_all_s": floors,
        "apply_all_s": applies,
    }
    section = f"one-shot ({install.name})"
    bench.rows.row(section, "import floor (same run)", floor * 1000, "ms")
    bench.rows.row(
        section,
        "xdsgen apply of a one-vhost change, confirmed",
        apply * 1000,
        "ms",
        floor * 1000,
        "floor",
        "oneshot",
    )
