"""What the commands answer, for people: plain text, or rich's colours and tables on a
terminal. Lines fit 80 columns and wrap at spaces. The plain forms are stable: scripts and
tests may read them."""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.errors import InventoryError, Problem, XdsgenError
from xdsgen.report.console import Console, plain_table, terminal_width, wrap
from xdsgen.upstream_status import traffic


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class TextReporter:
    format = "text"

    def __init__(self, console: Console):
        self.console = console

    # ------------------------------------------------------------------ the pieces

    def problems(self, problems: list[Problem]) -> None:
        if problems:
            self.console.problems(problems)

    def invalid(self, exc: InventoryError, verb: str = "nothing written") -> None:
        """Every error (and warning) of an invalid inventory, then one count line."""
        self.problems(exc.problems + exc.warnings)
        self.console.error(f"{plural(len(exc.problems), 'error')}; {verb}.")

    def error(self, exc: XdsgenError) -> None:
        self.console.error(f"error: {exc}")

    # ------------------------------------------------------------------ answers

    def valid(self, source: str, summary: Any, warnings: list[Problem]) -> None:
        """validate's answer: the one-line summary, and (colour or --verbose) a table of
        what the inventory makes per address family."""
        console = self.console
        self.problems(warnings)
        if console.quiet:
            return
        line = f"{source}: valid: {summary.line()}"
        width = terminal_width(console.out)
        rich = console.rich_console(console.out) if console.color else None
        if rich is None:
            print(wrap(line, width, "  "), file=console.out, flush=True)
            if console.verbose:
                for row in plain_table(*summary_table(summary)):
                    print(row, file=console.out)
            return
        from rich.text import Text

        rich.print(
            Text(f"{source}: ", style="bold")
            + Text("valid", style="bold green")
            + Text(f": {summary.line()}")
        )
        console.table(*summary_table(summary))

    def rendered(self, directory: str, written: int, total: int) -> None:
        unchanged = total - written
        if written == 0:
            line = f"{directory}: all {total} files already up to date, nothing written"
        else:
            line = f"wrote {written} of {total} files to {directory}" + (
                f" ({unchanged} unchanged)" if unchanged else ""
            )
        self.console.note(line)

    def wrote(self, path: str) -> None:
        self.console.note(f"wrote {path}")

    def status(self, result: Any) -> None:
        """The answer is printed even under --quiet: it is what the person asked for."""
        console = self.console
        head = (
            f"Envoy {result.envoy_version} at {result.admin}: {result.state}, up {result.uptime}"
            + (f"; config dir {result.config_dir}" if result.config_dir else "")
        )
        console.info(wrap(head, terminal_width(console.out), "  "), "bold", force=True)
        has_inventory = any(r.inventory is not None for r in result.resources)
        columns = [
            "file",
            *(["inventory"] if has_inventory else []),
            "on disk",
            "applied",
            "updates",
            "refused",
            "state",
        ]
        rows, styles = [], []
        for r in result.resources:
            rows.append(
                [
                    r.file,
                    *([_short(r.inventory)] if has_inventory else []),
                    _short(r.on_disk),
                    _short(r.applied),
                    r.updates,
                    r.rejected + r.failed,  # both in --format json; to a person, Envoy said no
                    r.state,
                ]
            )
            styles.append(
                "green" if r.state == "in sync" and not (r.rejected or r.failed) else "yellow"
            )
        console.table(columns, rows, title="config", row_styles=styles, force=True)
        _upstream_tables(console, result)

    def explain(self, target: Any, hops: list[Any]) -> None:
        """Rich: coloured blocks. Plain: a block per listener (wide tables wrap badly in a
        terminal of 80 columns and in mail from cron)."""
        console = self.console
        title = f"explain {target.display}"
        if not hops:
            console.info(f"{title}: no listener serves it", force=True)
            return
        blocks = []
        for hop in hops:
            lines = []
            if hop.sni_match:
                lines.append(("sni", f"{hop.sni_match} -> filter chain {hop.chain}"))
            if hop.vhost:
                lines.append(("vhost", f"{hop.vhost} ({hop.vhost_match})"))
            if hop.route:
                lines.append(("route", hop.route))
            if hop.allow:
                verdict = ""
                if hop.allowed is not None:
                    verdict = f": {hop.source} is " + ("in it" if hop.allowed else "not in it")
                lines.append(("allow", f"only {hop.allow}{verdict}"))
            elif hop.source is not None and hop.outcome in ("upstream", "passthrough", "redirect"):
                lines.append(("allow", "everyone"))
            if hop.auth and hop.allowed is not False:
                lines.append(("auth", hop.auth))
            lines.append(("result", hop.result))
            if hop.backup:
                lines.append(("backup", ", ".join(hop.backup) + " (while no endpoint is healthy)"))
            if hop.health_check:
                lines.append(("health", hop.health_check))
            if hop.error_page and hop.outcome == "upstream":
                lines.append(("page", f"Envoy's own 502/503/504 answers show {hop.error_page}"))
            if hop.timeouts:
                lines.append(("times", hop.timeouts))
            if hop.patches:
                lines.append(("patch", "; ".join(hop.patches)))
            blocks.append((f"{hop.family} {hop.kind} :{hop.port} (listener {hop.listener})", lines))
        width = terminal_width(console.out)
        rich = console.rich_console(console.out) if console.color else None
        if rich is None:
            out = [title]
            for head, lines in blocks:
                out.append(head)
                out.extend(wrap(f"  {key:<7}{value}", width, " " * 9) for key, value in lines)
            print("\n".join(out), file=console.out, flush=True)
            return
        from rich.text import Text

        rich.print(Text(title, style="bold"))
        for hop, (head, lines) in zip(hops, blocks):
            rich.print(Text(head, style="bold"))
            colour = {
                "upstream": "green",
                "passthrough": "green",
                "redirect": "cyan",
                "direct": "yellow",
            }.get(hop.outcome, "red")
            if hop.allowed is False:
                colour = "red"
            for key, value in lines:
                rich.print(
                    Text.assemble(
                        (f"  {key:<7}", "dim"), (value, colour if key == "result" else "")
                    )
                )

    def certificates(self, found: list[Any]) -> None:
        from xdsgen.certs import COLUMNS, table_rows

        self.console.table(COLUMNS, table_rows(found), force=True)


