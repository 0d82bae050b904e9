"""Leaving the process without the interpreter's teardown, for the commands that allow it.

At exit CPython frees every object still alive: after a 10 000-vhost render or apply
that is the model, the parsed files and their caches, ~2 million objects and 0.3-0.4 s
after the result line, for nothing. `run` (the console script and `python -m xdsgen`)
ends such a command with os._exit once its exit status is known: every `finally` and
`with` inside the command has run by then (files written, fsynced and closed; the
apply lock, an flock, is released by the kernel with the descriptor; temporary
directories removed), and stdout and stderr are flushed first. What os._exit skips is
what the command does not use: atexit handlers, freeing memory, joining daemon threads
(which the interpreter would not wait for either).

`main()` itself is unchanged (tests call it in-process and catch its SystemExit); a
command opts in with `allow_fast_exit()`, so a command nobody checked keeps the
ordinary exit.
"""

from __future__ import annotations

import os
import sys

_ALLOWED: list[bool] = []
_SCRIPT: list[bool] = []  # run() runs the command: the process ends with it


def allow_fast_exit() -> None:
    """This command leaves nothing for the interpreter's exit to do."""
    _ALLOWED.append(True)
    if _SCRIPT:
        from xdsgen.speed import one_shot

        one_shot()  # and the garbage collector need not look at what it builds


def fast_exit_allowed() -> bool:
    return bool(_ALLOWED)


def run() -> None:
    """The console script: `xdsgen ...` (and `python -m xdsgen`)."""
    from xdsgen.cli import main

    _SCRIPT.append(True)
    try:
        main()
    except SystemExit as exc:
        code = exc.code
        if not _ALLOWED or not (code is None or isinstance(code, int)):
            raise
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            raise exc from None  # e.g. a closed pipe: Python reports it as it always does
        os._exit(code or 0)
