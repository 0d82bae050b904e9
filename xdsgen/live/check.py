"""`envoy --mode validate` before anything is written, when it can catch what Envoy's own
refusal would not make harmless; run beside apply's other preparation.

What the check buys, and when (tests/test_envoy_semantics.py shows both facts in real
Envoy): Envoy takes a cds.yaml or lds.yaml *in part*. It applies the clusters or
listeners it accepts and refuses the rest, so by the time apply sees the refusal, the
running config has changed, and putting the old file back changes it again (a listener
changed twice drains its connections twice). A new sds_ file is only checked by Envoy
when a listener first uses its certificate, which is the listener step, after clusters
and routes changed. For these, one whole-config validation up front keeps a bad change
from touching anything.

A route file is one route configuration, taken whole or not at all. Envoy that refuses
it keeps serving the routes it had, apply sees update_rejected go up and puts the old
file back: nothing that runs changed. So a change of routes only (the commonest edit:
a vhost or a route) is not validated by default, which saves the check's cost (~50 ms on
a home router, seconds at 10 000 vhosts) where it protects nothing. Certificates renewed
in place are not validated either: Envoy refuses a key that does not match
(key_rotation_failed) and keeps serving the old pair. `--envoy-check` (with or without a
path) validates every change.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from xdsgen.conventions import CDS_FILE, LDS_FILE, is_sds
from xdsgen.errors import IOProblem

Say = Callable[[str], None]


def reason_to_check(plan: Any, choice: Optional[str]) -> Optional[str]:
    """Why the check runs for this plan, None when it does not. `choice`: None (the
    default: when the change needs it), "" (--no-envoy-check), "auto" or a path
    (--envoy-check: always)."""
    if choice == "":
        return None
    if choice is not None:
        return "asked for (--envoy-check)"
    partial = sorted(n for n in plan.writes if n in (CDS_FILE, LDS_FILE) or is_sds(n))
    if partial:
        return f"{', '.join(partial)} change{'s' if len(partial) == 1 else ''}"
    return None


class EnvoyCheck:
    """The check running in a thread (Envoy itself does the work in a child process) while
    apply journals the change and plans its steps; `wait()` raises what it found."""

    def __init__(self, run: Callable[[], str]):
        self._run = run
        self._error: Optional[BaseException] = None
        self._said = ""
        self._thread = threading.Thread(target=self._main, name="envoy-check", daemon=True)

    def _main(self) -> None:
        try:
            self._said = self._run()
        except BaseException as exc:  # handed to the waiting thread, raised there
            self._error = exc

    def start(self) -> EnvoyCheck:
        self._thread.start()
        return self

    def wait(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._said


def start_check(
    model: Any, rendered: Any, plan: Any, choice: Optional[str], progress: Say
) -> Optional[EnvoyCheck]:
    """Start the check when this plan needs it (see the module doc); None otherwise."""
    why = reason_to_check(plan, choice)
    if why is None:
        if choice != "":
            what = "route files" if plan.writes else "certificates renewed in place"
            progress(f"  envoy --mode validate: not needed (only {what} change)")
        return None
    from xdsgen.envoycheck import check_with_envoy, find_envoy

    path = find_envoy() if choice in (None, "auto") else choice
    if path is None:
        if choice == "auto":
            raise IOProblem(
                "--envoy-check: no Envoy binary found (pass its path, or --no-envoy-check)"
            )
        progress("  envoy --mode validate: skipped (no Envoy binary found)")
        return None

    def run() -> str:
        check_with_envoy(model, rendered, path)
        return f"  envoy --mode validate ({path}, {why}): accepted"

    return EnvoyCheck(run).start()


def finish_check(check: Optional[EnvoyCheck], progress: Say) -> None:
    if check is not None:
        progress(check.wait())
