"""Load an inventory file: YAML with positions, no duplicate keys, checked against the JSON Schema.

The result is plain data plus a map from key paths to (line, column), so that every later
check (schema here, meaning in `model`) can point at the exact spot in the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

from xdsgen import resources
from xdsgen.errors import InventoryError, Problem

MAX_INVENTORY_BYTES = 4 * 1024 * 1024  # a hand-written inventory is a few KB; refuse junk early

PathKey = tuple[Union[str, int], ...]


def format_path(path: PathKey) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Inventory:
    """The parsed inventory: data as YAML gave it, where each key was, and the file it came from."""

    data: dict[str, Any]
    positions: dict[PathKey, tuple[int, int]]
    source: str
    base_dir: Path

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


def _loader_class() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _file_problem(source: str, message: str, hint: str | None = None) -> InventoryError:
    return InventoryError([Problem(0, 0, "", message, hint, source=source)])


def read_text(path: str) -> str:
    """Read the file as UTF-8 text, turning every OS and encoding failure into an InventoryError."""
    source = str(path)
    try:
        if os.path.isdir(path):
            raise _file_problem(source, "is a directory, not an inventory file")
        size = os.path.getsize(path)
        if size > MAX_INVENTORY_BYTES:
            raise _file_problem(
                source,
                f"file is {size} bytes; an inventory is at most {MAX_INVENTORY_BYTES} bytes",
                "is this the right file?",
            )
        with open(path, "rb") as handle:
            raw = handle.read(MAX_INVENTORY_BYTES + 1)
    except FileNotFoundError:
        raise _file_problem(source, "file not found") from None
    except PermissionError:
        raise _file_problem(source, "permission denied", "run as a user who can read it") from None
    except OSError as exc:
        raise _file_problem(source, f"cannot read: {exc.strerror or exc}") from None
    if b"\x00" in raw:
        raise _file_problem(source, "file contains NUL bytes: not a text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _file_problem(
            source, f"not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})"
        ) from None
    return text


def parse_yaml(text: str, source: str) -> tuple[Any, dict[PathKey, tuple[int, int]]]:
    """Compose the YAML and build plain data, recording where each key path is."""
    try:
        node = yaml.compose(text, Loader=_loader_class())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = "YAML syntax error: " + (exc.problem or str(exc))
        if exc.context:
            message += f" ({exc.context})"
        hint = "YAML indents with spaces, never tabs" if "\t" in text and "tab" in message else None
        raise InventoryError([Problem(line, column, "", message, hint, source=source)]) from None
    except yaml.YAMLError as exc:
        raise _file_problem(source, f"YAML error: {exc}") from None
    if node is None:
        raise _file_problem(source, "the file is empty", "start from examples/home-router.yaml")
    positions: dict[PathKey, tuple[int, int]] = {}
    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")  # only for its scalar resolution and construction

    def build(node: yaml.Node, path: PathKey) -> Any:
        positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    problems.append(
                        Problem(
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                            format_path(path),
                            "YAML merge keys (<<) are not supported",
                            "write the keys out",
                            source=source,
                        )
                    )
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(
                        Problem(
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                            format_path(path),
                            "a key must be a plain value, not a list or mapping",
                            source=source,
                        )
                    )
                    continue
                key = constructor.construct_object(key_node)
                if not isinstance(key, str):
                    key = str(key_node.value)
                if key in result:
                    first = positions.get((*path, key), (0, 0))
                    problems.append(
                        Problem(
                            key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1,
                            format_path((*path, key)),
                            f"duplicate key {key!r} (first at line {first[0]})",
                            "YAML would silently keep only the last one; remove one of them",
                            source=source,
                        )
                    )
                    continue
                result[key] = build(value_node, (*path, key))
                positions[(*path, key)] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
            return result
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, index)) for index, item in enumerate(node.value)]
        try:
            return constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            problems.append(
                Problem(
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    format_path(path),
                    f"unsupported YAML value: {exc.problem}",
                    "remove the !tag",
                    source=source,
                )
            )
            return None

    data = build(node, ())
    if problems:
        raise InventoryError(problems)
    return data, positions


_SCHEMA_CACHE: dict[str, Any] = {}


def schema() -> dict[str, Any]:
    if "schema" not in _SCHEMA_CACHE:
        _SCHEMA_CACHE["schema"] = json.loads(resources.read_text("schemas", "inventory.schema.json"))
    return _SCHEMA_CACHE["schema"]


def _validator() -> Any:
    if "validator" not in _SCHEMA_CACHE:
        from jsonschema import Draft202012Validator

        _SCHEMA_CACHE["validator"] = Draft202012Validator(schema())
    return _SCHEMA_CACHE["validator"]


def _schema_problems(inventory: Inventory) -> list[Problem]:
    from xdsgen.schema_errors import describe

    problems = []
    for error in _validator().iter_errors(inventory.data):
        path: PathKey = tuple(error.absolute_path)
        message, hint, path = describe(error, path, inventory.data)
        problems.append(inventory.problem(path, message, hint))
    return problems


def load(path: Union[str, os.PathLike[str]]) -> Inventory:
    """Read, parse and schema-check an inventory; raise InventoryError listing every problem."""
    source = str(path)
    text = read_text(source)
    data, positions = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise InventoryError(
            [
                Problem(
                    1, 1, "", "the inventory must be a mapping of keys (version, listen, ...)",
                    "start from examples/home-router.yaml", source=source,
                )
            ]
        )
    inventory = Inventory(data, positions, source, Path(source).resolve().parent)
    problems = _schema_problems(inventory)
    if problems:
        raise InventoryError(problems)
    return inventory
