"""Scale: `xdsgen render` of the synthetic inventory (benchmarks/synth.py) at growing
sizes, its peak RSS, and, at the largest size, real Envoy loading the same files (moved
into place: CDS, then SDS/RDS and LDS) as the reference."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import synth
from common import BENCH, median, rss_mb, run_timed
from installs import Install
from lab import certificate, listener_ports

from xdsgen.envoyproc import EnvoyProcess


def write_synthetic(root: Path, n: int, certs: tuple[Path, Path], **kwargs: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    inventory = root / "inventory.yaml"
    cert, key = certs
    inventory.write_text(
        synth.generate(n, config_dir=str(root / "config"), cert=str(cert), key=str(key), **kwargs)
    )
    return inventory


def listening_ports(n: int) -> dict[str, Any]:
    counts = synth.counts(n)
    ports = listener_ports(2 + counts["tcp"])
    return {"http_port": ports[0], "https_port": ports[1], "tcp_ports": ports[2:]}


def scale(bench: Any, install: Install) -> None:
    sizes = bench.args.sizes
    certs = certificate(bench.work / "certs", "*.example.com", "example.com")
    largest = max(sizes)
    data: dict[int, Any] = {}
    envoy_inventory: Optional[Path] = None
    for n in sizes:
        root = bench.work / "scale" / str(n)
        with_envoy = n == largest and bench.args.envoy
        inventory = write_synthetic(root, n, certs, **(listening_ports(n) if with_envoy else {}))
        if with_envoy:
            envoy_inventory = inventory
        runs = bench.args.scale_runs if n < 10000 else max(1, min(bench.args.scale_runs, 3))
        env = {**install.env, "XDSGEN_REUSE": "off"}  # every render in full (xdsgen/reuse.py)
        times, peaks = [], []
        run_timed([*install.xdsgen, "render", str(inventory), "-o", str(root / "warm")], env)
        size = 0
        for r in range(runs):
            out = root / f"out{r}"  # a new directory: every file is written, as after a change
            proc = run_timed([*install.xdsgen, "render", str(inventory), "-o", str(out)], env)
            times.append(proc.seconds)
            peaks.append(proc.rss_kb)
            size = sum(f.stat().st_size for f in out.iterdir())
            shutil.rmtree(out)
        counts = synth.counts(n)
        data[n] = {
            **counts,
            "inventory_bytes": inventory.stat().st_size,
            "runs": runs,
            "render_median_s": median(times),
            "render_all_s": times,
            "peak_rss_mb": rss_mb(max(peaks)),
            "output_bytes": size,
        }
        bench.rows.row(
            "scale",
            f"N={n}: render",
            median(times) * 1000,
            "ms",
            note=f"{counts['routes']} routes, {counts['upstreams']} upstreams, "
            f"{counts['tcp']} tcp; out {size / 1e6:.2f} MB",
        )
        bench.rows.row(
            "scale",
            f"N={n}: peak RSS",
            rss_mb(max(peaks)),
            "MB",
            target="scale_rss_mb" if n == 10000 else None,
        )
    bench.results["scale"] = {"install": install.name, "sizes": data}
    if 1000 in data and 10000 in data:
        linear = data[10000]["render_median_s"] / data[1000]["render_median_s"]
        bench.results["scale"]["linearity"] = linear
        bench.rows.row(
            "scale", "time(10000) / time(1000)", round(linear, 2), "x", target="linearity"
        )
    if largest >= 1000 or bench.args.tiny:
        with contextlib.suppress(Exception):
            bench.results["scale"]["phases"] = phases_of(
                install, bench.work / "scale" / str(largest) / "inventory.yaml"
            )
    if envoy_inventory is not None:
        envoy = envoy_reference(bench, install, envoy_inventory)
        bench.results["scale"]["envoy"] = envoy
        render = data[largest]["render_median_s"]
        rows = bench.rows
        rows.row(
            "scale", f"N={largest}: Envoy loads CDS (move into place)", envoy["cds_s"] * 1000, "ms"
        )
        rows.row(
            "scale",
            f"N={largest}: Envoy loads LDS+RDS (move into place)",
            envoy["lds_rds_s"] * 1000,
            "ms",
            note="envoy reference",
        )
        rows.row(
            "scale",
            f"N={largest}: render vs Envoy LDS+RDS load",
            render * 1000,
            "ms",
            envoy["lds_rds_s"] * 1000,
            "envoy",
            "render_vs_envoy" if largest >= 10000 else None,
            note="" if largest >= 10000 else "the target is for N=10000",
        )


def phases_of(install: Install, inventory: Path) -> dict[str, float]:
    """Where a render's time goes (one in-process run; for the README, not a target)."""
    script = BENCH / "run.py"
    proc = run_timed([install.python, str(script), "--phases", str(inventory)], install.env)
    return dict(json.loads(proc.out))


