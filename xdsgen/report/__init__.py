"""Presentation: what each command shows a person (plain or rich text) or a script (JSON).

  console.py  the text primitives: colour only on a terminal with rich, plain otherwise;
              quiet for cron, verbose for details; tables, plans, problems with their line
  text.py     TextReporter: the answer of each command, for people
  json.py     JsonReporter: the same answers as one JSON document (errors too)
  apply.py    apply and rollback as commands: the plan, progress, the result line

The commands' work lives elsewhere (xdsgen.live, xdsgen.status, xdsgen.explain, ...); the
CLI picks one reporter per run (`--format text|json`) and hands it each result.
"""

from __future__ import annotations

from typing import Any, Union

from xdsgen.report.console import Console
from xdsgen.report.json import JsonReporter
from xdsgen.report.text import TextReporter

Reporter = Union[TextReporter, JsonReporter]


def make_reporter(output_format: str, console: Console) -> Any:
    if output_format == "json":
        return JsonReporter(console.out, console)
    return TextReporter(console)


__all__ = ["Console", "JsonReporter", "Reporter", "TextReporter", "make_reporter"]
