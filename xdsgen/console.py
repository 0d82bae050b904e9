"""Output for people and for cron.

With a TTY (and no NO_COLOR / --no-color) output may be coloured through rich, imported
only when needed; without a TTY, or when rich is missing (OpenWrt has no package for
it), output is plain text. `quiet` silences everything but errors and warnings, so a cron
job mails only when something went wrong; `verbose` adds detail.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Optional, TextIO


def _rich_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("rich") is not None
    except (ImportError, ValueError):
        return False


@dataclass
class Console:
    color: bool = False
    quiet: bool = False
    verbose: bool = False
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr

    @classmethod
    def detect(
        cls, no_color: bool = False, quiet: bool = False, verbose: bool = False,
        out: Optional[TextIO] = None, err: Optional[TextIO] = None,
    ) -> Console:
        out = out or sys.stdout
        err = err or sys.stderr
        color = (
            not no_color
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
            and _isatty(out)
            and _rich_available()
        )
        return cls(color=color, quiet=quiet, verbose=verbose, out=out, err=err)

    @property
    def interactive(self) -> bool:
        """A person is watching (progress and colour make sense)."""
        return self.color

    def _rich(self, stream: TextIO) -> Any:
        from rich.console import Console as RichConsole

        return RichConsole(file=stream, highlight=False, soft_wrap=True)

    def _emit(self, text: str, style: Optional[str], stream: TextIO) -> None:
        if self.color and style:
            self._rich(stream).print(text, style=style, markup=False)
        else:
            print(text, file=stream, flush=True)

    def info(self, text: str, style: Optional[str] = None) -> None:
        if not self.quiet:
            self._emit(text, style, self.out)

    def detail(self, text: str) -> None:
        if self.verbose and not self.quiet:
            self._emit(text, "dim", self.out)

    def success(self, text: str) -> None:
        self.info(text, "green")

    def warn(self, text: str) -> None:
        self._emit(text, "yellow", self.err)

    def error(self, text: str) -> None:
        self._emit(text, "bold red", self.err)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
