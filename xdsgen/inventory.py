"""Load an inventory file: YAML with positions, no duplicate keys, checked against the JSON Schema.

The result is plain data plus a map from key paths to (line, column), so that every later
check (schema here, meaning in `model`) can point at the exact spot in the file.

The YAML itself is read by xdsgen/safeyaml.py, strict where YAML is lenient (the file is
edited by hand over SSH and parts of it are pasted from elsewhere).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from xdsgen import resources
from xdsgen.errors import InventoryError, PathKey, Problem, format_path
from xdsgen.safeyaml import MAX_INVENTORY_BYTES, MAX_VALUES, _parse, read_text

__all__ = ["MAX_INVENTORY_BYTES", "MAX_VALUES", "Inventory", "load", "read_text", "schema"]


@dataclass
class Inventory:
    """The parsed inventory: data as YAML gave it, where each key was, and the file it came from."""

    data: dict[str, Any]
    positions: Mapping[PathKey, tuple[int, int]]
    source: str
    base_dir: Path
    # The source text of plain scalars YAML turned into something other than a string
    # (no -> false, 012 -> 10), so that messages can quote what the person wrote.
    raw: Mapping[PathKey, str] = field(default_factory=dict)

    def problem(
        self, path: PathKey, message: str, hint: str | None = None, severity: str = "error"
    ) -> Problem:
        line, column = self.locate(path)
        return Problem(
            line, column, format_path(path), message, hint, severity=severity, source=self.source
        )

    def locate(self, path: PathKey) -> tuple[int, int]:
        # The nearest located ancestor: a missing key is reported where its parent is.
        for end in range(len(path), -1, -1):
            if path[:end] in self.positions:
                return self.positions[path[:end]]
        return (0, 0)


_SCHEMA_CACHE: dict[str, Any] = {}


def schema() -> dict[str, Any]:
    if "schema" not in _SCHEMA_CACHE:
        text = resources.read_text("schemas", "inventory.schema.json")
        _SCHEMA_CACHE["schema"] = json.loads(text)
    return _SCHEMA_CACHE["schema"]


def _validator() -> Any:
    if "validator" not in _SCHEMA_CACHE:
        from jsonschema import Draft202012Validator

        _SCHEMA_CACHE["validator"] = Draft202012Validator(schema())
    return _SCHEMA_CACHE["validator"]


def _schema_problems(inventory: Inventory, broken: set[PathKey]) -> list[Problem]:
    from xdsgen.schema_errors import describe_all

    problems = []
    seen = set()
    for error in _validator().iter_errors(inventory.data):
        for message, hint, path in describe_all(error, tuple(error.absolute_path), inventory):
            if path in broken:
                continue  # the loader already said what is wrong with this value
            problem = inventory.problem(path, message, hint)
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
    return problems


# The indices of vhosts (`http`) known to pass the schema, given the data and base dir.
CheckedVhosts = Callable[[dict[str, Any], Path], frozenset[int]]


def load(path: Union[str, os.PathLike[str]], checked: Optional[CheckedVhosts] = None) -> Inventory:
    """Read, parse and schema-check an inventory; raise InventoryError listing every problem.
    `checked`: vhosts the schema accepted before, exactly as they are (xdsgen/reuse.py)."""
    source = str(path)
    text = read_text(source)
    from xdsgen.speed import gc_paused

    positions: Mapping[PathKey, tuple[int, int]]
    raw: Mapping[PathKey, str]
    with gc_paused():  # a big inventory is millions of objects: see xdsgen/speed.py
        fast = _read_fast(text)
        if fast is None:
            data, positions, raw, problems, broken = _parse(text, source)
        else:
            from xdsgen.later_positions import LaterPositions

            later = LaterPositions(text, source, list(fast))
            data, positions, raw, problems, broken = fast, later.positions, later.raw, [], set()
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else "a single value"
        raise InventoryError(
            [
                *problems,
                Problem(
                    1,
                    1,
                    "",
                    f"the inventory must be a mapping of keys (version, listen, ...), not {kind}",
                    "start from examples/home-router.yaml",
                    source=source,
                ),
            ]
        )
    inventory = Inventory(data, positions, source, Path(source).resolve().parent, raw)
    # jsonschema (slow to import, slow on big inventories) only when the exact fast check
    # cannot vouch for the data: it alone writes the messages (xdsgen/schemacheck.py).
    from xdsgen.schemacheck import is_valid

    if problems or not is_valid(schema(), _unchecked(data, inventory.base_dir, checked)):
        problems += _schema_problems(inventory, broken)
    if problems:
        raise InventoryError(problems, partial=inventory)
    return inventory


def _unchecked(data: dict[str, Any], base_dir: Path, checked: Optional[CheckedVhosts]) -> Any:
    """`data` less the vhosts `checked` vouches for (the schema checks them one by one)."""
    vhosts = data.get("http")
    if checked is None or not isinstance(vhosts, list):
        return data
    known = checked(data, base_dir)
    if not known:
        return data
    return {**data, "http": [v for i, v in enumerate(vhosts) if i not in known]}


def _read_fast(text: str) -> Optional[dict[str, Any]]:
    """A big inventory by xdsgen/fastyaml.py (the same data, without positions); None
    when it is small or outside what that reader takes."""
    from xdsgen.fastyaml import FAST_FROM_BYTES, parse

    return parse(text, MAX_VALUES) if len(text) >= FAST_FROM_BYTES else None
