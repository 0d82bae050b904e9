"""`xdsgen apply --watch`: apply, then apply again after every complete change of the
inventory, the certificates and keys it names or the templates (xdsgen/filewatch.py says
what counts as complete). Besides the file events:

- every `--recheck` seconds, even without an event: a no-op apply writes nothing, and it
  puts the watcher's config back after cron applied another inventory to the same
  directory, finishes a half-applied one and retries a failed one;
- at once when Envoy restarted (its uptime went down, or its admin answers again): an
  apply cut short by the restart left files Envoy now runs half-way.

Every line starts with the time. A failed apply (invalid inventory, Envoy refused, admin
down) keeps the running config and is retried; the first success after it says so
("fixed: ..." or "ok again: ..."). SIGINT/SIGTERM end the loop between applies (an apply
in progress finishes, so no temp file is left). No optional package is imported here
(OpenWrt has neither watchfiles nor rich).
"""

from __future__ import annotations

import copy
import signal
import threading
import time
from typing import Any, Callable, Optional

from xdsgen.errors import EXIT_OK, InventoryError, UsageProblem, XdsgenError
from xdsgen.filewatch import Waker, Watcher, changed_between, make_watcher, signature

# An editor's save is over within a few milliseconds of its first event (vim writing in
# place: modify, close, chmod within 3 ms; sed -i and most editors: one rename); a file
# still open for writing, or renamed away and not back, is waited for anyway
# (filewatch.py). 10 ms coalesces each save into one apply and keeps the edit-to-live
# latency low (benchmarks/latency.py).
DEFAULT_DEBOUNCE = 0.01
DEFAULT_RECHECK = 30.0
ENVOY_PROBE_INTERVAL = 1.0  # how often Envoy's uptime is read (one small admin request)
_RESTART_SLACK = 2.0  # uptime has whole seconds: a start moving later by more is a restart


def watch_and_apply(
    inventory: str,
    options: Any,
    console: Any,
    debounce: float = DEFAULT_DEBOUNCE,
    recheck: float = DEFAULT_RECHECK,
    stop: Optional[threading.Event] = None,
) -> int:
    """Apply now, then on every change, recheck and Envoy restart until SIGINT/SIGTERM
    (or until `stop` is set)."""
    if options.dry_run:
        raise UsageProblem("--watch applies every change; it does not go with --dry-run")
    stop = stop or threading.Event()
    log = stamped(console)
    waker = Waker()
    restore = _install_signal_handlers(stop, waker)
    loop: Optional[Loop] = None
    try:
        session = Session(inventory, options, log)
        watcher = make_watcher(session.files(), debounce, waker, log.warn)
        loop = Loop(session, watcher, recheck, stop)
        log.info(f"watching {len(watcher.files)} files ({watcher.describe()}); Ctrl-C to stop")
        loop.run()
    finally:
        if loop is not None:
            loop.watcher.close()
        restore()
        waker.close()
    log.detail("stopped")
    return EXIT_OK


class Loop:
    """Waits for the next reason to apply: a settled change, Envoy restarted, the recheck."""

    def __init__(self, session: Session, watcher: Watcher, recheck: float, stop: threading.Event):
        self.session = session
        self.watcher = watcher
        self.recheck = recheck
        self.stop = stop

    def run(self) -> None:
        reason: Optional[str] = "start"
        next_probe = time.monotonic() + ENVOY_PROBE_INTERVAL
        next_recheck = float("inf")
        while not self.stop.is_set():
            if reason is not None:
                reason = self.apply(reason)
                next_recheck = time.monotonic() + self.recheck if self.recheck > 0 else next_recheck
                continue
            changed = self.watcher.wait(max(0.0, min(next_probe, next_recheck) - time.monotonic()))
            if self.stop.is_set():
                break
            if self.watcher.broken:
                self._poll_instead()
            if changed:
                reason = "change"
                continue
            now = time.monotonic()
            if now >= next_probe:
                next_probe = now + ENVOY_PROBE_INTERVAL
                if self.watcher.stale():
                    self.watcher.refresh()  # settles, then reports a change
                elif self.session.envoy_restarted():
                    reason = "Envoy restarted"
            if reason is None and now >= next_recheck:
                reason = "recheck"

    def apply(self, reason: str) -> Optional[str]:
        """Apply; returns the reason to apply again at once, if there is one."""
        before = signature(self.watcher.files)
        self.session.apply(reason)
        self.watcher.retarget(self.session.files())
        # Saved while we applied (and a rebuilt watch may have lost its event): again.
        if changed_between(before, signature(self.watcher.files)):
            self.watcher.mark_changed()
        # Envoy's uptime now, so that a restart is told apart from the process we applied
        # to. After a failure, a restart already seen means the failure was the restart
        # (apply cut short, or never confirmed by the new process): apply again now.
        restarted = self.session.envoy_restarted()
        return "Envoy restarted" if restarted and self.session.failure is not None else None

    def _poll_instead(self) -> None:
        from xdsgen.filewatch import PollWatcher

        old = self.watcher
        self.session.log.warn(f"warning: inotify stopped working ({old.broken}); polling instead")
        old.close()
        self.watcher = PollWatcher(set(old.files), old.debounce, old.waker)
        self.session.log.info(f"watching {len(old.files)} files ({self.watcher.describe()})")


