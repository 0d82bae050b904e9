"""A big inventory read fast: the YAML people write for one, turned into data without
PyYAML's node graph, or None (then xdsgen/safeyaml.py reads it, as it reads every
inventory that is not big).

At 10 000 vhosts PyYAML composes ~230 000 nodes through Python objects and safeyaml
walks them, recording where every key is: ~0.6 s and ~100 MB before the model starts.
Here the block structure (mappings, sequences, "- key: value") is read line by line, and
every flow collection ({...} and [...] on one line: the common way to write a vhost or
a route) is turned into JSON by one regular expression and read by the C JSON parser,
all of them at once.

It accepts only what it can read exactly as PyYAML and safeyaml would, and returns None
for anything else, never a guess: comments after a value or on their own line, keys that
are plain words or quoted, values that are flow collections on one line, double-quoted
strings without escapes, single-quoted strings without quotes inside, plain scalars,
true/false/null/~ and decimal integers. A plain scalar that any YAML 1.1 resolver of
PyYAML's could read as something else than a string (yes, 012, 1.5, 2001-01-01, <<, ...)
is taken only where it is one of those few values, so anything PyYAML would turn into
another type, a date or an error sends the file to safeyaml. So do tags, anchors and
aliases, block scalars, multi-line flow collections or scalars, duplicate keys, document
markers, tabs, control and invisible characters (safeyaml's messages), and files with
more values than safeyaml allows. tests/test_fastyaml.py compares both readers on every
inventory in the repository and on mutations of them.

Positions are not recorded: they only serve messages, and the inventory reads them
(with safeyaml, one top-level section at a time) the first time a message needs one
(xdsgen/later_positions.py). Python < 3.11 (no possessive quantifiers in `re`) always
reads with safeyaml.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Optional

# Files below this size go to safeyaml directly: it reads them in a few milliseconds,
# and the messages for a small inventory never wait for a second parse.
FAST_FROM_BYTES = 64 * 1024


class _NotFast(Exception):
    """Outside what this reader takes: safeyaml reads the file."""


def _resolvers() -> tuple[str, str]:
    """PyYAML SafeLoader's implicit resolvers as patterns (verbose, as they are written)
    matching a whole scalar YAML would not read as a string: all of them, and each behind
    the first characters PyYAML tries it for (exactly its own choice)."""
    import yaml

    by_pattern: dict[str, set[str]] = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        for _, regexp in entries:
            by_pattern.setdefault(regexp.pattern, set()).add(first or "")
    every, chosen = [], []
    starts = "".join(sorted(re.escape(c) for firsts in by_pattern.values() for c in firsts if c))
    for pattern, firsts in sorted(by_pattern.items()):
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise RuntimeError(f"unexpected resolver pattern {pattern!r}")
        body = f"(?x:{pattern[1:-1]})"
        every.append(body)
        chars = "".join(sorted(re.escape(c) for c in firsts if c))
        if chars:
            chosen.append(f"(?=[{chars}]){body}")
    return "|".join(every), f"(?=[{starts}])(?:{'|'.join(chosen)})"


_COMPILED: dict[str, Any] = {}


def _patterns() -> dict[str, Any]:
    if not _COMPILED:
        resolvers, by_first = _resolvers()
        flow_end = r"(?=\s*(?:[,\]}]|:\s))"
        _COMPILED.update(
            # A plain scalar in a flow collection: it starts a token and ends before one.
            # Split on these, joined again by \x02 on both sides of each: the mark tells
            # them from strings written in quotes (a template per match costs 3x more).
            flow_plain=re.compile(
                r"(?<=[\[{, ])"
                r"((?:[^\s\-?:,\[\]{}#&*!|>'\"%@`\\]|-(?=[^\s,\[\]{}?]))"
                r"[^\s:,\[\]{}#\"\\?]*+"
                r"(?:(?::(?=[^\s,\[\]{}?])| ++(?=[^\s:,\[\]{}#\"\\?]))[^\s:,\[\]{}#\"\\?]*+)*+)"
                + flow_end
            ),
            # Those a resolver of PyYAML's reads as something else than a string lose
            # their marks: JSON then reads true/false/null/decimal integers as YAML does,
            # and refuses every other form (yes, 012, 1_000, 2001-01-01...).
            flow_resolved=re.compile(rf"\x02((?:{by_first}))\x02"),
            resolves=re.compile(rf"(?:{resolvers})\Z"),
            key=re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z"),
            comment=re.compile(
                # A run of spaces is taken whole or not at all ((?![\s#])): with `\s+(?!#)`
                # a long run splits in exponentially many ways before a failing match.
                r"((?:[^\"'#\s]|\s+(?![\s#])|\"[^\"\\\n]*\"|'[^'\n]*'|(?<=\S)#)*)\s+#.*\Z"
            ),
        )
    return _COMPILED


_WORDS = {"true": True, "false": False, "null": None, "~": None}
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW = object()  # a slot waiting for its flow collection


def parse(text: str, max_values: int) -> Optional[dict[str, Any]]:
    """The inventory's data, exactly as safeyaml would give it without problems; None
    when the text is outside what this reader takes (safeyaml then reads it)."""
    from xdsgen.safeyaml import checked_text

    if sys.version_info < (3, 11) or not checked_text(text):  # possessive quantifiers
        return None
    bound = sum(text.count(c) for c in ",[:-") + 1  # every value follows one of these
    if bound > max_values:
        return None
    try:
        return _parse(text)
    except (_NotFast, ValueError, RecursionError):
        return None


def _parse(text: str) -> dict[str, Any]:
    patterns = _patterns()
    slots: list[tuple[Any, Any]] = []
    flows: list[str] = []
    root = _Block(patterns, slots, flows).read(text.split("\n"))
    if not isinstance(root, dict):
        raise _NotFast
    if flows:
        # One substitution for all of them (each is one line: joined by newlines, split
        # back after), then each must be exactly one JSON value.
        marked = "\x02".join(patterns["flow_plain"].split("\n".join(flows)))
        converted = patterns["flow_resolved"].sub(r"\1", marked).replace("\x02", '"')
        converted = converted.split("\n")
        if len(converted) != len(slots):
            raise _NotFast
        decode = json.JSONDecoder(
            object_pairs_hook=_mapping, parse_float=_refuse, parse_constant=_refuse
        ).decode
        for (container, key), flow in zip(slots, converted):
            container[key] = decode(flow)
    return root


def _mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise _NotFast  # a duplicate key: safeyaml says where
    return mapping


def _refuse(text: str) -> Any:
    raise _NotFast  # floats, NaN, Infinity: not in this reader


_MAP, _SEQ = "map", "seq"
_MISSING = object()


class _Block:
    """The block structure, line by line (the algorithm of xdsgen/yamlsubset.py, whose
    tests cover it, with flow values and null values added)."""

    def __init__(self, patterns: dict[str, Any], slots: list[Any], flows: list[str]):
        self.patterns = patterns
        self.slots = slots
        self.flows = flows

    def read(self, lines: list[str]) -> Any:
        # Open collections, innermost last: [indent, kind, container, pending key].
        stack: list[list[Any]] = []
        top: Any = None
        root: Any = _MISSING
        comment = self.patterns["comment"]
        number = 0
        try:
            for number, line in enumerate(lines, 1):  # noqa: B007 - for the reason
                root, top = self.line(line, stack, top, root, comment)
        except _NotFast as exc:
            raise _NotFast(f"line {number}: {exc or 'outside this reader'}") from None
        for frame in stack:
            _settle(frame)
        return root

    def line(self, line: str, stack: list[list[Any]], top: Any, root: Any, comment: Any) -> Any:
        """Read one line into the open collections; (root, top) after it."""
        rest = line.lstrip(" ")
        if not rest or rest[0] == "#":
            return root, top
        if line.startswith(("---", "...", "%")):
            raise _NotFast("a document marker or directive")
        if "#" in rest:
            found = comment.match(rest)
            if found is not None:
                rest = found.group(1)
            if " #" in rest or rest[0] == "#":
                raise _NotFast("a comment not told from the value")
        rest = rest.rstrip(" ")
        col = len(line) - len(line.lstrip(" "))
        dashes = False
        while rest[:2] == "- " or rest == "-":
            if rest == "-":
                raise _NotFast("an empty entry, or one continued below")
            dashes = True
            top = _close(stack, top, col, seq_entry=True)
            if top is not None and top[1] is _SEQ and top[0] == col:
                _settle(top)
                top[3] = None
            else:
                seq: list[Any] = []
                root = _attach(top, root, seq, col, True)
                top = [col, _SEQ, seq, None]
                stack.append(top)
            col += 2
            rest = rest[2:]
            if rest[:1] == " ":
                raise _NotFast('spaces after "- "')
        key, value = self.key_value(rest)
        if key is None:
            if not dashes or value is None:
                raise _NotFast("a value outside an entry or key")
            top[2].append(None)
            self.value(value, top[2], len(top[2]) - 1)
            top[3] = _MISSING
            return root, top
        if top is None or top[0] != col or top[1] is not _MAP:
            top = _close(stack, top, col, seq_entry=False)
        if top is not None and top[1] is _MAP and top[0] == col:
            mapping = top[2]
            _settle(top)
        else:
            mapping = {}
            root = _attach(top, root, mapping, col, False)
            top = [col, _MAP, mapping, _MISSING]
            stack.append(top)
        if key in mapping:
            raise _NotFast("a duplicate key")
        if value is None:
            mapping[key] = None  # null, unless a nested block follows
            top[3] = key
        else:
            self.value(value, mapping, key)
        return root, top

    def key_value(self, rest: str) -> tuple[Optional[str], Optional[str]]:
        """(key, value text) of `key: value` or `key:`; (None, rest) for a bare value."""
        if rest[0] in "{[":
            return None, rest
        if rest[0] in "\"'":
            quote = rest[0]
            end = rest.find(quote, 1)
            if end > 0 and rest[end + 1 : end + 2] == ":":
                key = _quoted(rest[: end + 1])
                tail = rest[end + 2 :]
                if tail and tail[0] != " ":
                    raise _NotFast
                return key, (tail.lstrip(" ") or None)
            return None, rest
        head, sep, tail = rest.partition(": ")
        if not sep:
            if rest[-1] != ":":
                return None, rest
            head, tail = rest[:-1], ""
        if self.patterns["key"].match(head) is None:
            raise _NotFast
        if self.patterns["resolves"].match(head) is not None:
            raise _NotFast  # 80:, yes:, null: keys mean their text to safeyaml: rare here
        return head, (tail.lstrip(" ") or None)

    def value(self, text: str, container: Any, key: Any) -> None:
        first = text[0]
        if first in "{[":
            if text[-1] != ("}" if first == "{" else "]") or "'" in text or "\\" in text:
                raise _NotFast  # single quotes and escapes: not in JSON's terms
            container[key] = _FLOW
            self.slots.append((container, key))
            self.flows.append(text)
            return
        if first in "\"'":
            container[key] = _quoted(text)
            return
        if first in _PLAIN_START and not (first in "-?:" and text[1:2] not in ("", " ")):
            raise _NotFast
        if ": " in text or text.endswith(":"):
            raise _NotFast
        if self.patterns["resolves"].match(text) is None:
            container[key] = text
        elif text in _WORDS:
            container[key] = _WORDS[text]
        elif _DECIMAL.match(text) is not None:
            container[key] = int(text)
        else:
            raise _NotFast  # another type, a date, or an error in PyYAML


def _quoted(text: str) -> str:
    quote = text[0]
    if len(text) < 2 or text[-1] != quote:
        raise _NotFast
    body = text[1:-1]
    if quote in body or "\\" in body or (quote == "'" and '"' in body):
        raise _NotFast
    return body


def _settle(frame: list[Any]) -> None:
    """A mapping's pending key got no nested block: its value is null (already set)."""
    if frame[1] is _MAP:
        frame[3] = _MISSING
    elif frame[3] is not _MISSING:
        raise _NotFast  # "- " with nothing after it


def _close(stack: list[list[Any]], top: Any, col: int, seq_entry: bool) -> Any:
    """Close the collections that end before a line at `col`."""
    while top is not None and (
        top[0] > col
        or (top[0] == col and (top[1] is _MAP) == seq_entry and top[3] is _MISSING)
        or (top[0] == col and not seq_entry and top[1] is _SEQ)
    ):
        _settle(top)
        stack.pop()
        top = stack[-1] if stack else None
    return top


def _attach(top: Any, root: Any, child: Any, col: int, allow_same: bool) -> Any:
    """Make `child` (a collection starting at `col`) the value its parent waits for."""
    if top is None:
        if root is not _MISSING or col != 0:
            raise _NotFast
        return child
    if top[3] is _MISSING:
        raise _NotFast
    if top[1] is _MAP:
        if not (top[0] < col or (allow_same and top[0] == col)):
            raise _NotFast
        top[2][top[3]] = child
    else:
        if top[0] >= col:
            raise _NotFast
        top[2].append(child)
    top[3] = _MISSING
    return root
