"""The steps every command shares: inventory -> model -> rendered files."""

from __future__ import annotations

import os
from typing import Optional

from xdsgen import inventory as inventory_mod
from xdsgen import model as model_mod
from xdsgen.conventions import LAYOUT_DIRECTORY
from xdsgen.errors import InventoryError, IOProblem
from xdsgen.model import Model
from xdsgen.render import Rendered, render

RENDER_LOCK_TIMEOUT = 60.0


def load_model(
    path: str,
    check_files: bool = False,
    config_dir: Optional[str] = None,
    servable: bool = False,
) -> Model:
    """The model of the inventory at `path`. `servable`: as Envoy can run it now, without
    the acme: certificates not obtained yet (model/challenges.py; render and status)."""
    return _model(_inventory(path, check_files), check_files, config_dir, servable)


def build(
    path: str,
    check_files: bool = False,
    config_dir: Optional[str] = None,
    servable: bool = False,
    documents: bool = False,
) -> tuple[Model, Rendered]:
    """The model and the rendered files of the inventory at `path` (load_model, render).
    A big inventory whose routes alone changed since its last full render reuses that
    render (xdsgen/reuse.py); `documents`: leave the parsed files in the parse cache, as a
    full render does (apply's plan reads them)."""
    from xdsgen.reuse import Finder

    finder = Finder((check_files, config_dir, servable))
    inventory = _inventory(path, check_files, finder.checked_vhosts)
    found = finder.reused(inventory, documents)
    if found is not None:
        return found
    model = _model(inventory, check_files, config_dir, servable)
    rendered = render(model)
    finder.keep(inventory, model, rendered)
    return model, rendered


def _inventory(
    path: str, check_files: bool, checked: Optional[inventory_mod.CheckedVhosts] = None
) -> inventory_mod.Inventory:
    try:
        return inventory_mod.load(path, checked)
    except InventoryError as exc:
        if isinstance(exc.partial, inventory_mod.Inventory):
            more = model_mod.meaning_problems(exc.partial, check_files, exc.problems)
            raise InventoryError(exc.problems + more, exc.warnings) from None
        raise


def _model(
    inventory: inventory_mod.Inventory,
    check_files: bool,
    config_dir: Optional[str],
    servable: bool,
) -> Model:
    model = model_mod.build(inventory, check_files=check_files)
    if config_dir is not None:
        model = model.with_config_dir(config_dir)
    if servable and any(c.acme for c in model.certificates):
        # After --config-dir moved their default location.
        model = _servable(inventory, model)
    return model


def _servable(inventory: inventory_mod.Inventory, model: Model) -> Model:
    from dataclasses import replace

    from xdsgen.model.challenges import missing_certificates, pending_message, without_certificates

    missing = missing_certificates(model)
    if not missing:
        return model
    notes = [
        inventory.problem(
            ("certificates", name, "acme"),
            pending_message(name),
            "`xdsgen apply` obtains it",
            severity="warning",
        )
        for name in missing
    ]
    model = without_certificates(model, missing)
    return replace(model, warnings=tuple(sorted([*model.warnings, *notes])))


def render_into(directory: str, rendered: Rendered, layout: str = "rename") -> list[str]:
    """`xdsgen render` into a directory: refused where apply manages a running Envoy (its
    history is there), since render writes without order, lock or confirmation.
    `layout`: envoy.layout (directory: one swap, live/swap.py)."""
    from xdsgen.live.lock import locked, state_dir

    write = write_swapped if layout == LAYOUT_DIRECTORY else write_plain
    if not os.path.isdir(state_dir(directory)):
        return write(directory, rendered)
    from xdsgen.errors import UsageProblem
    from xdsgen.live.state import State

    with locked(directory, RENDER_LOCK_TIMEOUT):
        if State.load(directory).accepted:
            raise UsageProblem(
                f"{directory} is applied to a running Envoy (its history is in "
                f"{state_dir(directory)}): render would replace its files without "
                "make-before-break order or confirmation. Use `xdsgen apply`, or render "
                "somewhere else (-o DIR)."
            )
        return write(directory, rendered)


def write_plain(directory: str, rendered: Rendered) -> list[str]:
    """Write the rendered files into a directory (render -o). Live configs go through apply."""
    from xdsgen.files import write_atomic

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {directory}: {exc.strerror}") from None
    from xdsgen.live.swap import is_directory_layout

    if is_directory_layout(directory):  # rendered in directory mode before
        from xdsgen.live.swap import to_rename_layout
        from xdsgen.live.transition import read_files

        to_rename_layout(directory, read_files(directory, _our_links(directory)))
    written = []
    for name, text in rendered.files.items():
        target = os.path.join(directory, name)
        if write_atomic(target, text):
            written.append(target)
    return written


def write_swapped(directory: str, rendered: Rendered) -> list[str]:
    """render -o in directory mode: the whole set in one swap (live/swap.py), kubelet's way.
    With no Envoy to confirm anything, it is one generation: the new files, with the
    clusters and rds_/sds_ files the files on disk still use kept until the next render
    (live/generations.py). Nothing changed: nothing is written."""
    from xdsgen.conventions import is_config_file
    from xdsgen.live.generations import one_generation
    from xdsgen.live.swap import is_our_link, sweep, write_generation
    from xdsgen.live.transition import read_files

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {directory}: {exc.strerror}") from None
    sweep(directory)
    ours = _our_links(directory)
    old = read_files(directory, ours | set(rendered.files))
    target = one_generation(old, rendered.files)
    plain = [n for n in old if not is_our_link(directory, n) and is_config_file(n)]
    if target == old and not plain and set(target) <= ours:
        return []
    write_generation(directory, target, ours)
    return [os.path.join(directory, n) for n in sorted(target) if old.get(n) != target[n]]


def _our_links(directory: str) -> set[str]:
    """The files of an earlier directory-mode render: links into ..data."""
    from xdsgen.live.swap import is_our_link

    try:
        names = os.listdir(directory)
    except OSError:
        return set()
    return {n for n in names if is_our_link(directory, n)}


__all__ = ["Model", "Rendered", "build", "load_model", "render", "write_plain"]
