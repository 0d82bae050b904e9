"""Small helpers that keep big inventories fast.

`gc_paused`: loading a 10 000-vhost inventory or parsing back its output creates millions
of objects that all live until the step ends. CPython's cyclic garbage collector runs every
few hundred allocations and each full pass walks every live object, so the steps become
quadratic-ish: at N=10 000 the collector alone doubled the render time. None of these
steps leaves cycles behind worth collecting early, so the collector waits until the step
is over (and runs as usual afterwards: `apply --watch` is long-lived).

Afterwards, the first allocation makes the collector walk every object the step left
alive (they are all "young"): ~0.15 s after a reused 10 000-vhost render, to find nothing.
A command that ends the process right after its result (`one_shot`, cli/leave.py) moves
them out of the collector's sight instead (gc.freeze: freed with the process).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator

_ONE_SHOT: list[bool] = []


def one_shot() -> None:
    """This process ends with the command it runs (no watcher, no test runner after it)."""
    _ONE_SHOT.append(True)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if _ONE_SHOT:
                gc.freeze()
            gc.enable()


def detached(work: Callable[[], None]) -> None:
    """Run `work` in a process of its own that nobody waits for (a double fork: no zombie;
    standard streams on /dev/null: a caller reading our output sees its end when we exit;
    other descriptors closed: a lock we hold is not held after we exit). Best effort: if
    the fork fails the work is not done."""
    import os

    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        return
    code = 0
    try:
        if os.fork():  # the first child exits at once: the grandchild is adopted by init
            os._exit(0)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, 65536)
        with contextlib.suppress(OSError):
            os.nice(5)
        work()
    except BaseException:
        code = 1
    finally:
        os._exit(code)
