"""The result table: printed (rich when it is installed, plain otherwise) and as Markdown
(README's Benchmarks section, benchmarks/README.md)."""

from __future__ import annotations

import shutil
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    header = ["section", "measure", "value", "reference", "ratio", "target", "ok"]
    body = []
    for r in rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        ref = "" if r["reference"] is None else f"{_fmt(r['reference'])} ({r['reference_name']})"
        measure = r["measure"] + (f"  [{r['note']}]" if r["note"] else "")
        body.append(
            [
                r["section"],
                measure,
                f"{_fmt(r['value'])} {r['unit']}",
                ref,
                _fmt(r["ratio"]),
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


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def markdown(report: dict[str, Any], targets_only: bool = False) -> str:
    """The rows of a result file as a Markdown table; `targets_only`: the rows with a target."""
    lines = [
        "| measure | value | reference | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in report["rows"]:
        if targets_only and not r["target"]:
            continue
        unit = r["unit"]
        ref = (
            f"{_num(r['reference'])} {unit} ({r['reference_name']})"
            if r["reference"] is not None
            else ""
        )
        met = "" if r["ok"] is None else ("yes" if r["ok"] else "**no**")
        ratio = _num(r["ratio"]) if r["ratio"] is not None else ""
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(
            f"| {r['section']}: {r['measure']}{note} | {_num(r['value'])} {unit} | {ref} "
            f"| {ratio} | {r['target']} | {met} |"
        )
    return "\n".join(lines)
