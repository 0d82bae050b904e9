"""What every section of the benchmarks shares: the targets, timed processes (wall time and
the command's own peak RSS), statistics, and the rows of the result table.

Everything binds and connects to loopback only (127.0.0.1, ::1), on ports the kernel
hands out.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
EXAMPLE = REPO / "examples" / "home-router.yaml"

FLOOR_CODE = "import click, yaml, jinja2, jsonschema"

# The issues' targets (11 and 16). ratio: value / reference must be <= limit; value:
# value <= limit (in the row's unit).
TARGETS: dict[str, tuple[str, float]] = {
    "help": ("ratio", 0.6),
    "validate": ("ratio", 1.3),
    "render": ("ratio", 1.3),
    "render_rss_mb": ("value", 45.0),
    "linearity": ("value", 12.0),
    "render_vs_envoy": ("ratio", 1.0),
    "scale_rss_mb": ("value", 250.0),
    "latency_p50_ms": ("value", 100.0),
    "latency_p95_ms": ("value", 200.0),
    "oneshot": ("ratio", 2.0),
    "watcher_growth_mb": ("value", 2.0),
    "watcher_idle_cpu_pct": ("value", 0.2),
    "noop": ("ratio", 1.3),
    "noop_writes": ("value", 0.0),
    "apply_scale": ("ratio", 1.5),
    "apply_scale_render": ("ratio", 0.5),
    "apply_scale_rss_mb": ("value", 200.0),
}


# --------------------------------------------------------------------------- processes


class Proc:
    """A finished command: wall time, peak RSS (from wait4, so per process) and output."""

    def __init__(self, seconds: float, rss_kb: int, code: int, out: str, err: str):
        self.seconds = seconds
        self.rss_kb = rss_kb
        self.code = code
        self.out = out
        self.err = err


# Started by the bench, this small process forks and execs the command and reports its wall
# time and peak RSS on fd 3. Why not wait4 from the bench itself: Linux carries the RSS
# high-water mark of the process a child was forked from across exec into the child's
# ru_maxrss, so a command started by a big parent (this bench holds certificates, Envoy
# clients...) would report the parent's size. Forked from this ~10 MB launcher, the
# command's own peak is what shows (every command measured is bigger than the launcher).
# It reports "seconds maxrss_kb exit_code" on the descriptor named by its first argument.
_LAUNCHER = """
import os, sys, time
fd, argv = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.close(fd)
        os.execvpe(argv[0], argv, os.environ)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
os.write(fd, ("%r %d %d" % (elapsed, usage.ru_maxrss, os.waitstatus_to_exitcode(status))).encode())
"""


def run_timed(
    cmd: list[str], env: dict[str, str], cwd: Optional[str] = None, check: bool = True
) -> Proc:
    # Never the checkout as working directory: `python -c` would import xdsgen from there.
    cwd = cwd or env.get("XDSGEN_BENCH_CWD") or tempfile.gettempdir()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        read_end, write_end = os.pipe()
        try:
            launcher = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, str(write_end), *cmd],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)
        with os.fdopen(read_end, "rb") as report:
            fields = report.read().decode().split()
        launcher.wait()
        if len(fields) != 3:
            raise RuntimeError(f"could not run {cmd}: launcher exited {launcher.returncode}")
        out.seek(0)
        err.seek(0)
        result = Proc(
            float(fields[0]),
            int(fields[1]),
            int(fields[2]),
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    if check and result.code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {result.code}:\n{result.err[-3000:]}")
    return result


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def rss_mb(kb: float) -> float:
    return round(kb / 1024, 1)


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """CPU time of every thread: schedstat's nanoseconds where the kernel has them (an idle
    watcher's 0.1 % is half a 10 ms tick in 5 s), else utime + stime in ticks."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, every thread


# --------------------------------------------------------------------------- rows


class Rows:
    """The result table: one row per measure, with its reference, ratio and target."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def row(
        self,
        section: str,
        name: str,
        value: float,
        unit: str,
        reference: Optional[float] = None,
        ref_name: str = "",
        target: Optional[str] = None,
        note: str = "",
    ) -> None:
        ratio = value / reference if reference else None
        ok: Optional[bool] = None
        limit_text = ""
        if target is not None:
            kind, limit = TARGETS[target]
            measured = ratio if kind == "ratio" else value
            ok = measured is not None and measured == measured and measured <= limit
            limit_text = f"<= {limit:g}x {ref_name}" if kind == "ratio" else f"<= {limit:g} {unit}"
        self.rows.append(
            {
                "section": section,
                "measure": name,
                "value": value,
                "unit": unit,
                "reference": reference,
                "reference_name": ref_name,
                "ratio": None if ratio is None else round(ratio, 3),
                "target": limit_text,
                "target_key": target,
                "ok": ok,
                "note": note,
            }
        )
