"""Reading YAML that people wrote by hand: safe to read, strict to parse, located.

The file is edited over SSH and parts of it are pasted from elsewhere, so this is strict
where YAML is lenient: files that are too big, binary, not UTF-8, a FIFO or a directory
are refused before parsing; duplicate keys (PyYAML keeps the last one), merge keys, tags,
recursive or exploding aliases and invisible characters are errors; every problem found
before the first one that stops parsing is reported together, each with its line, column
and key path. The inventory loader and `xdsgen import` both read through here.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any, Optional, Union

import yaml

from xdsgen.characters import LOOKALIKE_SPACES, TYPOGRAPHIC_QUOTES, char_name, pasted_in_value
from xdsgen.errors import InventoryError, PathKey, Problem, format_path

# A hand-written inventory is a few KB (a thousand vhosts is ~150 KB): anything near this
# is the wrong file, and refusing it before reading keeps a router's RAM safe.
MAX_INVENTORY_BYTES = 4 * 1024 * 1024
# Aliases can make a few lines expand to billions of values ("billion laughs").
MAX_VALUES = 1_000_000  # ~60 000 vhosts; the 4 MB file limit comes first


# Characters no inventory value needs and that make text lie about itself when pasted:
# control characters (tab and newline included: every value is one line), line and
# paragraph separators, invisible formatting (zero-width space, BOM, bidi overrides),
# lone surrogates (not encodable as UTF-8) and non-characters. The Unicode 14 categories
# Cc, Cf, Cs, Zl, Zp plus the non-characters, written out so that start-up scans nothing.
_SUSPICIOUS_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ud800-\udfff\ufdd0-\ufdef\ufeff"
    "\ufff9-\ufffb\ufffe-\uffff\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
    "|[\U0001fffe-\U0001ffff\U0002fffe-\U0002ffff\U0003fffe-\U0003ffff\U0004fffe-\U0004ffff"
    "\U0005fffe-\U0005ffff\U0006fffe-\U0006ffff\U0007fffe-\U0007ffff\U0008fffe-\U0008ffff"
    "\U0009fffe-\U0009ffff\U000afffe-\U000affff\U000bfffe-\U000bffff\U000cfffe-\U000cffff"
    "\U000dfffe-\U000dffff\U000efffe-\U000effff\U000ffffe-\U000fffff\U0010fffe-\U0010ffff]"
)


# What makes a string take the slow path of the checks: the characters above, plus the
# lookalike spaces and typographic quotes of pasted text (refused only in plain scalars).
_CHECK_RE = re.compile(
    _SUSPICIOUS_RE.pattern + "|[" + "".join(sorted(LOOKALIKE_SPACES | TYPOGRAPHIC_QUOTES)) + "]"
)


def _loader_class() -> type:
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if base.yaml_path_resolvers or None in base.yaml_implicit_resolvers:
        return base
    return _fast_resolver(base)


_FAST_LOADERS: dict[type, type] = {}


def _fast_resolver(base: Any) -> type:
    """`base` with PyYAML's own `resolve` minus the path-resolver and wildcard branches,
    which SafeLoader never has (checked by the caller). The C composer calls `resolve` for
    every scalar: on a 10 000-vhost inventory the generic version costs ~0.1 s."""
    if base not in _FAST_LOADERS:
        implicit_resolvers = base.yaml_implicit_resolvers
        scalar_tag, seq_tag, map_tag = (
            base.DEFAULT_SCALAR_TAG,
            base.DEFAULT_SEQUENCE_TAG,
            base.DEFAULT_MAPPING_TAG,
        )
        scalar_node, seq_node = yaml.ScalarNode, yaml.SequenceNode

        def resolve(self: Any, kind: Any, value: Any, implicit: Any) -> Any:
            if kind is scalar_node:
                if implicit[0]:
                    for tag, regexp in implicit_resolvers.get(value[:1], ()):
                        if regexp.match(value):
                            return tag
                return scalar_tag
            return seq_tag if kind is seq_node else map_tag

        _FAST_LOADERS[base] = type("FastResolveLoader", (base,), {"resolve": resolve})
    return _FAST_LOADERS[base]


def _file_problem(
    source: str, message: str, hint: str | None = None, line: int = 0, column: int = 0
) -> InventoryError:
    return InventoryError([Problem(line, column, "", message, hint, source=source)])


def _line_column(data: Union[bytes, str], offset: int) -> tuple[int, int]:
    newline = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
    column = offset - (data.rfind(newline, 0, offset) + 1) + 1  # type: ignore[arg-type]
    return line, column


def read_text(
    path: str,
    kind: str = "an inventory",
    max_bytes: int = MAX_INVENTORY_BYTES,
    example: str = "/etc/xdsgen/inventory.yaml",
) -> str:
    """Read the file as UTF-8 text, turning every OS and encoding failure into an InventoryError.

    `kind` and `example` word the messages for other hand-written files (`xdsgen import`
    reads Envoy configs with the same limits and checks)."""
    source = str(path)
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise _file_problem(
                source,
                f"is a directory, not {kind} file",
                f"give the path of the YAML file, e.g. {example}",
            )
        if not stat.S_ISREG(info.st_mode):
            # Reading a FIFO or a terminal would block a cron run forever.
            raise _file_problem(
                source,
                "is not a regular file (a pipe, socket or device)",
                "give the path of the YAML file",
            )
        if info.st_size > max_bytes:
            raise _file_problem(
                source,
                f"file is {info.st_size} bytes; {kind} is at most {max_bytes} bytes",
                "is this the right file?",
            )
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise _file_problem(source, "file not found", "check the path") from None
    except NotADirectoryError:
        raise _file_problem(
            source, "file not found: a part of the path is not a directory"
        ) from None
    except PermissionError:
        raise _file_problem(
            source, "permission denied", "run as a user who can read it, or fix its mode"
        ) from None
    except OSError as exc:
        raise _file_problem(source, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:  # it grew while we looked
        raise _file_problem(source, f"file is larger than {max_bytes} bytes")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _file_problem(
            source, "file is UTF-16 text, not UTF-8", "save it as UTF-8", line=1, column=1
        )
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, column = _line_column(raw, nul)
        raise _file_problem(
            source,
            "file contains NUL bytes: not a text file",
            "is this the right file?",
            line,
            column,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw, exc.start)
        raise _file_problem(
            source,
            f"not UTF-8 text (byte {raw[exc.start : exc.start + 1]!r})",
            "save the file as UTF-8; is it a binary file?",
            line,
            column,
        ) from None
    # YAML 1.1 treats these as line breaks, even inside quotes, where they silently become
    # a space: a pasted value would not be what the editor shows.
    for char in ("\x85", "\u2028", "\u2029"):
        offset = text.find(char)
        if offset >= 0:
            line, column = _line_column(text, offset)
            raise _file_problem(
                source,
                f"the character {char_name(char)} is not allowed: YAML reads it as a line break",
                "remove it; it may have been pasted",
                line,
                column,
            )
    return text


def suspicious_character(text: str) -> Optional[tuple[int, str]]:
    """(index, description) of the first character no inventory value may contain."""
    match = _SUSPICIOUS_RE.search(text)
    if match is None:
        return None
    return match.start(), char_name(match.group())


def checked_text(text: str) -> bool:
    """Whether no value of `text` can hold a character the checks above refuse or look at
    (any such character anywhere, comments included, says no): xdsgen/fastyaml.py reads
    only such texts, and PyYAML's reader refuses nothing that these checks let through."""
    if text.isascii():  # the common case, and a much smaller set to look for
        return _ASCII_CONTROL_RE.search(text) is None
    return _CHECK_RE.search(text.replace("\n", " ")) is None


