"""A strict parser for the YAML subset xdsgen's templates write, for the parse-back check.

Why not PyYAML here: render.verify parses every rendered file back on every render, and at
10 000 vhosts that is ~8 MB of YAML. PyYAML, even with its C scanner, builds Python event,
mark and node objects for every token and resolves every scalar through Python code: about
3 s, longer than Envoy itself takes to load the same files. This parser reads the same
documents ~10x faster because it accepts only what the templates produce:

  block mappings and block sequences (two-space steps; "- " entries, also "key:" followed by
  an entry at the key's own indentation), keys that are plain words or double-quoted,
  scalars that are double-quoted (escapes \\" \\\\ \\n \\t \\r \\xHH \\uHHHH only), decimal
  integers without leading zeros, true/false, plain words of [A-Za-z][A-Za-z0-9_./-]* that no
  YAML reader takes for a boolean or null (so "on", "yes", "null" are refused), and the
  empty flow collections {} and [].

Lines that are empty or hold only a comment are skipped, as YAML does (a value cannot make
one: newlines in values are always escaped).

It is a real parser, not a pattern check: every line is consumed, and anything outside the
subset is an error, never skipped: comments after a value, tabs, control or line-break characters
(U+0085, U+2028...), anchors, aliases, tags, other flow collections, block or multi-line
scalars, document markers, null values, duplicate keys, inconsistent indentation. So if a
value ever escaped its quoting, the result either fails here or means something different
from the model, and verify refuses to write. For every document it accepts it returns what
PyYAML's safe_load returns; tests/test_yamlsubset.py checks that differentially on the
golden files, on hostile strings rendered through the templates and on random mutations.
"""

from __future__ import annotations

import re
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED_KEY = re.compile(r"(\"(?:[^\"\\]|\\.)*\"):(?: (.+))?")
_QUOTED = re.compile(r"\"((?:[^\"\\]|\\.)*)\"")
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
# Floats only as dump writes them (patches carry them): digits, a dot, digits, and an
# exponent with its sign, which YAML 1.1 needs to read a float at all.
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+(?:e[-+][0-9]+)?")
# What YAML 1.1 readers (PyYAML; yaml-cpp in Envoy) resolve to something other than a string.
_NOT_STRINGS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
# Characters the q filter always escapes: raw, they would be folded or rejected by YAML.
_FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|(.))")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}

# Kinds of open collections (compared by identity).
_MAP, _SEQ = "map", "seq"
_MISSING = object()


