"""Start-up: `xdsgen --help`, `validate` and `render` of the example as new processes (as
cron runs them), against the import floor, per install; and their peak RSS."""

from __future__ import annotations

from typing import Any

from common import EXAMPLE, FLOOR_CODE, median, rss_mb, run_timed
from installs import Install

LABELS = {
    "help": "xdsgen --help",
    "validate": "xdsgen validate example",
    "render": "xdsgen render example",
}


def startup(bench: Any, install: Install) -> None:
    runs = bench.args.runs
    out_dir = bench.work / f"startup-out-{install.name}"
    commands: dict[str, list[str]] = {
        "floor": [install.python, "-c", FLOOR_CODE],
        "python": [install.python, "-c", "pass"],
        "help": [*install.xdsgen, "--help"],
        "validate": [*install.xdsgen, "validate", str(EXAMPLE)],
        "render": [*install.xdsgen, "render", str(EXAMPLE), "-o", str(out_dir)],
    }
    commands.update({f"{name}_source": commands[name] for name in LABELS})

    def env_of(name: str) -> dict[str, str]:
        return install.env_src if name.endswith("_source") else install.env

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
        env = {**install.env, "XDG_CACHE_HOME": str(bench.work / f"cache-cold-{install}-{i}")}
        cold.append(run_timed(commands["render"], env).seconds)
    med = {name: median(values) for name, values in times.items()}
    bench.results.setdefault("startup", {})[install.name] = {
        "runs": runs,
        "median_s": med,
        "all_s": times,
        "peak_rss_mb": {name: rss_mb(max(values)) for name, values in rss.items()},
        "render_empty_cache_median_s": median(cold),
    }
    section = f"start-up ({install.name})"
    rows = bench.rows
    floor = med["floor"] * 1000
    rows.row(section, f"floor: python -c '{FLOOR_CODE}'", floor, "ms", note=f"median of {runs}")
    rows.row(section, "python -c pass", med["python"] * 1000, "ms", floor, "floor")
    for name, label in LABELS.items():
        rows.row(section, label, med[name] * 1000, "ms", floor, "floor", name)
    rows.row(
        section,
        "xdsgen render example, empty template cache",
        median(cold) * 1000,
        "ms",
        floor,
        "floor",
        note="first run only",
    )
    for name, label in LABELS.items():
        rows.row(
            section,
            f"{label}, source only",
            med[f"{name}_source"] * 1000,
            "ms",
            floor,
            "floor",
            note="no .pyc for xdsgen",
        )
    rows.row(
        section, "peak RSS of render", rss_mb(max(rss["render"])), "MB", target="render_rss_mb"
    )
    rows.row(section, "peak RSS of floor", rss_mb(max(rss["floor"])), "MB")
