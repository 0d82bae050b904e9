"""What `apply` and `rollback` show: the plan, progress, notes, the one result line.

Cron runs apply with no terminal: silence on success unless --verbose, errors and
warnings on stderr. A person at a terminal (stdout is a TTY, coloured or not) sees the
plan and the result line. With --format json, one document with the same facts.
"""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.errors import EXIT_CHANGES, EXIT_OK, IOProblem
from xdsgen.live.orchestrate import Options, Result, apply, rollback
from xdsgen.live.plan import Plan
from xdsgen.live.progress import quiet


def result_json(result: Result) -> dict[str, Any]:
    return {
        "plan": result.plan.as_dict(),
        "empty": result.plan.empty,
        "applied": result.applied,
        "confirmed": result.confirmed,
        "admin": result.admin,
        "notes": result.notes,
        "warnings": [w.as_dict() for w in result.warnings],
    }


def _exit(options: Options, result: Result) -> int:
    return EXIT_CHANGES if options.dry_run and not result.plan.empty else EXIT_OK


def _status_lines(console: Any) -> Any:
    """What a person at a terminal is told while a step takes longer than a second
    ("waiting for Envoy to confirm rds_http_ipv4…"); cron and scripts get nothing."""
    if not console.interactive or console.quiet:
        return quiet
    return lambda text: console.info(text, "dim")


def run_apply(inventory: str, options: Options, console: Any, out: Any) -> int:
    """`xdsgen apply` once: returns the exit code; errors propagate as XdsgenError."""
    if out.format == "json":
        result = apply(inventory, options, warn=console.warn)
        out.document(result_json(result))
        return _exit(options, result)
    talk = console.interactive or console.verbose
    if options.dry_run:
        result = apply(inventory, options)
        if result.warnings:
            console.problems(result.warnings)
        for note in result.notes:
            console.warn(f"note: {note}")
        console.plan(result.plan.changes, force=True)
        if options.diff and not result.plan.empty:
            console.out.write(result.plan.diff())
            console.out.flush()
        return _exit(options, result)

    def show_plan(plan: Plan) -> None:
        if talk:
            console.plan(plan.changes)
            if options.diff:
                console.out.write(plan.diff())
                console.out.flush()

    result = apply(
        inventory,
        options,
        progress=console.detail,
        warn=console.warn,
        show_plan=show_plan,
        status=_status_lines(console),
    )
    if result.warnings and (talk or not result.plan.empty):
        console.problems(result.warnings)
    if talk:
        console.success(result.line())
    elif result.applied and not result.confirmed:
        # --no-confirm from cron: never silent about writing what nobody confirmed.
        console.warn(f"warning: nothing was confirmed (--no-confirm); {result.line()}")
    return EXIT_OK


def run_rollback(
    inventory: Optional[str], config_dir: Optional[str], options: Options, console: Any, out: Any
) -> int:
    if config_dir is None:
        if inventory is None:
            raise IOProblem("rollback needs INVENTORY or --config-dir")
        from xdsgen.pipeline import load_model

        model = load_model(inventory, config_dir=None)
        config_dir = model.envoy.config_dir
        if options.admin is None:
            options.admin = str(model.envoy.admin)
    talk = console.interactive or console.verbose

    def show_plan(plan: Plan) -> None:
        if talk and out.format == "text":
            console.plan(plan.changes)

    result = rollback(
        config_dir,
        options,
        progress=console.detail,
        warn=console.warn,
        show_plan=show_plan,
        status=_status_lines(console) if out.format == "text" else quiet,
    )
    if out.format == "json":
        out.document(result_json(result))
        return _exit(options, result)
    if options.dry_run:
        console.plan(result.plan.changes, force=True)
        return _exit(options, result)
    if talk:
        console.success(
            "rolled back: " + result.line().partition(": ")[2] if result.applied else "unchanged"
        )
    return EXIT_OK
