"""One apply at a time per config directory: an flock on DIR/.xdsgen/lock.

flock is released by the kernel when the process dies, so a SIGKILLed apply never leaves
a stale lock behind (a pid file would). The lock file itself is never removed: removing
it while another process waits on it would let a third one lock a new inode.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator

from xdsgen.errors import IOProblem, LockTimeout

STATE_DIR = ".xdsgen"
LOCK_NAME = "lock"
_POLL = 0.05


def state_dir(config_dir: str) -> str:
    return os.path.join(config_dir, STATE_DIR)


def ensure_state_dir(config_dir: str) -> str:
    path = state_dir(config_dir)
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise IOProblem(f"cannot create {path}: {exc.strerror}") from None
    return path


@contextlib.contextmanager
def locked(config_dir: str, timeout: float) -> Iterator[None]:
    """Hold the config directory's lock; LockTimeout after `timeout` seconds of waiting."""
    path = os.path.join(ensure_state_dir(config_dir), LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise IOProblem(f"cannot open lock file {path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise IOProblem(f"cannot lock {path}: {exc.strerror}") from None
            if time.monotonic() >= deadline:
                holder = _read_holder(fd)
                raise LockTimeout(
                    f"another xdsgen apply{holder} holds the lock on {config_dir} "
                    f"(waited {timeout:g}s; raise --lock-timeout to wait longer)"
                )
            time.sleep(_POLL)
        # Nothing is written into the lock file: a no-op apply from cron must not write to
        # the router's flash at all. A waiting apply finds the holder in /proc/locks.
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _read_holder(fd: int) -> str:
    pid = _flock_holder(fd)
    return f" (pid {pid})" if pid else ""


def _flock_holder(fd: int) -> int:
    """The pid holding an flock on fd's file, from Linux's /proc/locks
    ("1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF"); 0 if unknown."""
    with contextlib.suppress(OSError, ValueError):
        info = os.fstat(fd)
        wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
                    return int(fields[4])
    return 0
