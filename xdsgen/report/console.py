"""Output for people and for cron.

With a TTY (and no NO_COLOR / --no-color) output may be coloured through rich, imported
only when needed; without a TTY, or when rich is missing (OpenWrt has no package for
it), output is plain text. `quiet` silences everything but errors and warnings, so a cron
job mails only when something went wrong; `verbose` adds detail.

The plain forms are stable: scripts and tests may read them. Rich forms carry the same
words, only with colour and box drawing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TextIO

# A plan's actions: the symbol shown, the words in the totals line, the colour.
PLAN_ACTIONS = {
    "+": ("add", "green"),
    "~": ("change", "yellow"),
    "-": ("remove", "red"),
}
MAX_EXCERPT = 160  # characters of an inventory line shown under an error


def _rich_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("rich") is not None
    except (ImportError, ValueError):
        return False


def color_wanted(stream: TextIO, no_color: bool = False) -> bool:
    return (
        not no_color
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
        and _isatty(stream)
        and _rich_available()
    )


@dataclass
class Console:
    color: bool = False
    quiet: bool = False
    verbose: bool = False
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    err_color: Optional[bool] = None  # None: same as `color`
    width: Optional[int] = None  # rich's width; None: the terminal's
    tty: bool = False  # stdout is a terminal: a person is watching

    @classmethod
    def detect(
        cls,
        no_color: bool = False,
        quiet: bool = False,
        verbose: bool = False,
        out: Optional[TextIO] = None,
        err: Optional[TextIO] = None,
    ) -> Console:
        out = out or sys.stdout
        err = err or sys.stderr
        return cls(
            color=color_wanted(out, no_color),
            quiet=quiet,
            verbose=verbose,
            out=out,
            err=err,
            err_color=color_wanted(err, no_color),
            tty=_isatty(out),
        )

    @property
    def interactive(self) -> bool:
        """A person is watching (stdout is a terminal, coloured or not: OpenWrt has no
        rich, and --no-color must not silence the plan)."""
        return self.tty

    def _uses_color(self, stream: TextIO) -> bool:
        if stream is self.err and self.err_color is not None:
            return self.err_color
        return self.color

    def rich_console(self, stream: TextIO) -> Any:
        """A rich console for `stream`, or None when rich cannot be imported."""
        try:
            from rich.console import Console as RichConsole
        except ImportError:
            return None
        return RichConsole(
            file=stream, highlight=False, soft_wrap=True, force_terminal=True, width=self.width
        )

    def _emit(self, text: str, style: Optional[str], stream: TextIO) -> None:
        rich = self.rich_console(stream) if self._uses_color(stream) and style else None
        if rich is not None:
            rich.print(text, style=style, markup=False)
        else:
            print(text, file=stream, flush=True)

    def info(self, text: str, style: Optional[str] = None, force: bool = False) -> None:
        """A line of the answer on stdout; `force`: even under --quiet (the command's
        answer itself, as for status)."""
        if force or not self.quiet:
            self._emit(text, style, self.out)

    def note(self, text: str) -> None:
        """A line about what was done (wrote FILE) on stderr, so stdout stays the answer."""
        if not self.quiet:
            self._emit(text, None, self.err)

    def detail(self, text: str) -> None:
        if self.verbose and not self.quiet:
            self._emit(text, "dim", self.out)

    def success(self, text: str) -> None:
        self.info(text, "green")

    def warn(self, text: str) -> None:
        self._emit(text, "yellow", self.err)

    def error(self, text: str) -> None:
        self._emit(text, "bold red", self.err)

    # ------------------------------------------------------------------ tables

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        title: Optional[str] = None,
        styles: Optional[Sequence[Optional[str]]] = None,
        row_styles: Optional[Sequence[Optional[str]]] = None,
        stream: Optional[TextIO] = None,
        force: bool = False,
    ) -> None:
        """A table: rich's when colour is on, else aligned plain columns (header, then rows).

        `force` prints even under --quiet (the table is the command's answer, as for status).
        """
        if self.quiet and not force:
            return
        stream = stream or self.out
        rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
        rich = self.rich_console(stream) if self._uses_color(stream) else None
        if rich is None:
            if title:
                print(title, file=stream)
            for line in plain_table(columns, rows):
                print(line, file=stream)
            stream.flush()
            return
        from rich import box
        from rich.table import Table
        from rich.text import Text

        # Light rules and no wrapping but in the last column: a table a person reads in an
        # 80-column terminal (ssh to a router) should keep each row on one line.
        table = Table(
            title=title,
            title_justify="left",
            header_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for index, column in enumerate(columns):
            last = index == len(columns) - 1
            # The last column wraps instead of the others; it must not shrink to nothing.
            widest = max([len(column)] + [len(row[index]) for row in rows if index < len(row)])
            table.add_column(
                column,
                style=(styles[index] if styles else None),
                overflow="fold",
                no_wrap=not last,
                min_width=min(widest, 12) if last else None,
            )
        for index, row in enumerate(rows):
            table.add_row(
                *(Text(cell) for cell in row), style=row_styles[index] if row_styles else None
            )
        rich.print(table)

    # ------------------------------------------------------------------ apply plan

    def plan(self, changes: Iterable[Any], title: Optional[str] = None, force: bool = False) -> str:
        """Print an apply plan and return its totals line ("2 to add, 1 to change, 0 to remove").

        Each change is an object with attributes `action`, `kind`, `name` (and optionally
        `detail`), a mapping with those keys, or a tuple (action, kind, name[, detail]).
        `action` is "+", "~" or "-". Plain form, one line a change:
        "  + cluster  grafana  detail".
        """
        entries = [normalize_change(c) for c in changes]
        totals = plan_totals(entries)
        if self.quiet and not force:
            return totals
        if not entries:
            self._emit("no changes", "green", self.out)
            return totals
        rich = self.rich_console(self.out) if self.color else None
        has_detail = any(e[3] for e in entries)
        if rich is None:
            if title:
                print(title, file=self.out)
            rows = [
                [action, kind, name, *([detail] if has_detail else [])]
                for action, kind, name, detail in entries
            ]
            for line in plain_table(None, rows, indent="  "):
                print(line, file=self.out)
            print(totals, file=self.out, flush=True)
            return totals
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=title, title_justify="left", header_style="bold", box=None, pad_edge=False
        )
        table.add_column("", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("name", overflow="fold")
        if has_detail:
            table.add_column("detail", style="dim", overflow="fold")
        for action, kind, name, detail in entries:
            style = PLAN_ACTIONS[action][1]
            cells = [Text(action, style=f"bold {style}"), Text(kind), Text(name, style=style)]
            if has_detail:
                cells.append(Text(detail))
            table.add_row(*cells)
        rich.print(table)
        rich.print(Text(totals, style="bold"))
        return totals

    # ------------------------------------------------------------------ problems

    def problems(self, problems: Iterable[Any], show_source: bool = True) -> None:
        """Errors and warnings as blocks: the located message, then the inventory line
        with a caret under the column. The first line of each block is Problem.format()."""
        cache: dict[str, Optional[list[str]]] = {}
        rich = self.rich_console(self.err) if self._uses_color(self.err) else None
        for problem in problems:
            excerpt = source_excerpt(problem, cache) if show_source else []
            if rich is None:
                print(problem.format(), file=self.err)
                for line in excerpt:
                    print(line, file=self.err)
                continue
            from rich.text import Text

            style = "bold red" if problem.severity == "error" else "bold yellow"
            head = problem.format()
            marker = f": {problem.severity}: "
            where, _, rest = head.partition(marker)
            text = Text()
            text.append(where, style="bold")
            text.append(marker, style=style)
            text.append(rest)
            rich.print(text)
            for index, line in enumerate(excerpt):
                rich.print(Text(line, style="red" if index == len(excerpt) - 1 else "dim"))
        self.err.flush()


def normalize_change(change: Any) -> tuple[str, str, str, str]:
    if isinstance(change, Mapping):
        action, kind, name, detail = (change.get(k) for k in ("action", "kind", "name", "detail"))
    elif isinstance(change, (tuple, list)):
        action, kind, name, detail = [*list(change), None][:4]
    else:
        action, kind, name = change.action, change.kind, change.name
        detail = getattr(change, "detail", None)
    action = str(action)
    if action not in PLAN_ACTIONS:
        raise ValueError(f"unknown plan action {action!r}: use +, ~ or -")
    return action, str(kind), str(name), "" if detail is None else str(detail)


def plan_totals(entries: Sequence[tuple[str, str, str, str]]) -> str:
    counts = {symbol: 0 for symbol in PLAN_ACTIONS}
    for action, *_ in entries:
        counts[action] += 1
    return ", ".join(f"{counts[symbol]} to {word}" for symbol, (word, _) in PLAN_ACTIONS.items())


def plain_table(
    columns: Optional[Sequence[str]], rows: Sequence[Sequence[str]], indent: str = ""
) -> list[str]:
    """Aligned columns separated by two spaces; trailing spaces trimmed."""
    all_rows = ([list(columns)] if columns else []) + [list(r) for r in rows]
    if not all_rows:
        return []
    widths = [
        max(len(row[i]) if i < len(row) else 0 for row in all_rows) for i in range(len(all_rows[0]))
    ]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def source_excerpt(problem: Any, cache: dict[str, Optional[list[str]]]) -> list[str]:
    """The problem's inventory line and a caret under its column, or nothing when the
    file or line cannot be read (a problem with the file itself has no line)."""
    source, line_no, column = problem.source, problem.line, problem.column
    if not source or line_no <= 0:
        return []
    if source not in cache:
        try:
            with open(source, encoding="utf-8-sig", errors="replace") as handle:
                cache[source] = handle.read().splitlines()
        except OSError:
            cache[source] = None
    lines = cache[source]
    if not lines or line_no > len(lines):
        return []
    text = lines[line_no - 1]
    if not text.strip():
        return []
    if len(text) > MAX_EXCERPT:
        text = text[:MAX_EXCERPT] + " ..."
    gutter = f"{line_no:>5} | "
    lines_out = [gutter + text]
    if column > 0:
        # Keep tabs under tabs so the caret lines up however the terminal expands them.
        lead = "".join("\t" if ch == "\t" else " " for ch in text[: column - 1])
        lines_out.append(" " * (len(gutter) - 2) + "| " + lead + "^")
    return lines_out


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width(stream: TextIO) -> Optional[int]:
    """The terminal's width for `stream`; None for files, pipes and cron mail (no wrapping:
    scripts read one line per item)."""
    if not _isatty(stream):
        return None
    if os.environ.get("COLUMNS", "").isdigit() and int(os.environ["COLUMNS"]) > 0:
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


def wrap(text: str, width: Optional[int], indent: str = "") -> str:
    """Wrap at spaces only (a path or an address is never cut in the middle), on a
    terminal; elsewhere the text stays one line."""
    import textwrap

    if width is None:
        return text

    return textwrap.fill(
        text,
        width=width,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
