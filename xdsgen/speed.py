"""Small helpers that keep big inventories fast.

`gc_paused`: loading a 10 000-vhost inventory or parsing back its output creates millions
of objects that all live until the step ends. CPython's cyclic garbage collector runs every
few hundred allocations and each full pass walks every live object, so the steps become
quadratic-ish: at N=10 000 the collector alone doubled the render time. None of these
steps leaves cycles behind worth collecting early, so the collector waits until the step
is over (and runs as usual afterwards: `apply --watch` is long-lived).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
