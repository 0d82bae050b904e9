"""Status lines for a person waiting at a terminal: said only when a wait is long.

A home router's apply is over in a tenth of a second and says nothing in between; at
thousands of vhosts rendering, `envoy --mode validate` and Envoy's own load each take
seconds, and a silent terminal looks hung. `announced` says its line once the block it
covers has run for STATUS_AFTER seconds (from a timer thread, never otherwise).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Callable

STATUS_AFTER = 1.0


def quiet(_: str) -> None:
    """The default status: nobody is waiting (cron, scripts, tests)."""


@contextlib.contextmanager
def announced(status: Callable[[str], None], text: str) -> Iterator[None]:
    """Say `text` through `status` if the block runs longer than STATUS_AFTER seconds."""
    if status is quiet:
        yield
        return
    timer = threading.Timer(STATUS_AFTER, status, (text,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