class SubsetError(ValueError):
    """The text is not in the subset (or not YAML at all)."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line


def _unescape_one(match: re.Match[str]) -> str:
    hex2, hex4, char = match.groups()
    if hex2 is not None:
        return chr(int(hex2, 16))
    if hex4 is not None:
        return chr(int(hex4, 16))
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char]
    raise ValueError(f"escape \\{char} is not one xdsgen writes")


def _quoted(text: str) -> str:
    match = _QUOTED.fullmatch(text)
    if match is None:
        raise ValueError(f"not one double-quoted scalar: {text[:60]!r}")
    body = match.group(1)
    if "\\" in body:
        body = _ESCAPE.sub(_unescape_one, body)
    return body


def _scalar(text: str, floats: bool = False) -> Any:
    first = text[0]
    if first == '"':
        return _quoted(text)
    if text == "true":
        return True
    if text == "false":
        return False
    if first == "-" or first.isdigit():
        if floats and "." in text and _FLOAT.fullmatch(text):
            return float(text)
        if _INT.fullmatch(text) is None or text == "-0":
            raise ValueError(f"not a plain decimal integer: {text[:60]!r}")
        return int(text)
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if _PLAIN.fullmatch(text) is None or text.lower() in _NOT_STRINGS:
        raise ValueError(f"not a value xdsgen writes unquoted: {text[:60]!r}")
    return text


def parse(text: str, floats: bool = False) -> Any:
    """The document's value; SubsetError for anything outside the subset. `floats`: also
    read floats as `dump` writes them (files with patches; templates never write one)."""
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise SubsetError(line, f"character U+{ord(bad.group()):04X} must be escaped")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    try:
        root = _parse_lines(lines, floats)
    except _LineError as exc:
        raise SubsetError(exc.number, exc.message) from None
    if root is _MISSING:
        raise SubsetError(len(lines), "empty document")
    return root


class _LineError(Exception):
    def __init__(self, number: int, message: str):
        super().__init__(message)
        self.number = number
        self.message = message


def _parse_lines(lines: list[str], floats: bool = False) -> Any:
    # The open collections, innermost last: [indent, kind, container, pending]. A mapping's
    # pending is the key whose value follows on the next lines; a sequence's pending is None
    # between "- " and its item. _MISSING: nothing pending. The common case (another key of
    # the mapping on the line before) takes the first branch and touches nothing else.
    stack: list[list[Any]] = []
    top: Any = None
    root: Any = _MISSING
    # Keys and values repeat thousands of times in a big config: each distinct text is
    # checked once. Only immutable results are cached ({} and [] are built fresh).
    keys: dict[str, str] = {}
    values: dict[str, Any] = {}
    missing = _MISSING
    number = 0
    try:
        for number, line in enumerate(lines, 1):  # noqa: B007 - for the error message
            rest = line.lstrip(" ")
            if not rest or rest[0] == "#":
                continue  # blank, or a comment line a template wrote
            col = len(line) - len(rest)
            dashes = False
            while rest and rest[0] == "-" and rest[1:2] == " ":
                # A sequence entry at column col: close what ends here, then a new entry
                # of the sequence at col, or a new sequence as the value waiting for it.
                dashes = True
                while top is not None and (
                    top[0] > col or (top[0] == col and top[1] is _MAP and top[3] is missing)
                ):
                    if top[3] is not missing:
                        raise ValueError('a key or "- " without a value')
                    stack.pop()
                    top = stack[-1] if stack else None
                if top is not None and top[1] is _SEQ and top[0] == col:
                    if top[3] is not missing:
                        raise ValueError("an empty sequence entry")
                    top[3] = None
                else:
                    seq: list[Any] = []
                    root = _attach(top, root, seq, col, True)
                    top = [col, _SEQ, seq, None]
                    stack.append(top)
                col += 2
                rest = rest[2:]
                if rest[:1] == " ":
                    raise ValueError('wrong indentation after "- "')
            if not rest:
                raise ValueError("an empty sequence entry")
            key: Any = None
            value: Any = None
            if rest[0] == '"':
                match = _QUOTED_KEY.fullmatch(rest)
                if match is not None:
                    key = _quoted(match.group(1))
                    value = match.group(2)
            else:
                head, sep, tail = rest.partition(": ")
                if sep:
                    if not tail:
                        raise ValueError("a key without a value")
                    key, value = head, tail
                elif rest[-1] == ":":
                    key = rest[:-1]
                if key is not None:
                    checked = keys.get(key)
                    if checked is None:
                        if _PLAIN_KEY.fullmatch(key) is None or key.lower() in _NOT_STRINGS:
                            raise ValueError(f"not a key xdsgen writes: {key[:60]!r}")
                        keys[key] = checked = key
                    key = checked
            if key is None:
                # A bare value: only as the item of a "- " on the same line.
                if not dashes:
                    raise ValueError("a value outside a sequence entry or key")
                item = values.get(rest, missing)
                top[2].append(_value(rest, values, floats) if item is missing else item)
                top[3] = missing
                continue
            if top is not None and top[0] == col and top[1] is _MAP:
                if top[3] is not missing:
                    raise ValueError(f"key {top[3]!r} has no value")
                mapping = top[2]
            else:
                while top is not None and (top[0] > col or (top[0] == col and top[1] is _SEQ)):
                    if top[3] is not missing:
                        raise ValueError('a key or "- " without a value')
                    stack.pop()
                    top = stack[-1] if stack else None
                if top is not None and top[1] is _MAP and top[0] == col:
                    if top[3] is not missing:
                        raise ValueError(f"key {top[3]!r} has no value")
                    mapping = top[2]
                else:
                    mapping = {}
                    root = _attach(top, root, mapping, col, False)
                    top = [col, _MAP, mapping, missing]
                    stack.append(top)
            if key in mapping:
                raise ValueError(f"duplicate key {key!r}")
            if value is None:
                top[3] = key
            else:
                item = values.get(value, missing)
                mapping[key] = _value(value, values, floats) if item is missing else item
        for frame in stack:
            if frame[3] is not missing:
                raise ValueError('a key or "- " without a value')
    except ValueError as exc:
        raise _LineError(number, str(exc)) from None
    return root


def _value(text: str, cache: dict[str, Any], floats: bool = False) -> Any:
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if (
        text[0] == '"'
        and text[-1] == '"'
        and len(text) > 1
        and "\\" not in text
        and '"' not in text[1:-1]
    ):
        value: Any = text[1:-1]
    else:
        value = _scalar(text, floats)
    cache[text] = value
    return value


def _attach(top: Any, root: Any, child: Any, col: int, allow_same: bool) -> Any:
    """Make `child` (a collection starting at `col`) the value its parent waits for."""
    if top is None:
        if root is not _MISSING or col != 0:
            raise ValueError("a second top-level value, or the document does not start at column 0")
        return child
    if top[3] is _MISSING:
        raise ValueError("wrong indentation")
    if top[1] is _MAP:
        # A mapping's value is indented more, or (sequences only) at the key's column.
        if not (top[0] < col or (allow_same and top[0] == col)):
            raise ValueError("wrong indentation")
        top[2][top[3]] = child
    else:
        if top[0] >= col:
            raise ValueError("wrong indentation")
        top[2].append(child)
    top[3] = _MISSING
    return root


# --------------------------------------------------------------------------- writing

# Characters a YAML double-quoted scalar cannot hold literally, or that a YAML 1.1 reader
# (PyYAML, and Envoy's yaml-cpp) would fold or treat as a line break: escape them all.
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]')
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if "\ud800" <= char <= "\udfff":
        # Not UTF-8 encodable, and yaml-cpp (Envoy) refuses a \uD800 escape.
        raise ValueError(f"a lone surrogate (U+{ord(char):04X}) cannot be written as YAML")
    # \uXXXX (never surrogate pairs: characters above U+FFFF are written as they are, in
    # UTF-8; yaml-cpp and PyYAML both read \xXX and \uXXXX as the code point).
    return f"\\u{ord(char):04X}" if ord(char) > 0xFF else f"\\x{ord(char):02X}"


def quote(text: str) -> str:
    """`text` as a double-quoted scalar of the subset (what the templates' q filter prints)."""
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} cannot be written for Envoy")
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + (f"e{exponent}" if e else "")


