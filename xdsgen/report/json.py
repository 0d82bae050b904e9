"""What the commands answer, for scripts: one JSON document on stdout, also when the
command fails (then an object with `error` and `exit_code`, or, for an invalid inventory,
the same `valid: false` object validate prints)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from xdsgen.errors import InventoryError, Problem, XdsgenError


class JsonReporter:
    format = "json"

    def __init__(self, out: TextIO = sys.stdout, console: Any = None):
        self.out = out
        # Progress and warnings go where a person reads them, never into the document.
        self.console = console

    def _print(self, document: Any) -> None:
        self.out.write(json.dumps(document, indent=2) + "\n")
        self.out.flush()

    def problems(self, problems: list[Problem]) -> None:
        """Warnings are part of each answer's document (no separate output)."""

    def invalid(self, exc: InventoryError, verb: str = "") -> None:
        self._print(
            {
                "valid": False,
                "errors": [p.as_dict() for p in exc.problems],
                "warnings": [w.as_dict() for w in exc.warnings],
            }
        )

    def error(self, exc: XdsgenError) -> None:
        self._print({"error": str(exc), "exit_code": exc.exit_code})

    def valid(self, source: str, summary: Any, warnings: list[Problem]) -> None:
        self._print(
            {
                "valid": True,
                "summary": summary.as_dict(),
                "warnings": [w.as_dict() for w in warnings],
            }
        )

    def status(self, result: Any) -> None:
        self._print(result.as_dict())

    def explain(self, target: Any, hops: list[Any]) -> None:
        self._print({"target": target.display, "hops": [h.as_dict() for h in hops]})

    def certificates(self, found: list[Any]) -> None:
        self._print({"certificates": [s.as_dict() for s in found]})

    def document(self, document: Any) -> None:
        self._print(document)
