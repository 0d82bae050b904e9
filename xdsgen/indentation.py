"""Say which line's indentation does not match which, when PyYAML gives up on a file.

PyYAML reports where its parser got stuck, in its own words ("mapping values are not
allowed here", "did not find expected key"), sometimes a line after the real mistake,
and once with wrong advice. A person who added one space too many wants to hear: line 6
is indented 3 spaces, the keys it belongs with are at 2.

The lines up to PyYAML's error are re-read with a small model of block structure
(mappings and lists nested by indentation); the first line that fits no open level is
the problem. Often two readings explain it (that line is off, or the first line of its
block was), so each reading's proposed edit is applied and the text parsed again: the
reading whose edit lets YAML read furthest is reported, and when no edit gets past the
error, nothing is (the caller keeps PyYAML's words: a wrong hint is worse than none).
Text the model does not follow (multi-line quoted strings, document markers, tabs)
gets no reading either.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Callable, Optional

# "key:" or "key: value" at the start of a line's content (plain or quoted key).
_KEY_RE = re.compile(
    r"""(?P<key>"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"\[\]{},&*!|>%@`][^#]*?)\s*:(?:\s|$)"""
)


@dataclass
class _Level:
    column: int
    kind: str  # "map" (keys at this column) or "seq" ("-" entries at this column)
    line: int  # the latest line with an entry at this level
    label: str  # that entry: the key, or "-"
    entries: int = 1
    inner: bool = False  # opened after a "- " on its line, not at the line's indentation
    # Its first entry was "key:" whose block never came (the next line stayed at its
    # column): that key line may be the one moved right, its block now beside it.
    first: int = 0
    first_label: str = ""
    empty_opener: bool = False

    def named(self) -> str:
        return "the '-'" if self.kind == "seq" else f"'{self.label}'"


@dataclass
class _Line:
    number: int
    indent: int
    kind: str  # "map" (a key first), "seq" (a "-" first) or "text" (a continued value)
    label: str
    inner: list[_Level]  # levels the line opens after its first entry ("- key: v")
    opens: Optional[tuple[int, bool]]  # (column, is_key) when the value follows on next lines
    block_scalar: bool
    flow_depth: int


@dataclass(frozen=True)
class IndentProblem:
    line: int
    column: int
    message: str
    hint: str
    fixes: tuple[tuple[int, int], ...]  # (line, spaces to add or remove) the hint proposes
    # Between readings whose fixes parse as far, the one that keeps the file's own step
    # (2 spaces per level, usually) is the likelier.
    keeps_step: bool = False
    candidates: tuple[_Level, ...] = ()  # the levels the hint names, in its order


class _Unsure(Exception):
    """The text uses YAML this model does not follow: keep PyYAML's message."""


def _spaces(count: int) -> str:
    return f"{count} space" + ("" if count == 1 else "s")


def _strip_comment(text: str) -> str:
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'" and (index == 0 or text[index - 1] in " \t[{,:"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    if quote:
        raise _Unsure("a quoted value continues on the next line")
    return text.rstrip()


def _flow_depth(text: str) -> int:
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return depth


def _parse_line(number: int, raw: str) -> _Line:
    indent = len(raw) - len(raw.lstrip(" "))
    if raw[indent : indent + 1] == "\t":
        raise _Unsure("tab")
    text = _strip_comment(raw)
    position = indent
    first: Optional[tuple[str, str]] = None
    inner: list[_Level] = []
    opens: Optional[tuple[int, bool]] = None
    # Leading "- " entries: "- - a" nests lists, "- key: v" opens a mapping in the entry.
    while text[position : position + 1] == "-" and text[position + 1 : position + 2] in ("", " "):
        if first is None:
            first = ("seq", "-")
        else:
            inner.append(_Level(position, "seq", number, "-", inner=True))
        dash = position
        position += 1
        while text[position : position + 1] == " ":
            position += 1
        if position >= len(text):
            opens = (dash, False)
            break
    rest = text[position:]
    block_scalar = False
    depth = 0
    if rest:
        match = _KEY_RE.match(rest)
        if match:
            key = match.group("key").strip("\"'")
            if first is None:
                first = ("map", key)
            else:
                inner.append(_Level(position, "map", number, key, inner=True))
            value = rest[match.end() :].strip()
            if value == "" or re.fullmatch(r"[&!]\S*", value):
                opens = (position, True)
            elif re.fullmatch(r"[|>][-+0-9]*", value):
                block_scalar = True
                opens = (position, True)
            else:
                depth = _flow_depth(value)
        else:
            depth = _flow_depth(rest)
            if first is None:
                first = ("text", rest)
    if first is None:
        first = ("seq", "-")
    return _Line(number, indent, first[0], first[1], inner, opens, block_scalar, depth)


def _significant_lines(text: str) -> Iterator[_Line]:
    depth = 0
    scalar_parent: Optional[int] = None  # column of the key of an open | or > block
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        stripped = raw.strip(" ")
        if depth > 0:  # inside a multi-line [ ] or { }
            depth += _flow_depth(_strip_comment(raw))
            continue
        if scalar_parent is not None:
            if not stripped or len(raw) - len(raw.lstrip(" ")) > scalar_parent:
                continue
            scalar_parent = None
        if not stripped or stripped.startswith("#"):
            continue
        if raw.startswith(("---", "...", "%")):
            raise _Unsure("document markers and directives")
        line = _parse_line(number, raw)
        if line.block_scalar and line.opens:
            scalar_parent = line.opens[0]
            line.opens = None
        depth = max(line.flow_depth, 0)
        yield line


def _describe_candidates(candidates: list[_Level]) -> str:
    parts = []
    for index, level in enumerate(candidates):
        if level.column == 0:
            how = "start it in the first column" if index == 0 else "or in the first column"
        else:
            how = f"{'indent it ' if index == 0 else 'or '}{_spaces(level.column)}"
        parts.append(f"{how}, like {level.named()} on line {level.line}")
    return ", ".join(parts)


def _candidates(levels: list[_Level], line: _Line) -> list[_Level]:
    wanted = "seq" if line.kind == "seq" else "map"
    same = [level for level in levels if level.kind == wanted] or levels
    # Nearest first; between two as near, the deeper one (the block just above).
    return sorted(same, key=lambda level: (abs(level.column - line.indent), -level.column))[:2]


def _problem(line: int, column: int, message: str, candidates: list[_Level]) -> IndentProblem:
    return IndentProblem(
        line,
        column + 1,
        f"YAML syntax error: {message}",
        _describe_candidates(candidates),
        tuple((line, level.column - column) for level in candidates),
        candidates=tuple(candidates),
    )


def _step(lines: list[_Line]) -> int:
    """The file's usual indentation step: how far a key's block is indented past the key."""
    steps: Counter[int] = Counter()
    for before, after in zip(lines, lines[1:]):
        if before.opens and before.opens[1] and after.indent > before.opens[0]:
            steps[after.indent - before.opens[0]] += 1
    return steps.most_common(1)[0][0] if steps else 2


def _check(lines: list[_Line], error_line: int) -> list[IndentProblem]:
    """The first misfit line as a problem, and maybe the other reading of it: the first
    line of its block was the odd one (YAML takes a block's indentation from it)."""
    levels: list[_Level] = []
    pending: Optional[tuple[int, bool]] = None
    for line in lines:
        if line.number > error_line:
            return []
        kind = "seq" if line.kind == "seq" else "map"
        nested = not levels
        if pending is not None:
            column, is_key = pending
            nested = line.indent > column or (is_key and kind == "seq" and line.indent == column)
        previous, pending = pending, None
        if nested:
            if line.kind != "text":
                levels.append(_Level(line.indent, kind, line.number, line.label, first=line.number))
                levels[-1].first_label = line.label
                levels.extend(line.inner)
                pending = line.opens
            continue
        deepest = levels[-1]
        if line.indent > deepest.column:
            if line.kind == "text":
                continue  # a plain value continued on the next line: valid YAML
            found = _problem(
                line.number,
                line.indent,
                f"line {line.number} is indented {_spaces(line.indent)}, more than "
                f"{deepest.named()} on line {deepest.line} ({_spaces(deepest.column)}), "
                "which already has its value",
                [deepest],
            )
            return [found, *_first_of_block(levels, line, _step(lines))]
        open_levels = list(levels)
        while levels and levels[-1].column > line.indent:
            levels.pop()
        while levels and levels[-1].column == line.indent and levels[-1].kind != kind:
            levels.pop()  # "key:" followed by "- item" lines at the key's own column
        if not levels or levels[-1].column != line.indent:
            if line.kind == "text":
                return []
            found = _mismatch(line, open_levels)
            return [
                found,
                *_first_of_block(open_levels, line, _step(lines)),
                *_empty_opener(open_levels, line, _step(lines)),
            ]
        if (
            levels[-1].entries == 1
            and previous is not None
            and previous == (line.indent, True)
            and levels[-1].first == levels[-1].line
        ):
            levels[-1].empty_opener = True
        levels[-1].line, levels[-1].label = line.number, line.label
        levels[-1].entries += 1
        levels.extend(line.inner)
        pending = line.opens
    return []


def _first_of_block(levels: list[_Level], line: _Line, step: int) -> list[IndentProblem]:
    """Readings in which an open block's only line so far is the mistake and `line`, the
    next one, has the indentation the block should have."""
    kind = "seq" if line.kind == "seq" else "map"
    readings = []
    for index, level in enumerate(levels):
        if level.entries != 1 or level.kind != kind or level.column == line.indent:
            continue
        delta = line.indent - level.column
        # The line that would move: the level's own line, or for an entry opened after
        # "- " on its line, that line with its "-" (whose level is the one before).
        own = index - 1 if level.inner else index
        parent = levels[own - 1].column if own > 0 else -1
        moved_to = (levels[own].column if level.inner else level.column) + delta
        if not parent < moved_to:
            continue
        keeps_step = moved_to == (parent + step if parent >= 0 else 0)
        if not level.inner:
            reading = _problem(
                level.line,
                level.column,
                f"line {level.line} is indented {_spaces(level.column)}, but the next lines "
                f"of its block are indented {_spaces(line.indent)} (from line {line.number})",
                [_Level(line.indent, kind, line.number, line.label)],
            )
            readings.append(replace(reading, keeps_step=keeps_step))
            continue
        readings.append(
            IndentProblem(
                level.line,
                level.column + 1,
                f"YAML syntax error: {level.named()} on line {level.line} starts after "
                f"{_spaces(level.column)}, but the next lines of its entry are indented "
                f"{_spaces(line.indent)} (from line {line.number})",
                f"move line {level.line} {_spaces(abs(delta))} to the "
                f"{'right' if delta > 0 else 'left'}, to line {level.named()} up with "
                f"'{line.label}' on line {line.number}",
                ((level.line, delta),),
                keeps_step,
            )
        )
    return readings


def _empty_opener(levels: list[_Level], line: _Line, step: int) -> list[IndentProblem]:
    """Readings in which the first key of a deeper level was moved right: its block, at
    its own column, then read as its siblings, and `line` is where the key belongs."""
    readings = []
    for index, level in enumerate(levels):
        parent = levels[index - 1].column if index > 0 else -1
        if not level.empty_opener or level.inner or not parent < line.indent < level.column:
            continue
        delta = line.indent - level.column
        readings.append(
            IndentProblem(
                level.first,
                level.column + 1,
                f"YAML syntax error: line {level.first} is indented {_spaces(level.column)}, "
                f"like the lines after it, but '{line.label}' on line {line.number} is at "
                f"{_spaces(line.indent)}: '{level.first_label}' seems moved, its block "
                "read as its neighbours",
                f"move line {level.first} {_spaces(-delta)} to the left, to line "
                f"'{level.first_label}' up with '{line.label}' on line {line.number}",
                ((level.first, delta),),
                keeps_step=line.indent == (parent + step if parent >= 0 else 0),
            )
        )
    return readings


def _mismatch(line: _Line, open_levels: list[_Level]) -> IndentProblem:
    same_column = [level for level in open_levels if level.column == line.indent]
    what = "a list entry ('-')" if line.kind == "seq" else f"the key '{line.label}'"
    if same_column:
        other = same_column[-1]
        message = (
            f"line {line.number} is {what} indented like {other.named()} on line "
            f"{other.line} ({_spaces(line.indent)}), but "
            f"{'only keys' if other.kind == 'map' else 'only list entries'} belong there"
        )
    else:
        message = (
            f"line {line.number} is indented {_spaces(line.indent)}, which matches no line above it"
        )
    return _problem(line.number, line.indent, message, _candidates(open_levels, line))


def _progress(text: str, fix: tuple[int, int], compose: Callable[[str], object]) -> float:
    """How far YAML parses once line fix[0] is moved fix[1] spaces (inf: all of it)."""
    lines = text.split("\n")
    number, delta = fix
    old = lines[number - 1]
    indent = len(old) - len(old.lstrip(" "))
    lines[number - 1] = " " * max(indent + delta, 0) + old.lstrip(" ")
    try:
        compose("\n".join(lines))
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        return mark.line + 1 if mark is not None else 0
    return math.inf


def indentation_problem(
    text: str, error_line: int, compose: Callable[[str], object]
) -> Optional[IndentProblem]:
    """The first line up to `error_line` (1-based) whose indentation fits no open level.

    Every reading is tried: its fix is applied and the text parsed again with `compose`.
    The reading whose fix lets YAML get furthest wins; one whose fixes get no further
    than the error is not reported at all."""
    lines: list[_Line] = []
    try:
        for line in _significant_lines(text):
            lines.append(line)
    except _Unsure:
        if not lines or lines[-1].number < error_line:
            return None  # the part up to the error is not understood
    best: Optional[IndentProblem] = None
    best_rank = (float(error_line), True)
    for reading in _check(lines, error_line):
        progress = [_progress(text, fix, compose) for fix in reading.fixes]
        if len(progress) == 2 and progress[1] > progress[0]:
            # The hint's second choice reads further: offer it first.
            order = list(reversed(reading.candidates))
            reading = replace(
                reading,
                hint=_describe_candidates(order),
                fixes=tuple(reversed(reading.fixes)),
                candidates=tuple(order),
            )
        rank = (max(progress), reading.keeps_step)
        if rank > best_rank or (best is None and rank[0] > best_rank[0]):
            best, best_rank = reading, rank
    return best