def phases(inventory: str) -> dict[str, float]:
    from xdsgen import inventory as inventory_mod
    from xdsgen import model as model_mod
    from xdsgen import render as render_mod
    from xdsgen.speed import gc_paused

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
    with gc_paused():  # as render() runs it
        render_mod.verify(model, rendered)
    out["verify_s"] = time.perf_counter() - t
    out["total_s"] = time.perf_counter() - start
    return {k: round(v, 4) for k, v in out.items()}


def start_envoy(install: Install, inventory: Path, work: Path, config: Path) -> EnvoyProcess:
    bootstrap = work / "bootstrap.yaml"
    run_timed(
        [
            *install.xdsgen,
            "bootstrap",
            str(inventory),
            "--config-dir",
            str(config),
            "-o",
            str(bootstrap),
        ],
        install.env,
    )
    return EnvoyProcess(bootstrap, config / "admin.sock", work / "envoy.log").start(timeout=120)


def envoy_reference(bench: Any, install: Install, inventory: Path) -> dict[str, Any]:
    """Envoy starts with empty CDS/LDS; then the rendered files are moved into place (CDS,
    then SDS/RDS, then LDS) and timed until its admin reports every new version."""
    root = inventory.parent / "envoy"
    runs = []
    for attempt in range(bench.args.envoy_runs):
        work = root / str(attempt)
        config, stage = work / "config", work / "stage"
        work.mkdir(parents=True)
        run_timed([*install.xdsgen, "render", str(inventory), "-o", str(config)], install.env)
        os.rename(config, stage)
        config.mkdir()
        for name in ("cds.yaml", "lds.yaml"):
            (config / name).write_text("resources: []\n")
        envoy = start_envoy(install, inventory, work, config)
        try:
            runs.append(move_in(envoy, stage, config))
        finally:
            envoy.stop()
    return {
        "runs": runs,
        "cds_s": median([r["cds_s"] for r in runs]),
        "lds_rds_s": median([r["lds_rds_s"] for r in runs]),
    }


def version_of(path: Path) -> str:
    with open(path) as handle:
        return handle.readline().split('"')[1]


def wait_versions(envoy: EnvoyProcess, expected: dict[str, str], what: str) -> None:
    """Until Envoy reports every `expected` version_text with nothing warming."""
    from xdsgen.admin import Admin, counter, parse_address

    admin = Admin(parse_address(envoy.admin_address), timeout=300)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        versions = admin.versions()
        if all(versions.get(k) == v for k, v in expected.items()):
            stats = admin.apply_stats()
            if any(counter(stats, k) for k in stats if k.endswith("update_rejected")):
                raise RuntimeError(f"Envoy rejected {what}:\n{envoy.log_tail()}")
            if counter(stats, "listener_manager.total_listeners_warming") == 0:
                return
        time.sleep(0.005)
    raise RuntimeError(f"Envoy did not load {what}:\n{envoy.log_tail()}")


def move_in(envoy: EnvoyProcess, stage: Path, config: Path) -> dict[str, float]:
    start = time.perf_counter()
    cds_version = version_of(stage / "cds.yaml")
    os.replace(stage / "cds.yaml", config / "cds.yaml")
    wait_versions(envoy, {"cluster_manager.cds.version_text": cds_version}, "CDS")
    cds = time.perf_counter() - start
    expected = {"listener_manager.lds.version_text": version_of(stage / "lds.yaml")}
    start = time.perf_counter()
    for path in sorted(stage.iterdir()):
        if path.name.startswith(("sds_", "rds_")):
            if path.name.startswith("rds_"):
                name = path.name[4:-5]  # the route config and its listener's stat prefix
                expected[f"http.{name}.rds.{name}.version_text"] = version_of(path)
            os.replace(path, config / path.name)
    os.replace(stage / "lds.yaml", config / "lds.yaml")
    wait_versions(envoy, expected, "LDS and RDS")
    return {"cds_s": cds, "lds_rds_s": time.perf_counter() - start}
