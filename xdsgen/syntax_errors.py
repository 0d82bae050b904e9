"""Turn PyYAML's syntax errors into messages about what the person typed.

PyYAML says where its parser stopped, in parser terms. The common causes are few: a tab,
an indentation that matches nothing, a no-break space or typographic quotes pasted from
a web page, an unquoted IPv6 address in a flow mapping, a value with ": " in it. Each is
recognised here and said plainly, at the line where it is; anything else keeps PyYAML's
wording with its position.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from xdsgen.characters import pasted_in_line
from xdsgen.errors import Problem
from xdsgen.indentation import indentation_problem

TAB_HINT = "YAML indents with spaces, never tabs; in vi: :set expandtab, then :retab"

# PyYAML's wordings (pure Python and libyaml) for a block structure that broke.
_INDENTATION_PROBLEMS = (
    "mapping values are not allowed",
    "did not find expected key",
    "expected <block end>",
    "did not find expected '-' indicator",
    "could not find expected ':'",
    "expected <document start>",
)

_TOKEN_RE = re.compile(r"[^\s,{}\[\]\"']+")


def syntax_problems(
    exc: Any, text: str, source: str, compose: Callable[[str], object]
) -> list[Problem]:
    """Every problem one yaml.MarkedYAMLError stands for (usually one). `compose` parses a
    text the way the failing parse did (fixes are tried with it)."""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    lines = text.split("\n")
    char = ""
    if mark and mark.line < len(lines) and mark.column < len(lines[mark.line]):
        char = lines[mark.line][mark.column]
    problem = exc.problem or str(exc)
    if char == "\t" or "tab" in problem:
        return [
            Problem(
                line, column, "", "YAML syntax error: a tab character here", TAB_HINT, source=source
            )
        ]
    pasted = []
    for number, source_line in enumerate(lines[:line], start=1):
        found = pasted_in_line(source_line)
        if found:
            index, message, hint = found
            pasted.append(
                Problem(number, index + 1, "", f"YAML syntax error: {message}", hint, source=source)
            )
    if pasted:
        return pasted
    if mark and char == ":":
        ipv6 = _unquoted_ipv6(lines[mark.line], mark.column)
        if ipv6:
            return [
                Problem(
                    line,
                    column,
                    "",
                    f"YAML syntax error: the IPv6 address {ipv6} must be quoted: "
                    "inside { } or [ ] a value cannot start with ':'",
                    f'write "{ipv6}"',
                    source=source,
                )
            ]
    if mark and any(text in problem for text in _INDENTATION_PROBLEMS):
        found_indent = indentation_problem(text, line, compose)
        if found_indent:
            return [
                Problem(
                    found_indent.line,
                    found_indent.column,
                    "",
                    found_indent.message,
                    found_indent.hint,
                    source=source,
                )
            ]
    return [_worded(exc, mark, line, column, char, problem, source)]


def _unquoted_ipv6(line: str, column: int) -> str:
    """The unquoted IPv6 address (::1, ::, ::ffff:10.0.0.1) that covers `column`, or ""."""
    for match in _TOKEN_RE.finditer(line):
        if match.start() <= column < match.end() and match.group().startswith(":"):
            try:
                ipaddress.IPv6Address(match.group())
            except ValueError:
                return ""
            return match.group()
    return ""


def _worded(
    exc: Any, mark: Any, line: int, column: int, char: str, problem: str, source: str
) -> Problem:
    hint = None
    if "cannot start any token" in problem and char:
        message = f"YAML syntax error: {char!r} cannot start a value"
        hint = f'quote the value: "{char}..."' if char in "@`%" else None
    else:
        message = "YAML syntax error: " + problem
    if exc.context and exc.context_mark and exc.context_mark is not mark:
        context_line = exc.context_mark.line + 1
        context_column = exc.context_mark.column + 1
        if (context_line, context_column) != (line, column):
            message += f" ({exc.context} at line {context_line}, column {context_column})"
        else:
            message += f" ({exc.context})"
    elif exc.context:
        message += f" ({exc.context})"
    if (
        hint is None
        and exc.context_mark is not None
        and mark is not None
        and "expected" in problem
        and mark.index - exc.context_mark.index > 1024
    ):
        hint = "a YAML key is at most 1024 characters long (a name at most 64)"
    if hint is None and "mapping values are not allowed" in problem:
        hint = 'a value that contains ": " must be quoted'
    if hint is None and ("alias" in problem or "alias" in (exc.context or "")):
        hint = '* starts an alias in YAML: quote the value, e.g. "*.example.com"'
    if hint is None and "expected a single document" in (exc.context or "") + problem:
        hint = "an inventory is one YAML document: remove the --- line"
    return Problem(line, column, "", message, hint, source=source)