class Session:
    """One inventory applied again and again: what it depends on, what went wrong last."""

    def __init__(self, inventory: str, options: Any, log: Any):
        self.inventory = inventory
        self.options = options
        self.log = log
        self.model: Any = None  # the last model applied (names the admin to probe)
        self.failure: Optional[str] = None  # what the last apply said went wrong
        self.certificates: set[str] = set()
        self._uptime: Optional[float] = None
        self._started: Optional[float] = None
        self._envoy_down = False
        self._read_certificates()

    def _read_certificates(self) -> None:
        from xdsgen.filewatch import certificate_paths

        found = certificate_paths(self.inventory)
        if found is not None:  # unreadable text: keep watching what it named last
            self.certificates = found

    def files(self) -> set[str]:
        from xdsgen.filewatch import watched_files

        named = set(self.certificates)
        if self.model is not None:
            named.update(self.model.secret_files())
        return watched_files(self.inventory, named)

    def apply(self, reason: str) -> None:
        from xdsgen.live.orchestrate import apply as apply_once

        why = "" if reason in ("start", "change") else f" ({reason})"
        try:
            result = apply_once(
                self.inventory, self.options, progress=self.log.detail, warn=self.log.warn
            )
        except InventoryError as exc:
            self._read_certificates()  # no model: watch what the text names
            count = len(exc.problems)
            self._failed(
                reason,
                f"{count} error{'s' if count != 1 else ''}; keeping the running config",
                exc.problems,
            )
            return
        except XdsgenError as exc:
            self._read_certificates()
            self._failed(reason, f"error: {exc}")
            return
        self.model = result.model
        self.certificates = set(result.model.secret_files())
        recovered, self.failure = self.failure is not None, None
        if result.warnings and (recovered or not result.plan.empty):
            self.log.problems(result.warnings)
        if recovered:
            word = "ok again" if result.plan.empty else "fixed"
            # The all-clear answers an error: quiet mode (errors only) prints it too.
            say = self.log.warn if getattr(self.log, "quiet", False) else self.log.success
            say(f"{word}: {result.line()}{why}")
        elif not result.plan.empty:
            self.log.info(f"{result.line()}{why}")
        else:
            self.log.detail(f"{result.line()}{why}")

    def _failed(self, reason: str, message: str, problems: Optional[list[Any]] = None) -> None:
        text = "\n".join([*(p.format() for p in problems or []), message])
        if reason in ("recheck", "Envoy restarted") and text == self.failure:
            self.log.detail(f"still failing ({reason})")  # said already: no repeat every 30 s
            return
        self.failure = text
        if problems:
            self.log.problems(problems)
        self.log.error(message)

    def envoy_restarted(self) -> bool:
        """Envoy runs a new process since the last probe (or answers again after not)."""
        if self.model is None:
            return False
        now = time.monotonic()  # before the request: a slow answer must not look like a restart
        uptime = envoy_uptime(self.model, self.options.admin)
        if uptime is None:
            self._envoy_down = True
            return False
        started, self._started = self._started, now - uptime
        previous, self._uptime = self._uptime, uptime
        if self._envoy_down:
            self._envoy_down = False
            return True
        if previous is None or started is None:
            return False
        return uptime < previous or now - uptime > started + _RESTART_SLACK


def envoy_uptime(model: Any, admin_override: Optional[str]) -> Optional[float]:
    """Seconds the running Envoy process has been up, None when its admin does not answer.
    The watcher's one admin read, once a second: from /server_info, whose cost does not
    grow with the config (a filtered /stats walks every stat: ~110 ms of Envoy's main
    thread each second at 10 000 vhosts; /server_info ~2 ms)."""
    from xdsgen.admin import AdminUnreachable
    from xdsgen.live.orchestrate import resolve_admin

    # A local admin answers in milliseconds: never hold the loop long.
    try:
        admin = resolve_admin(admin_override, model, timeout=0.5)
    except XdsgenError:
        return None
    if admin is None:
        return None
    try:
        return admin.uptime()
    except AdminUnreachable:
        return None


# --------------------------------------------------------------------------- output


class Stamped:
    """A text stream that starts every line with the time (HH:MM:SS)."""

    def __init__(self, stream: Any):
        self.stream = stream
        self._line_start = True

    def write(self, text: str) -> int:
        pieces = []
        for piece in text.splitlines(keepends=True):
            if self._line_start:
                pieces.append(time.strftime("%H:%M:%S "))
            pieces.append(piece)
            self._line_start = piece.endswith("\n")
        self.stream.write("".join(pieces))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, ...
        return getattr(self.stream, name)


def stamped(console: Any) -> Any:
    """The console, writing through Stamped streams: every line of the watcher is dated."""
    log = copy.copy(console)
    log.out = Stamped(console.out)
    log.err = Stamped(console.err)
    return log


def _install_signal_handlers(stop: threading.Event, waker: Waker) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()
        waker.wake()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
