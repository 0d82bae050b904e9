"""The steps every command shares: inventory -> model -> rendered files."""

from __future__ import annotations

import os
from typing import Optional

from xdsgen import inventory as inventory_mod
from xdsgen import model as model_mod
from xdsgen.errors import InventoryError, IOProblem
from xdsgen.model import Model
from xdsgen.render import Rendered, render


def load_model(path: str, check_files: bool = False, config_dir: Optional[str] = None) -> Model:
    try:
        inventory = inventory_mod.load(path)
    except InventoryError as exc:
        if isinstance(exc.partial, inventory_mod.Inventory):
            more = model_mod.meaning_problems(exc.partial, check_files, exc.problems)
            raise InventoryError(exc.problems + more, exc.warnings) from None
        raise
    model = model_mod.build(inventory, check_files=check_files)
    if config_dir is not None:
        model = model.with_config_dir(config_dir)
    if check_files:
        from xdsgen.certificates import missing_acme_files

        # Checked here, after --config-dir moved their default location.
        missing = missing_acme_files(inventory, model.certificates)
        if missing:
            raise InventoryError(missing, list(model.warnings))
    return model


def write_plain(directory: str, rendered: Rendered) -> list[str]:
    """Write the rendered files into a directory (render -o). Live configs go through apply."""
    from xdsgen.files import write_atomic

    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {directory}: {exc.strerror}") from None
    written = []
    for name, text in rendered.files.items():
        target = os.path.join(directory, name)
        if write_atomic(target, text):
            written.append(target)
    return written


__all__ = ["Model", "Rendered", "load_model", "render", "write_plain"]