def _short(version: Optional[str]) -> str:
    return "-" if version is None else version[:8]


def summary_table(summary: Any) -> tuple[list[str], list[list[str]]]:
    """Columns and rows: per family, the ports of each kind of listener (runs folded)."""
    from xdsgen.summary import port_runs

    columns = ["family", "http", "https", "tcp", "udp"]
    rows = []
    for family, entries in sorted(summary.listeners.items()):
        by_kind: dict[str, list[int]] = {kind: [] for kind in columns[1:]}
        for entry in entries:
            kind, _, port = entry.partition(" ")
            by_kind.setdefault(kind, []).append(int(port))
        rows.append(
            [family, *(port_runs(by_kind[kind]).replace(", ", " ") or "-" for kind in columns[1:])]
        )
    return columns, rows


def _upstream_tables(console: Console, result: Any) -> None:
    """status's tables after the config one: upstreams, their endpoints, access."""
    # Columns that fit 80 characters with upstream names up to ~20 characters.
    columns = [
        "upstream",
        "health",
        "active",
        "requests",
        "5xx",
        "failed cx",
        "sent",
        "received",
    ]
    rows, styles = [], []
    for u in result.upstreams:
        rows.append(
            [
                u.name + ("" if u.in_inventory in (None, True) else " (not in inventory)"),
                u.health,
                u.active_connections,
                u.requests,
                u.errors_5xx,
                u.connect_failures,
                *traffic(u),
            ]
        )
        fine = u.health in ("healthy", "no check") and not u.errors_5xx
        styles.append("green" if fine else "yellow")
    console.table(
        columns, rows, title="upstreams (since Envoy started)", row_styles=styles, force=True
    )
    columns = ["upstream", "endpoint", "role", "health", "requests", "errors"]
    rows, styles = [], []
    for u in result.upstreams:
        for e in u.per_endpoint:
            rows.append([u.name, e.address, e.role, e.health, e.requests, e.errors])
            styles.append("green" if e.healthy else "yellow")
    if rows:
        console.table(columns, rows, title="endpoints", row_styles=styles, force=True)
    if result.access:
        console.table(
            ["listener", "allow", "auth", "refused", "auth fail"],
            [
                [a.listener, a.allow, a.auth or "-", a.not_allowed, a.auth_refused]
                for a in result.access
            ],
            title="access (refused since Envoy started)",
            force=True,
        )
