"""`xdsgen apply` and `xdsgen rollback`: change a live Envoy atomically, in make-before-break
order, confirmed through its admin interface, restored to the last confirmed config when
anything fails.

The sequence (every failure before step 6 leaves the config directory untouched):
  1. validate and render in memory (exit 1 on any problem)
  2. take the directory's lock (exit 4), sweep temp files a killed run left
  3. reach Envoy's admin (exit 6 when it does not answer, unless --no-confirm), settle
     what an interrupted apply left in the journal, warn about drift
  4. plan against the files of ours on disk; nothing to do -> "unchanged", no file touched
  5. `envoy --mode validate` on the inlined config when the change needs it (live/check.py
     says when), run while the journal is written (exit 3, the journal dropped, no file
     of Envoy's touched)
  6. journal the target, then the steps of plan.plan_steps, each written by rename and
     confirmed before the next; on failure the same ordered transition back to the last
     confirmed config (exit 3, or 6 when a file could not be written)
  7. record what Envoy accepted in DIR/.xdsgen/state.json (for `rollback` and restores)
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from xdsgen import conventions as xds
from xdsgen.admin import Admin, AdminUnreachable, parse_address
from xdsgen.errors import IOProblem, UsageProblem, XdsgenError
from xdsgen.live import layout
from xdsgen.live.blobs import BLOB_DIR
from xdsgen.live.certs import fingerprint, reloads_needed, reloads_to_give
from xdsgen.live.lock import locked, state_dir
from xdsgen.live.plan import Plan, compute_plan
from xdsgen.live.progress import announced, quiet
from xdsgen.live.state import State, state_path
from xdsgen.live.transition import read_files, steps_for, transition
from xdsgen.parsed import resources_of
from xdsgen.speed import gc_paused

DEFAULT_TIMEOUT = 10.0
DEFAULT_SETTLE = 1.0
DEFAULT_LOCK_TIMEOUT = 60.0
DRY_RUN_ADMIN_TIMEOUT = 1.0

Say = Callable[[str], None]


_quiet = quiet


def _no_plan(_: Plan) -> None:
    pass


@dataclass
class Options:
    config_dir: Optional[str] = None  # default: the inventory's envoy.config_dir
    admin: Optional[str] = None  # unix:PATH or HOST:PORT; default: the inventory's envoy.admin
    timeout: float = DEFAULT_TIMEOUT
    settle: float = DEFAULT_SETTLE
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    envoy_check: Optional[str] = None  # None: when an Envoy binary is found; "": off; else a path
    dry_run: bool = False
    diff: bool = False
    no_confirm: bool = False  # write without Envoy's admin (the first files before Envoy runs)


@dataclass
class Result:
    plan: Plan
    applied: bool = False
    confirmed: bool = False
    admin: str = ""
    warnings: list[Any] = field(default_factory=list)  # the inventory's Problems
    model: Any = None  # the Model applied (None for rollback)
    notes: list[str] = field(default_factory=list)  # drift and recovery, said once

    def line(self) -> str:
        if self.plan.empty:
            return "unchanged"
        how = (
            f"confirmed by Envoy at {self.admin}"
            if self.confirmed
            else "NOT confirmed (--no-confirm)"
        )
        return f"applied: {self.plan.totals()}; {how}"


# --------------------------------------------------------------------------- Envoy's admin


def blob_dir(config_dir: str) -> str:
    return os.path.join(state_dir(config_dir), BLOB_DIR)


def resolve_admin(text: Optional[str], model: Any, timeout: float) -> Optional[Admin]:
    if text:
        try:
            return Admin(parse_address(text), timeout)
        except ValueError as exc:
            raise UsageProblem(f"--admin {text!r}: {exc}") from None
    if model is not None:
        return Admin.for_model(model, timeout)
    return None


def reach(admin: Optional[Admin], options: Options) -> Optional[dict[str, str]]:
    """Envoy's stats, None with --no-confirm; IOProblem (exit 6) when the admin is silent:
    writing files nobody confirms is how a dead Envoy passes for success in cron."""
    if admin is None or options.no_confirm:
        return None
    try:
        stats = admin.apply_stats(timeout=options.timeout)
        if not any(name.startswith("listener_manager.") for name in stats):
            raise AdminUnreachable(
                f"{admin.address} answered /stats, but not with Envoy's stats",
                "not Envoy's stats",
            )
        return stats
    except AdminUnreachable as exc:
        raise IOProblem(
            f"{exc}; nothing was written.\nIs Envoy running with xdsgen's bootstrap? Before "
            "Envoy runs for the first time, write the first files with `xdsgen render`; "
            "`apply --no-confirm` writes without confirmation."
        ) from None


def stale_files(files: dict[str, str], stats: Optional[dict[str, str]]) -> dict[str, str]:
    """Files on disk whose version Envoy does not run (edited in place, or once refused):
    file name -> the version Envoy reports instead."""
    if stats is None:
        return {}
    from xdsgen.live.confirm import subscriptions

    prefixes = {xds.CDS_FILE: xds.CDS_STATS, xds.LDS_FILE: xds.LDS_STATS}
    prefixes.update(subscriptions(files.get(xds.LDS_FILE)))
    stale = {}
    for name, prefix in prefixes.items():
        key = f"{prefix}.version_text"
        if name not in files or (key not in stats and name not in (xds.CDS_FILE, xds.LDS_FILE)):
            continue
        if stats.get(key, "") != xds.file_version(files[name]):
            stale[name] = stats.get(key, "")
    return stale


# --------------------------------------------------------------------------- apply


def build(inventory: str, config_dir: Optional[str]) -> tuple[Any, Any]:
    from xdsgen.pipeline import build as build_files

    return build_files(inventory, check_files=True, config_dir=config_dir, documents=True)


def _settle_journal(state: State, stats: Optional[dict[str, str]], notes: list[str]) -> None:
    """An apply that was interrupted, or could not record its success, left `pending`."""
    pending = state.pending
    if pending is None:
        return
    confirmed = state.last_confirmed()
    if confirmed is not None and confirmed["files"] == pending["files"]:
        state.abandon()  # a certificate reload that did not finish: nothing to record
        return
    if stats is not None and not stale_files(pending["files"], stats):
        state.commit(pending["files"], pending["certs"], True, "", pending.get("source", ""))
        notes.append(
            f"the apply of {pending.get('time', '?')} was confirmed by Envoy but not recorded; "
            "recorded now"
        )
    else:
        notes.append(
            f"an apply started at {pending.get('time', '?')} did not finish; restores go to "
            "the last config Envoy confirmed"
        )


def _drift_notes(state: State, old: dict[str, str], source: str, notes: list[str]) -> None:
    confirmed = state.last_confirmed()
    if state.last and state.last.get("source") not in ("", None, source):
        other = str(state.last["source"])
        if not other.startswith("rollback"):
            notes.append(
                f"{state.config_dir} was last applied from {other} ({state.last.get('time')}); "
                f"{source} now replaces it"
            )
    if confirmed is not None:
        differ = confirmed["files"].differing(old)
        if differ:
            notes.append(
                "the files on disk are not the last config Envoy confirmed "
                f"({', '.join(differ)}); the plan replaces them"
            )
    for name, text in sorted(old.items()):
        if xds.file_version(text) is not None and not xds.version_is_true(text):
            notes.append(f"{name} was edited by hand (its content no longer matches its version)")


def _known(state: State) -> Callable[[str], Optional[dict[str, Any]]]:
    """The digests apply stored with a route file's text (live/digests.py), by the text."""
    from xdsgen.live.blobs import digest
    from xdsgen.live.digests import index_from_json

    store = state.store

    def lookup(text: str) -> Optional[dict[str, Any]]:
        stored = store.read_index(digest(text))
        return None if stored is None else index_from_json(stored)

    return lookup


