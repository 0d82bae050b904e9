"""Read the files `xdsgen import` is given or led to, with the inventory loader's limits.

Hostile files are refused with a message before they cost memory or time: the size limit
comes before reading, FIFOs, directories and binary files are refused (all from
xdsgen.safeyaml.read_text), aliases may expand to at most safeyaml.MAX_VALUES values,
and nesting deeper than MAX_DEPTH is refused. Otherwise the reader is as lenient as
Envoy: JSON or YAML, anchors and aliases. It refuses what Envoy refuses too (merge keys,
tags), because a draft of a config Envoy never loaded would describe nothing real.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import yaml

from xdsgen.errors import InventoryError, Problem
from xdsgen.importer.shapes import snake_keys
from xdsgen.safeyaml import MAX_VALUES, _compose, read_text

MAX_DEPTH = 200  # Envoy configs nest ~30 levels (RBAC rules a few more)
MAX_REFERENCED_FILES = 200  # RDS/SDS/EDS files one import may follow
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _problem(source: str, message: str, hint: Optional[str] = None, node: Any = None) -> Problem:
    line = column = 0
    if node is not None:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
    return Problem(line, column, "", message, hint, source=source)


def load_document(path: str, notes: Optional[list[str]] = None) -> Any:
    """The data of an Envoy config file (JSON or YAML), or InventoryError saying why not.
    What Envoy reads in its own way (a duplicate key: the last one wins) goes to `notes`."""
    text = read_text(path, kind="an Envoy config", example="/etc/envoy/envoy.yaml")
    if text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError:
            pass  # YAML's flow style looks like JSON: let the YAML parser say what is wrong
        except RecursionError:
            raise InventoryError([_problem(path, "the JSON is nested too deeply")]) from None
        else:
            _check_depth(data, path)
            return data
    node = _compose(text, path)
    if node is None:
        message = "the file is empty" if not text.strip() else "the file has only comments"
        raise InventoryError([_problem(path, message, "is this the right file?")])
    builder = _Builder(path)
    data = builder.build(node, 0)
    if notes is not None:
        notes.extend(builder.notes)
    return data


def parse_trusted(text: str) -> Any:
    """Files xdsgen rendered itself (the draft's render, compared with the original)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _check_depth(data: Any, source: str) -> None:
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InventoryError(
                [_problem(source, f"the file nests deeper than {MAX_DEPTH} levels")]
            )
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


class _Builder:
    """Composed YAML nodes -> plain data, counting every value an alias repeats."""

    def __init__(self, source: str):
        self.source = source
        self.values = 0
        self.active: set[int] = set()
        self.constructor = yaml.SafeLoader("")
        self.notes: list[str] = []

    def fail(self, node: Any, message: str, hint: Optional[str] = None) -> InventoryError:
        return InventoryError([_problem(self.source, message, hint, node)])

    def build(self, node: Any, depth: int) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise self.fail(
                node,
                f"the YAML expands to more than {MAX_VALUES} values",
                "aliases (*name) repeat what an anchor (&name) marks: is this file hostile?",
            )
        if depth > MAX_DEPTH:
            raise self.fail(node, f"the YAML nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.active:
            raise self.fail(node, "a recursive YAML alias (a value that contains itself)")
        if node.tag not in (_MAP_TAG, _SEQ_TAG):
            raise self.fail(node, f"unsupported YAML tag {node.tag}", "Envoy does not read it")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, depth + 1) for item in node.value]
            return self.mapping(node, depth)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: Any, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise self.fail(
                    key_node,
                    "YAML merge keys (<<) are not read by Envoy (it refuses the field '<<')",
                    "write the keys out",
                )
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be a plain value, not a list or mapping")
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in result:
                self.notes.append(
                    f"{self.source}:{line}: duplicate key {key!r} (also at line {lines[key]}): "
                    "Envoy uses the last one, and so does the draft"
                )
                del result[key]
            lines[key] = line
            result[key] = self.build(value_node, depth + 1)
        return result

    def scalar(self, node: Any) -> Any:
        if node.tag == _STR_TAG:
            return node.value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            raise self.fail(
                node, f"unsupported YAML tag {node.tag}", "Envoy does not read it"
            ) from None
        except (ValueError, OverflowError):
            return str(node.value)
        if isinstance(value, (str, int, float, bool, type(None))):
            return value
        return str(node.value)  # timestamps, binary: Envoy reads the text


class Files:
    """Files an import reads: the ones given, and those they refer to (RDS, SDS, EDS, and a
    bootstrap's LDS/CDS), each read once.

    A referenced path is tried as written, then beside the file that names it: configs
    written for Docker name the container's paths.
    """

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}
        self.referenced_dirs: list[str] = []
        self.notes: list[str] = []
        # The directories config sources watch (path_config_source.watched_directory):
        # the original was swapped as a whole, so the draft says envoy.layout: directory.
        self.watched_dirs: list[str] = []

    def load(self, path: str) -> Any:
        key = os.path.abspath(path)
        if key not in self.cache:
            if len(self.cache) >= MAX_REFERENCED_FILES:
                raise InventoryError(
                    [_problem(path, f"more than {MAX_REFERENCED_FILES} files to read")]
                )
            self.cache[key] = snake_keys(load_document(path, self.notes))
        return self.cache[key]

    def find(self, path: str, referrer: str) -> Optional[str]:
        """The file a config refers to by `path`, or None when it is not there."""
        directory = os.path.dirname(path)
        if directory and directory not in self.referenced_dirs:
            self.referenced_dirs.append(directory)
        beside = os.path.dirname(os.path.abspath(referrer))
        candidates = [path] if os.path.isabs(path) else [os.path.join(beside, path), path]
        candidates.append(os.path.join(beside, os.path.basename(path)))
        for candidate in candidates:
            if os.path.exists(candidate):  # a FIFO or directory is refused by name when read
                shown = os.path.relpath(candidate)
                return candidate if shown.startswith("..") else shown
        return None


class RenderedFiles(Files):
    """The draft's own render, found by file name (never read from disk)."""

    def __init__(self, files: dict[str, str]):
        super().__init__()
        self.texts = files

    def load(self, path: str) -> Any:
        name = os.path.basename(path)
        if name not in self.cache:
            self.cache[name] = parse_trusted(self.texts[name])
        return self.cache[name]

    def find(self, path: str, referrer: str) -> Optional[str]:
        return path if os.path.basename(path) in self.texts else None
