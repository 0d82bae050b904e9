"""Linux inotify through ctypes on libc: no compiled dependency (OpenWrt ships
python3-ctypes, not watchfiles or inotify_simple).

Only what the watcher needs: one non-blocking descriptor, directory watches, and the
events read from it as (watch descriptor, mask, name) tuples.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any, NamedTuple, Optional

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000

# What a watched directory reports: changes to the entries in it, and its own end.
DIRECTORY_EVENTS = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_BUFFER = 64 * 1024


class Event(NamedTuple):
    wd: int
    mask: int
    name: str


def _libc() -> Optional[Any]:
    """libc with inotify, or None. CDLL(None) is the running program's own symbols (works
    on musl, where find_library has no ldconfig to ask). ctypes is a separate OpenWrt
    package (python3-ctypes): without it, None."""
    try:
        import ctypes
        import ctypes.util
    except ImportError:
        return None
    candidates: list[Optional[str]] = [None]
    found = ctypes.util.find_library("c")
    if found:
        candidates.append(found)
    for name in candidates:
        try:
            libc = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        if hasattr(libc, "inotify_init1") and hasattr(libc, "inotify_add_watch"):
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_init1.restype = ctypes.c_int
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            libc.inotify_add_watch.restype = ctypes.c_int
            return libc
    return None


class Inotify:
    """One inotify instance. Raises OSError when the kernel or libc has none (or the
    per-user instance limit is reached): the caller falls back to polling."""

    def __init__(self) -> None:
        libc = _libc()
        if libc is None:
            raise OSError(errno.ENOSYS, "no inotify (ctypes missing, or libc without it)")
        import ctypes

        self._libc = libc
        self._errno = ctypes.get_errno
        # os.O_* rather than numbers: IN_NONBLOCK is O_NONBLOCK, which differs on MIPS.
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            number = self._errno()
            raise OSError(number, f"inotify_init1: {os.strerror(number)}")
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int = DIRECTORY_EVENTS | IN_ONLYDIR) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            number = self._errno()
            raise OSError(number, os.strerror(number), path)
        return int(wd)

    def read(self) -> list[Event]:
        """Every event queued now; [] when there is none (the descriptor never blocks)."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self.fd, _BUFFER)
            except BlockingIOError:
                return events
            if not data:
                return events
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                raw = data[offset : offset + length].split(b"\0", 1)[0]
                offset += length
                events.append(Event(wd, mask, os.fsdecode(raw)))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def available() -> bool:
    try:
        Inotify().close()
    except OSError:
        return False
    return True