def _previous_clusters(state: State) -> Callable[[], Optional[list[dict[str, Any]]]]:
    """The clusters of the last confirmed config, read only if a plan needs them (the CDS
    file on disk does not parse)."""

    def read() -> Optional[list[dict[str, Any]]]:
        confirmed = state.last_confirmed()
        if confirmed is None:
            return None
        return resources_of(confirmed["files"].get(xds.CDS_FILE))

    return read


@dataclass
class Says:
    """Where apply's lines go (see apply's doc)."""

    progress: Say = _quiet
    warn: Say = _quiet
    show_plan: Callable[[Plan], None] = _no_plan
    status: Say = _quiet


def apply(
    inventory: str,
    options: Options,
    progress: Say = _quiet,
    warn: Say = _quiet,
    show_plan: Callable[[Plan], None] = _no_plan,
    status: Say = _quiet,
) -> Result:
    """Validate, plan and (unless dry_run) apply; raise an XdsgenError on failure.

    `progress`: detail lines (-v). `warn`: notes and warnings. `show_plan`: the plan is
    ready (called before anything is written, only when something changes). `status`: a
    line a person waiting should see (printed on a terminal, not in cron): said when a
    wait is longer than a second (rendering, `envoy --mode validate`, Envoy confirming)."""
    with announced(status, "rendering the inventory…"):
        model, rendered = build(inventory, options.config_dir)
    config_dir = model.envoy.config_dir
    admin = resolve_admin(options.admin, model, options.timeout)
    source = os.path.abspath(inventory)
    if options.dry_run:
        return _dry_run(model, rendered, admin, admin.address if admin else "", source)
    try:
        os.makedirs(config_dir, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {config_dir}: {exc.strerror}") from None
    old: dict[str, str] = {}
    try:
        with locked(config_dir, options.lock_timeout):
            says = Says(progress, warn, show_plan, status)
            return _apply_locked(model, rendered, source, options, admin, old, says)
    finally:
        _retain(old, rendered.files)


def _apply_locked(
    model: Any,
    rendered: Any,
    source: str,
    options: Options,
    admin: Optional[Admin],
    old: dict[str, str],
    says: Says,
) -> Result:
    """apply's steps 2-7 (see the module doc), with the directory's lock held; `old` gets
    the files on disk."""
    config_dir = model.envoy.config_dir
    address = admin.address if admin else ""
    temp_dirs = (config_dir, state_dir(config_dir), blob_dir(config_dir))
    for name in layout.sweep_leftovers(config_dir, *temp_dirs):
        says.progress(f"  removed {name}, left by an interrupted run")
    state = State.load(config_dir)
    stats = reach(admin, options)
    if stats is None:
        admin = None
    result = Result(compute_plan({}, {}), admin=address, warnings=list(model.warnings), model=model)
    _settle_journal(state, stats, result.notes)
    if any(c.acme for c in model.certificates):  # obtain and renew first (live/acme_step.py)
        from xdsgen.live.acme_step import certificates_step

        model, rendered = certificates_step(
            model, rendered, state, admin, options, says.progress, result.notes
        )
        result.model = model
    managed = state.owned() | set(rendered.files) | {xds.CDS_FILE, xds.LDS_FILE}
    old.update(read_files(config_dir, managed))
    rendered = layout.keep_files(model, rendered, old, admin, options.timeout, says.progress)
    _drift_notes(state, old, source, result.notes)
    for note in result.notes:
        says.warn(f"note: {note}")
    reloads, served = reloads_to_give(model.secrets, state.known_certs(), admin)
    # The files on disk are parsed here (those the render did not write just now): at
    # 10 000 vhosts the collector, walking every object of the model and the render at
    # each pass, took a third of that time.
    with announced(says.status, "planning…"), gc_paused():
        stale = stale_files(old, stats)
        result.plan = plan = compute_plan(old, rendered.files, reloads, stale, _known(state))
    certs = {s.name: fingerprint(s.cert, s.key) or "" for s in model.secrets}
    layout.prepare(model, old, admin, options.timeout, plan.empty, says.warn)
    if plan.empty:
        if not state.accepted or served or (state.last_confirmed() is None and stats):
            state.commit(rendered.files, certs, stats is not None, address, source)
        return result
    says.show_plan(plan)
    _change(state, model, rendered, plan, options, admin, says, managed, (certs, source))
    result.applied = True
    result.confirmed = admin is not None
    try:
        state.commit(rendered.files, certs, result.confirmed, address, source)
    except IOProblem as exc:
        raise IOProblem(
            f"Envoy runs the new config{' (confirmed)' if result.confirmed else ''}, but "
            f"{exc}; the next apply records it ({state_path(config_dir)} keeps the journal)"
        ) from None
    return result


def _retain(old: dict[str, str], new: dict[str, str]) -> None:
    """Only the files on disk and the ones just rendered are worth keeping parsed: the next
    apply of a watcher compares nothing else (a long-lived process must not keep every
    config it ever applied)."""
    from xdsgen import parsed
    from xdsgen.live import digests

    texts = {*old.values(), *new.values()}
    parsed.retain(texts)
    digests.retain(texts)


def _change(
    state: State,
    model: Any,
    rendered: Any,
    plan: Plan,
    options: Options,
    admin: Optional[Admin],
    says: Says,
    managed: set[str],
    journal: tuple[dict[str, str], str],
) -> None:
    """Check (when the change needs it), journal (`journal`: the certificates' fingerprints
    and the inventory's path), then go to the rendered files step by
    confirmed step. The check runs while the journal is written and the steps planned;
    when Envoy refuses, the journal is dropped and nothing else was written."""
    from xdsgen.live.check import finish_check, start_check
    from xdsgen.live.confirm import Confirmer

    progress, status = says.progress, says.status
    previous = _previous_clusters(state)
    check = start_check(model, rendered, plan, options.envoy_check, progress)
    try:
        state.begin(rendered.files, *journal)
        steps = steps_for(
            model.envoy.layout,
            plan.old_files,
            rendered.files,
            plan.cert_reloads,
            plan.stale,
            previous,
        )
    except BaseException:
        if check is not None:
            with contextlib.suppress(Exception):
                check.wait()  # its temp files go before the error is reported
        raise
    if check is not None:
        with announced(status, "checking with envoy…"):
            try:
                finish_check(check, progress)
            except XdsgenError:
                with contextlib.suppress(IOProblem):
                    state.abandon()
                raise
    confirmed = state.last_confirmed()
    layout.convert(state.config_dir, model.envoy.layout, plan.old_files, says.warn)
    transition(
        state,
        plan.old_files,
        rendered.files,
        Confirmer(admin, options.timeout, options.settle, status),
        progress,
        restore_to=confirmed["files"] if confirmed else plan.old_files,
        managed=managed,
        previous_clusters=previous,
        steps=steps,
        layout=model.envoy.layout,
    )


def _dry_run(
    model: Any, rendered: Any, admin: Optional[Admin], address: str, source: str
) -> Result:
    config_dir = model.envoy.config_dir
    state = State.load(config_dir)
    managed = state.owned() | set(rendered.files) | {xds.CDS_FILE, xds.LDS_FILE}
    old = read_files(config_dir, managed)
    stats = None
    if admin is not None:
        try:
            stats = admin.apply_stats(timeout=DRY_RUN_ADMIN_TIMEOUT)
        except AdminUnreachable:
            stats = None
    rendered = layout.keep_files(model, rendered, old, admin if stats else None, 1.0)
    plan = compute_plan(
        old,
        rendered.files,
        reloads_needed(model.secrets, state.known_certs()),
        stale_files(old, stats),
        _known(state),
    )
    result = Result(plan, admin=address, warnings=list(model.warnings), model=model)
    _drift_notes(state, old, source, result.notes)
    result.notes += layout.dry_run_notes(config_dir, model.envoy.layout, old)
    return result


# --------------------------------------------------------------------------- rollback


def rollback(
    config_dir: str,
    options: Options,
    progress: Say = _quiet,
    warn: Say = _quiet,
    show_plan: Callable[[Plan], None] = _no_plan,
    status: Say = _quiet,
) -> Result:
    """Return to the last config Envoy accepted; if the files on disk are that config
    already, to the one before it (so two rollbacks in a row undo each other)."""
    config_dir = os.path.abspath(config_dir)
    if not os.path.isdir(state_dir(config_dir)):
        raise IOProblem(f"{config_dir} has no apply history ({state_dir(config_dir)} is missing)")
    with locked(config_dir, options.lock_timeout):
        layout.sweep_leftovers(config_dir, state_dir(config_dir))
        state = State.load(config_dir)
        history = state.accepted
        managed = state.owned() | {xds.CDS_FILE, xds.LDS_FILE}
        now = read_files(config_dir, managed)
        if not history:
            raise IOProblem(f"{state_path(config_dir)} holds no accepted config to return to")
        target = history[0]
        if target["files"] == now:
            if len(history) < 2:
                raise IOProblem(
                    "only one accepted config is known: there is nothing to roll back to"
                )
            target = history[1]
        files = dict(target["files"])
        plan = compute_plan(now, files)
        admin = resolve_admin(options.admin or target.get("admin"), None, options.timeout)
        result = Result(plan, admin=admin.address if admin else "")
        if options.dry_run or plan.empty:
            return result
        stats = reach(admin, options)
        if stats is None:
            admin = None
        show_plan(plan)
        from xdsgen.live.confirm import Confirmer

        confirmed = state.last_confirmed()
        state.begin(files, target.get("certs", {}), f"rollback to {target.get('time', '?')}")
        transition(
            state,
            now,
            files,
            Confirmer(admin, options.timeout, options.settle, status),
            progress,
            restore_to=confirmed["files"] if confirmed else now,
            managed=managed,
            previous_clusters=_previous_clusters(state),
            layout=layout.layout_on_disk(config_dir),
        )
        result.applied = True
        result.confirmed = admin is not None
        state.commit(
            files,
            target.get("certs", {}),
            result.confirmed,
            result.admin,
            f"rollback to {target.get('time', '?')}",
        )
        return result
