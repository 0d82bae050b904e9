"""`xdsgen import`: a hand-written Envoy config in, an inventory draft out, every change named.

People arrive with a static bootstrap or an LDS/CDS pair from a blog post or an older
setup, often in the v2 API. The import reads them (reading, inputs) into what they do
(read_listeners, read_http, read_clusters -> semantics), writes the inventory that does
the most of it (translate), keeps that draft valid (repair), renders it, reads the render
back with the same reader and compares the two as Envoy would serve them (compare).
Whatever differs is reported (differences): the exit code says whether the draft behaves
like the original (0) or not (EXIT_DIFFERS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.errors import Problem, UsageProblem
from xdsgen.importer.differences import Difference, Note, Report
from xdsgen.importer.shapes import duration_text

__all__ = ["ImportResult", "duration_text", "import_files", "import_to", "to_yaml"]


@dataclass
class ImportResult:
    inventory: dict[str, Any]
    differences: list[Difference] = field(default_factory=list)  # loud ones first
    notes: list[Note] = field(default_factory=list)
    v2: bool = False
    problems: list[Problem] = field(default_factory=list)  # a draft `validate` refuses: a bug

    @property
    def equivalent(self) -> bool:
        return not self.differences and not self.problems


def import_files(paths: list[str]) -> ImportResult:
    from xdsgen.importer.anchors import resolve
    from xdsgen.importer.compare import Comparer
    from xdsgen.importer.inputs import Context, Inputs, collect, require_something
    from xdsgen.importer.read_clusters import read_clusters
    from xdsgen.importer.read_listeners import read_listeners
    from xdsgen.importer.reading import Files
    from xdsgen.importer.repair import make_valid
    from xdsgen.importer.semantics import Config
    from xdsgen.importer.translate import Translator
    from xdsgen.pipeline import load_model

    report = Report()
    ctx = Context(Files(), report, Inputs())
    collect(paths, ctx)
    require_something(paths, ctx)
    original = Config(read_listeners(ctx), read_clusters(ctx))
    for text in ctx.files.notes:
        report.note("", text)
    if ctx.inputs.listeners and not ctx.inputs.clusters:
        report.note("", "no clusters were given: add the CDS file to import the upstreams")
    translator = Translator(original, report, paths, ctx.inputs.admin)
    draft = translator.run(ctx.files.referenced_dirs, ctx.access_logs)
    if ctx.files.watched_dirs:  # directory-swap mode (issue 17)
        draft.inventory["envoy"]["layout"] = "directory"
    problems = make_valid(draft.inventory, report, load_model)
    if not problems:
        rendered = read_render(_render(draft.inventory))
        Comparer(
            original, rendered, draft.upstream_names, report, draft.reasons, draft.auth_clusters
        ).run()
        resolve(report, original, rendered, draft.upstream_names)
    if ctx.v2:
        report.notes.insert(
            0,
            Note(
                "", "v2 names (envoy.api.v2.*, envoy.router, config:, ...) read as their v3 forms"
            ),
        )
    return ImportResult(draft.inventory, report.ordered(), report.notes, ctx.v2, problems)


def _render(inventory: dict[str, Any]) -> dict[str, str]:
    import tempfile

    from xdsgen.importer.repair import dump
    from xdsgen.pipeline import load_model, render

    with tempfile.TemporaryDirectory(prefix="xdsgen-import-") as directory:
        path = os.path.join(directory, "draft.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(dump(inventory))
        model = load_model(path)
        return dict(render(model).files)


def read_render(files: dict[str, str]) -> Any:
    """The draft's render, read by the reader that read the original."""
    from xdsgen.importer.inputs import Context, Inputs, collect
    from xdsgen.importer.read_clusters import read_clusters
    from xdsgen.importer.read_listeners import read_listeners
    from xdsgen.importer.reading import RenderedFiles
    from xdsgen.importer.semantics import Config

    ctx = Context(RenderedFiles(files), Report(), Inputs())
    collect(["lds.yaml", "cds.yaml"], ctx)
    return Config(read_listeners(ctx), read_clusters(ctx))


def to_yaml(result: ImportResult, paths: list[str]) -> str:
    from xdsgen.importer.repair import dump

    header = [
        f"# Inventory draft made by `xdsgen import {' '.join(paths)}`.",
        "# Check it with `xdsgen validate`. Editor help: xdsgen schema > inventory.schema.json",
        "# yaml-language-server: $schema=inventory.schema.json",
    ]
    if result.equivalent:
        header.append("# It behaves like the original.")
    else:
        count = len(result.differences) + len(result.problems)
        plural = "s" if count != 1 else ""
        header.append(f"# It behaves differently from the original ({count} difference{plural}):")
        header.extend(f"#   - {d.line()}" for d in result.differences)
        header.extend(f"#   - {p.format()}" for p in result.problems)
    if result.notes:
        header.append("# Notes:")
        header.extend(f"#   - {n.line()}" for n in result.notes)
    return "\n".join(header) + "\n" + dump(result.inventory)


def import_to(
    paths: list[str], output: Optional[str], force: bool = False
) -> tuple[ImportResult, str]:
    """Import, and write the draft to `output` (atomically) or only return its text."""
    if output and os.path.exists(output) and not force:
        raise UsageProblem(f"{output} exists: choose another file, or --force to replace it")
    result = import_files(paths)
    text = to_yaml(result, paths)
    if output:
        from xdsgen.files import write_atomic

        write_atomic(output, text)
    return result, text
