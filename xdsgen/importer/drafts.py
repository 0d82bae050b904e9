"""A draft inventory rendered, read back and checked: by the inventory's own checks and,
when an Envoy binary is at hand, by `envoy --mode validate` (with its patches)."""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Optional

from xdsgen.importer.differences import Report
from xdsgen.importer.repair import dump


def with_patches(inventory: dict[str, Any], written: list[Any]) -> dict[str, Any]:
    if not written:
        return inventory
    return {**inventory, "patches": [patch.entry() for patch in written]}


def render_files(inventory: dict[str, Any]) -> dict[str, str]:
    from xdsgen.pipeline import load_model, render

    with tempfile.TemporaryDirectory(prefix="xdsgen-import-") as directory:
        path = os.path.join(directory, "draft.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(dump(inventory))
        return dict(render(load_model(path)).files)


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


def invalid_patches(inventory: dict[str, Any], written: list[Any]) -> set[int]:
    """Indexes of the patches the inventory's checks refuse (all, for a problem elsewhere)."""
    from xdsgen.importer.repair import parse_path, problems_of
    from xdsgen.pipeline import load_model

    refused: set[int] = set()
    for problem in problems_of(dump(with_patches(inventory, written)), load_model):
        parts = parse_path(problem.path)
        if len(parts) > 1 and parts[0] == "patches" and isinstance(parts[1], int):
            refused.add(parts[1])
        else:
            return set(range(len(written)))
    return refused


class EnvoyCheck:
    """Envoy's reason for refusing the draft with some patches (None: accepted). Files the
    draft names that are not on this machine get stand-ins (envoycheck)."""

    def __init__(self, inventory: dict[str, Any], binary: str):
        self.inventory = inventory
        self.binary = binary
        self.unavailable = ""  # why Envoy could not be run, once it could not

    @classmethod
    def find(cls, inventory: dict[str, Any]) -> Optional[EnvoyCheck]:
        from xdsgen.envoycheck import find_envoy

        binary = find_envoy()
        return cls(inventory, binary) if binary else None

    def __call__(self, written: list[Any]) -> Optional[str]:
        from xdsgen.envoycheck import check_with_envoy
        from xdsgen.errors import EnvoyRefused, XdsgenError
        from xdsgen.pipeline import load_model, render

        if self.unavailable:
            return None
        with tempfile.TemporaryDirectory(prefix="xdsgen-import-") as directory:
            path = os.path.join(directory, "draft.yaml")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(dump(with_patches(self.inventory, written)))
            try:
                model = load_model(path, config_dir=os.path.join(directory, "config"))
                check_with_envoy(model, render(model), self.binary, stand_ins=True)
            except EnvoyRefused as exc:
                return reason(str(exc))
            except XdsgenError as exc:  # Envoy could not be run: no verdict on the patches
                self.unavailable = reason(str(exc))
        return None


def reason(message: str) -> str:
    """Envoy's reason on one line, without the config it quotes after it."""
    text = " ".join(message.split()).replace("Envoy refused the rendered files: ", "")
    quoted = re.search(r"\)?: \{", text)
    if quoted is not None:
        text = text[: quoted.start()] + (")" if text[quoted.start()] == ")" else "")
    return text if len(text) <= 240 else text[:240].rsplit(" ", 1)[0] + " ..."
