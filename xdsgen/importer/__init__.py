"""`xdsgen import`: a hand-written Envoy config in, an inventory draft out, every change named.

People arrive with a static bootstrap or an LDS/CDS pair from a blog post or an older
setup, often in the v2 API. The import reads them (reading, inputs) into what they do
(read_listeners, read_http, read_clusters -> semantics), writes the inventory that does
the most of it (translate), keeps that draft valid (repair), renders it, reads the render
back with the same reader and compares the two as Envoy would serve them (compare, drafts).
What the inventory cannot say is carried over as patches wherever that makes the draft do
what the original does (carrying, patches). Whatever still differs is reported
(differences): the exit code says whether the draft behaves like the original (0) or not
(EXIT_DIFFERS).
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
    inventory: dict[str, Any]  # with its `patches`, if any
    differences: list[Difference] = field(default_factory=list)  # loud ones first
    notes: list[Note] = field(default_factory=list)
    v2: bool = False
    problems: list[Problem] = field(default_factory=list)  # a draft `validate` refuses: a bug
    patches: list[Any] = field(default_factory=list)  # patches.WrittenPatch, as in inventory

    @property
    def equivalent(self) -> bool:
        return not self.differences and not self.problems


def import_files(paths: list[str], patches: bool = True) -> ImportResult:
    """Read the original, write the draft, compare them; with `patches`, carry over as
    patches what the inventory cannot say wherever that makes the draft do the same."""
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
    translator = Translator(original, report, paths, ctx.inputs.admin, patches)
    draft = translator.run(ctx.files.referenced_dirs, ctx.access_logs)
    if ctx.files.watched_dirs:  # directory-swap mode (issue 17)
        draft.inventory["envoy"]["layout"] = "directory"
    problems = make_valid(draft.inventory, report, load_model)
    written: list[Any] = []
    if not problems:
        report, written = _compare(original, draft, report, patches)
    if ctx.v2:
        report.notes.insert(
            0,
            Note(
                "", "v2 names (envoy.api.v2.*, envoy.router, config:, ...) read as their v3 forms"
            ),
        )
    inventory = dict(draft.inventory)
    if written:
        inventory["patches"] = [patch.entry() for patch in written]
    return ImportResult(inventory, report.ordered(), report.notes, ctx.v2, problems, written)


def _compare(original: Any, draft: Any, report: Report, patches: bool) -> tuple[Report, list[Any]]:
    """The draft (patched, with `patches`) compared with the original: the report with
    every difference left, and the patches written."""
    from xdsgen.importer.anchors import resolve
    from xdsgen.importer.compare import Comparer
    from xdsgen.importer.drafts import (
        EnvoyCheck,
        invalid_patches,
        read_render,
        render_files,
        with_patches,
    )
    from xdsgen.importer.patches import Evaluation, Prover, settle

    def evaluate(written: list[Any]) -> Evaluation:
        rendered = read_render(render_files(with_patches(draft.inventory, written)))
        compared = report.copy()
        comparer = Comparer(
            original, rendered, draft.upstream_names, compared, draft.reasons, draft.auth_clusters
        )
        comparer.run()
        resolve(compared, original, rendered, draft.upstream_names)
        return Evaluation(compared, comparer.pairs)

    final = evaluate([])
    written: list[Any] = []
    if patches:
        clusters = {name for name, ours in draft.upstream_names.items() if name == ours}
        check = EnvoyCheck.find(draft.inventory)
        prover = Prover(evaluate, lambda w: invalid_patches(draft.inventory, w), check, clusters)
        written, final = prover.run(final)
        for where, message in prover.notes:
            final.report.note(where, message)
        unchecked = "no envoy binary found" if check is None else check.unavailable
        if written and unchecked:
            final.report.note(
                "",
                f"the patches were not checked by Envoy here ({unchecked}): `xdsgen apply` "
                "has Envoy validate them first",
            )
    settle(final.report, final.pairs)
    return final.report, written


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
    if result.patches:
        count = len(result.patches)
        said = f"{count} patches at the end carry" if count != 1 else "1 patch at the end carries"
        header.append(f"# {said} over what the inventory cannot say.")
    if result.notes:
        header.append("# Notes:")
        header.extend(f"#   - {n.line()}" for n in result.notes)
    body = dump({k: v for k, v in result.inventory.items() if k != "patches"})
    return "\n".join(header) + "\n" + body + _patches_yaml(result.patches)


def _patches_yaml(written: list[Any]) -> str:
    """The patches, each under a comment saying where in the original it came from."""
    if not written:
        return ""
    from xdsgen.importer.differences import printable
    from xdsgen.importer.repair import dump

    lines = [
        "# The original's own Envoy config for what the inventory cannot say, merged into the",
        "# generated resources named (README: Patches). Carried over verbatim: xdsgen checks",
        "# their targets and Envoy validates them; they carry no other safety promise.",
        "patches:",
    ]
    for patch in written:
        lines.extend(printable(f"# from {origin}") for origin in patch.origins)
        lines.append(dump([patch.entry()]).rstrip("\n"))
    return "\n".join(lines) + "\n"


def import_to(
    paths: list[str], output: Optional[str], force: bool = False, patches: bool = True
) -> tuple[ImportResult, str]:
    """Import, and write the draft to `output` (atomically) or only return its text."""
    if output and os.path.exists(output) and not force:
        raise UsageProblem(f"{output} exists: choose another file, or --force to replace it")
    result = import_files(paths, patches)
    text = to_yaml(result, paths)
    if output:
        from xdsgen.files import write_atomic

        write_atomic(output, text)
    return result, text