# The characters of _CHECK_RE that are ASCII, but the line break.
_ASCII_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f]")


def _in_patch(path: PathKey) -> bool:
    """A value inside a patch's merge (patches[N].merge...)."""
    return len(path) > 2 and path[0] == "patches" and path[2] == "merge"


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"


class _Builder:
    """Turn a composed node graph into plain data, collecting every problem on the way."""

    def __init__(self, source: str):
        self.source = source
        self.positions: dict[PathKey, tuple[int, int]] = {}
        self.raw: dict[PathKey, str] = {}
        self.problems: list[Problem] = []
        self.broken: set[PathKey] = set()  # paths whose value the loader replaced
        self.values = 0
        self.active: set[int] = set()  # collection nodes being built: a repeat is recursion
        self.constructor = yaml.SafeLoader("")  # only for scalar resolution and construction

    def problem(
        self, node: yaml.Node, path: PathKey, message: str, hint: str | None = None
    ) -> None:
        self.problems.append(
            Problem(
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                format_path(path),
                message,
                hint,
                source=self.source,
            )
        )

    def check_string(self, node: yaml.Node, path: PathKey, value: str, what: str) -> None:
        text = value
        if _in_patch(path):  # Envoy config: Lua code, an inline PEM have lines and tabs
            text = value.replace("\n", " ").replace("\t", " ")
        found = suspicious_character(text)
        if found is not None:
            index, name = found
            self.problem(
                node,
                path,
                f"{what} contains the invisible or control character {name} "
                f"at position {index + 1}",
                "values are single-line visible text: retype it, it may have been pasted",
            )
            self.broken.add(path)
            return
        # Only unquoted text: inside quotes the person chose every character.
        pasted = pasted_in_value(value) if not getattr(node, "style", None) else None
        if pasted is not None:
            index, message, hint = pasted
            mark = node.start_mark
            column = mark.column + 1
            if mark.line == node.end_mark.line:
                column += index
            self.problems.append(
                Problem(mark.line + 1, column, format_path(path), message, hint, source=self.source)
            )
            self.broken.add(path)

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise _Abort(
                Problem(
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    format_path(path),
                    f"the YAML expands to more than {MAX_VALUES} values",
                    "aliases (*name) repeat what an anchor (&name) marks: write it out",
                    source=self.source,
                )
            )
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.active:
                self.problem(
                    node,
                    path,
                    "a recursive YAML alias (a value that contains itself)",
                    "write the value out",
                )
                self.broken.add(path)
                return None
            if node.tag not in (_MAP_TAG, _SEQ_TAG):
                tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
                self.problem(node, path, f"unsupported YAML tag {tag}", "remove the !tag")
            self.active.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.mapping(node, path)
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(
                    key_node, path, "YAML merge keys (<<) are not supported", "write the keys out"
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a key must be a plain value, not a list or mapping")
                continue
            # Plain string keys and values take inline fast paths that do exactly what
            # scalar() and build() do for them: a 10 000-vhost inventory has ~200 000.
            if key_node.tag == _STR_TAG and type(key_node) is yaml.ScalarNode:
                key = key_node.value
                key_path: PathKey = (*path, key)
                if _CHECK_RE.search(key) is not None:
                    self.check_string(key_node, key_path, key, "the key")
            else:
                text_path = (*path, str(key_node.value))
                key = self.scalar(key_node, text_path, is_key=True)
                if not isinstance(key, str):
                    key = str(key_node.value)  # 012: or no: as keys mean the text written
                key_path = text_path if key == text_path[-1] else (*path, key)
            if key in result:
                first = self.positions.get(key_path, (0, 0))
                self.problem(
                    key_node,
                    key_path,
                    f"duplicate key {key!r} (first at line {first[0]})",
                    "YAML would silently keep only the last one; remove one of them",
                )
                continue
            mark = key_node.start_mark
            position = (mark.line + 1, mark.column + 1)
            self.positions[key_path] = position
            if (
                type(value_node) is yaml.ScalarNode
                and value_node.tag == _STR_TAG
                and self.values < MAX_VALUES
            ):
                self.values += 1
                value = value_node.value
                if _CHECK_RE.search(value) is not None:
                    self.check_string(value_node, key_path, value, "the value")
                result[key] = value
                continue
            result[key] = self.build(value_node, key_path)
            # A key's position is where the key is written, not its value.
            self.positions[key_path] = position
        return result

    def scalar(self, node: yaml.Node, path: PathKey, is_key: bool = False) -> Any:
        try:
            if node.tag == _STR_TAG and type(node) is yaml.ScalarNode:
                # Exactly what SafeConstructor.construct_yaml_str returns, without its
                # dispatch: most values are strings, and this is the hot path at 10 000 vhosts.
                value = node.value
            else:
                value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            self.problem(
                node,
                path,
                f"unsupported YAML tag {tag}"
                if "constructor for the tag" in str(exc.problem)
                else f"unsupported YAML value: {exc.problem}",
                "remove the !tag; quote the value if the ! belongs to it",
            )
            self.broken.add(path)
            return None
        except (ValueError, OverflowError) as exc:  # e.g. a timestamp out of range
            self.problem(node, path, f"invalid YAML value: {exc}", "quote it")
            self.broken.add(path)
            return None
        if isinstance(value, str):
            if _CHECK_RE.search(value) is not None:
                self.check_string(node, path, value, "the key" if is_key else "the value")
            return value
        if not is_key and isinstance(node, yaml.ScalarNode) and not node.style:
            self.raw[path] = str(node.value)
        if not isinstance(value, (str, int, float, bool, type(None))):
            # Timestamps and binary: the inventory has no such values; keep the text written.
            return str(node.value)
        return value


class _Abort(Exception):
    def __init__(self, problem: Problem):
        super().__init__(problem.message)
        self.problem = problem


def _compose(text: str, source: str) -> Optional[yaml.Node]:
    try:
        return yaml.compose(text, Loader=_loader_class())
    except yaml.MarkedYAMLError as exc:
        from xdsgen.syntax_errors import syntax_problems

        loader = _loader_class()
        problems = syntax_problems(exc, text, source, lambda t: yaml.compose(t, Loader=loader))
        raise InventoryError(problems) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        raise _file_problem(
            source,
            f"the character {char_name(char)} is not allowed in YAML",
            "remove it; YAML files are visible text",
            line,
            column,
        ) from None
    except yaml.YAMLError as exc:
        raise _file_problem(source, f"YAML error: {exc}") from None
    except RecursionError:
        raise _file_problem(source, "the YAML is nested too deeply") from None


def parse_yaml(text: str, source: str) -> tuple[Any, dict[PathKey, tuple[int, int]]]:
    """Compose the YAML and build plain data, recording where each key path is."""
    data, positions, _, problems, _ = _parse(text, source)
    if problems:
        raise InventoryError(problems)
    return data, positions


def _parse(
    text: str, source: str
) -> tuple[Any, dict[PathKey, tuple[int, int]], dict[PathKey, str], list[Problem], set[PathKey]]:
    node = _compose(text, source)
    if node is None:
        message = "the file is empty" if not text.strip() else "the file has only comments"
        raise _file_problem(source, message, "start from examples/home-router.yaml")
    builder = _Builder(source)
    try:
        data = builder.build(node, ())
    except _Abort as exc:
        raise InventoryError([*builder.problems, exc.problem]) from None
    except RecursionError:
        raise _file_problem(source, "the YAML is nested too deeply") from None
    return data, builder.positions, builder.raw, builder.problems, builder.broken