def _dump_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return quote(value)
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    raise ValueError(f"{type(value).__name__} values are not in the subset: {value!r:.60}")


def _dump_key(key: Any) -> str:
    if not isinstance(key, str):
        raise ValueError(f"mapping keys are strings, not {type(key).__name__}")
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _NOT_STRINGS:
        return key
    return quote(key)


def _is_block(value: Any) -> bool:
    return isinstance(value, (dict, list)) and bool(value)


def _dump(value: Any, indent: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_block(item):
                out.append(f"{indent}{_dump_key(key)}:")
                # Sequences sit at their key's column, mappings two deeper (as the templates).
                _dump(item, indent if isinstance(item, list) else indent + "  ", out)
            else:
                out.append(f"{indent}{_dump_key(key)}: {_dump_scalar(item)}")
        return
    for item in value:
        if not _is_block(item):
            out.append(f"{indent}- {_dump_scalar(item)}")
            continue
        nested: list[str] = []
        _dump(item, indent + "  ", nested)
        # The item's first line moves up behind the dash.
        out.append(f"{indent}- {nested[0][len(indent) + 2 :]}")
        out.extend(nested[1:])


def dump(value: dict[str, Any]) -> str:
    """A mapping as YAML of exactly the subset `parse` reads back to the same value (every
    string double-quoted): for files xdsgen builds from data rather than from a template."""
    if not isinstance(value, dict) or not value:
        raise ValueError("the document is a non-empty mapping")
    out: list[str] = []
    _dump(value, "", out)
    return "\n".join(out) + "\n"
