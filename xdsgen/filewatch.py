"""Which files `apply --watch` depends on, and noticing a *complete* change to them.

Directories are watched, never the files: editors save by writing a new file and renaming
it over the old one, certbot swaps symlinks, tools delete and write again; a watch on the
old inode would miss all of that. Each directory is filtered to the names that matter.

A change counts once it is complete. With inotify: a rename into place, a delete, a new
symlink, a chmod, or the close of a file that was written (a file still open for writing
is still being written, however long its writer pauses). Then the change must settle for
`debounce` seconds without a further event. A directory that is removed or replaced (or an
overflowing event queue) re-establishes every watch; a directory that does not exist yet
is watched through its nearest existing ancestor until it appears.

Polling (no inotify, or XDSGEN_WATCHER=poll) stats the files every POLL_INTERVAL and
applies once they held still for an interval and the debounce.
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections import deque
from collections.abc import Iterable
from typing import Callable, Optional, Union

from xdsgen import inotify as ino

POLL_INTERVAL = 0.25
# A writer that keeps a file open without a further write for this long is not saving it
# (it holds it open for some other reason): the change counts anyway.
WRITE_STALL = 10.0
SYMLINK_HOPS = 40  # Linux's own limit (ELOOP)

Signature = dict[str, Optional[tuple[int, int, int, int]]]


# --------------------------------------------------------------------------- which files


def watched_files(inventory: str, certificate_files: Iterable[str] = ()) -> set[str]:
    """The inventory, the certificates and keys, the templates, and every symlink met on
    the way to each of them (a swapped link changes what is read as much as an edit)."""
    from xdsgen import resources

    paths = {os.path.abspath(inventory), *(os.path.abspath(p) for p in certificate_files)}
    try:
        paths.update(str(p) for p in resources.directory("templates").glob("*.j2"))
    except FileNotFoundError:
        pass
    files: set[str] = set()
    for path in paths:
        files.update(resolution_chain(path))
    return files


def certificate_paths(inventory: str) -> Optional[set[str]]:
    """certificates.*.cert/key as the inventory text names them, even when the inventory is
    invalid (so the certificate that makes it valid is seen arriving). None when the text
    cannot be read as YAML at all."""
    import yaml

    try:
        with open(inventory, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    found: set[str] = set()
    certificates = data.get("certificates") if isinstance(data, dict) else None
    if isinstance(certificates, dict):
        for spec in certificates.values():
            if isinstance(spec, dict):
                for which in ("cert", "key"):
                    value = spec.get(which)
                    if isinstance(value, str) and os.path.isabs(value):
                        found.add(os.path.normpath(value))
    # htpasswd files of auth: basic (issue 14): an edit must reach Envoy like a renewal.
    authenticators = data.get("auth") if isinstance(data, dict) else None
    if isinstance(authenticators, dict):
        for spec in authenticators.values():
            value = spec.get("basic") if isinstance(spec, dict) else None
            if isinstance(value, str) and os.path.isabs(value):
                found.add(os.path.normpath(value))
    return found


def resolution_chain(path: str) -> list[str]:
    """`path`, every symlink met while resolving it (at any component) and the file it ends
    at: changing any of them changes what opening `path` reads."""
    chain = [os.path.abspath(path)]
    parts = deque(chain[0].split("/"))
    current = "/"
    hops = 0
    while parts:
        part = parts.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink, or not there (yet)
            current = candidate
            continue
        chain.append(candidate)
        hops += 1
        if hops > SYMLINK_HOPS:
            break
        if target.startswith("/"):
            current = "/"
        parts.extendleft(reversed(target.split("/")))
    chain.append(current)
    return list(dict.fromkeys(chain))


def signature(files: Iterable[str]) -> Signature:
    """What polling compares: inode, size, mtime and ctime of each file (through symlinks)."""
    result: Signature = {}
    for path in sorted(files):
        try:
            info = os.stat(path)
            result[path] = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        except OSError:
            result[path] = None
    return result


def changed_between(before: Signature, after: Signature) -> bool:
    """A file watched before and after differs (new or dropped paths do not count)."""
    return any(before[path] != after[path] for path in before.keys() & after.keys())


def directory_plan(files: Iterable[str]) -> dict[str, tuple[set[str], set[str]]]:
    """directory -> (names of watched files in it, names of missing directories below it).
    A file whose directory does not exist is watched through the nearest existing
    ancestor, for the name of the next directory down."""
    plan: dict[str, tuple[set[str], set[str]]] = {}
    for path in files:
        directory, name = os.path.split(path)
        if os.path.isdir(directory):
            plan.setdefault(directory, (set(), set()))[0].add(name)
            continue
        child, parent = directory, os.path.dirname(directory)
        while parent != child and not os.path.isdir(parent):
            child, parent = parent, os.path.dirname(parent)
        plan.setdefault(parent, (set(), set()))[1].add(os.path.basename(child))
    return plan


# --------------------------------------------------------------------------- waking up


class Waker:
    """A pipe the waits also select on: a signal handler writes to it so that SIGTERM
    ends a wait at once instead of at its timeout."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self) -> int:
        return self._read

    def wake(self) -> None:
        try:
            os.write(self._write, b"!")
        except OSError:  # full: a wake-up is already pending; closed: nobody waits
            pass

    def drain(self) -> None:
        try:
            while os.read(self._read, 512):
                pass
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass


# --------------------------------------------------------------------------- watchers


class InotifyWatcher:
    mode = "inotify"

    def __init__(self, files: set[str], debounce: float, waker: Waker):
        self.files = frozenset(files)
        self.debounce = debounce
        self.waker = waker
        self.wakeups = 0  # returns from select: the test of an idle watcher sleeping
        self.broken = ""
        self._pending: Optional[float] = None  # time of the last relevant event
        self._writing: dict[str, float] = {}  # path -> last write seen, until its close
        self._inotify: Optional[ino.Inotify] = None
        self._watches: dict[int, tuple[str, set[str], set[str]]] = {}
        self._identity: dict[str, Optional[tuple[int, int]]] = {}
        self._establish()

    def describe(self) -> str:
        return "inotify"

    def _establish(self) -> None:
        """(Re)create every watch from scratch on a fresh descriptor."""
        self._close()
        notifier = ino.Inotify()
        for _attempt in range(5):
            watches: dict[int, tuple[str, set[str], set[str]]] = {}
            identity: dict[str, Optional[tuple[int, int]]] = {}
            vanished = False
            for directory, (names, missing) in sorted(directory_plan(self.files).items()):
                try:
                    wd = notifier.add_watch(directory)
                    info = os.stat(directory)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                        vanished = True  # removed between the plan and the watch: plan again
                        break
                    notifier.close()
                    raise
                identity[directory] = (info.st_dev, info.st_ino)
                # Two paths to one directory (a symlinked parent) share a descriptor.
                _, known, known_missing = watches.get(wd, (directory, set(), set()))
                watches[wd] = (directory, known | names, known_missing | missing)
            if not vanished:
                self._inotify, self._watches, self._identity = notifier, watches, identity
                return
            notifier.close()
            notifier = ino.Inotify()
        notifier.close()
        raise OSError(errno.ENOENT, "the watched directories keep disappearing")

    def retarget(self, files: set[str]) -> None:
        if frozenset(files) != self.files:
            self.files = frozenset(files)
            self._rebuild()

    def stale(self) -> bool:
        """A watched directory was replaced or a missing one appeared without an event
        reaching us (e.g. a grandparent renamed): the watches need re-establishing."""
        for directory, identity in self._identity.items():
            try:
                info = os.stat(directory)
            except OSError:
                return True
            if (info.st_dev, info.st_ino) != identity:
                return True
        return any(
            os.path.isdir(os.path.join(directory, name))
            for directory, _, missing in self._watches.values()
            for name in missing
        )

    def refresh(self) -> None:
        self._rebuild()
        self.mark_changed()

    def mark_changed(self) -> None:
        """Something may have changed unseen: the next wait settles, then reports it."""
        self._pending = time.monotonic()

    def _rebuild(self) -> None:
        try:
            self._establish()
        except OSError as exc:
            self.broken = f"cannot watch: {exc}"

    def wait(self, timeout: Optional[float]) -> bool:
        """True once a complete change has settled; False when `timeout` passed without
        one, or the waker was woken (a stop). A change already settling goes on settling
        past `timeout`: it is never dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.broken and self._inotify is not None:
            now = time.monotonic()
            self._forget_stalled_writers(now)
            if self._pending is not None:
                if self._writing:
                    delay = max(self._writing.values()) + WRITE_STALL - now
                else:
                    delay = self._pending + self.debounce - now
                    if delay <= 0:
                        self._pending = None
                        return True
            elif deadline is None:
                delay = None
            else:
                delay = deadline - now
                if delay <= 0:
                    return False
            wake = self.waker.fileno()
            ready, _, _ = select.select([self._inotify.fileno(), wake], [], [], delay)
            self.wakeups += 1
            if wake in ready:
                self.waker.drain()
                return False
            if ready:
                self._consume(self._inotify.read())
        return bool(self.broken)  # broken: apply once, then the caller polls instead

    def _consume(self, events: list[ino.Event]) -> None:
        rebuild = False
        now = time.monotonic()
        for event in events:
            if event.mask & ino.IN_Q_OVERFLOW:
                rebuild = True
                continue
            watch = self._watches.get(event.wd)
            if watch is None:
                continue
            directory, names, missing = watch
            if event.mask & (ino.IN_DELETE_SELF | ino.IN_MOVE_SELF | ino.IN_IGNORED):
                rebuild = True
            elif event.name in missing:
                rebuild = True  # a directory we wait for appeared (or went again)
            elif event.name in names:
                self._pending = now
                self._note_write(os.path.join(directory, event.name), event.mask, now)
        if rebuild:
            self._pending = now
            self._rebuild()

    def _note_write(self, path: str, mask: int, now: float) -> None:
        if mask & ino.IN_MODIFY:
            self._writing[path] = now
        elif mask & ino.IN_CREATE and not mask & ino.IN_ISDIR and not os.path.islink(path):
            self._writing[path] = now  # a new regular file: complete when it is closed
        elif mask & (ino.IN_CLOSE_WRITE | ino.IN_MOVED_TO | ino.IN_MOVED_FROM | ino.IN_DELETE):
            self._writing.pop(path, None)

    def _forget_stalled_writers(self, now: float) -> None:
        for path, seen in list(self._writing.items()):
            if now - seen >= WRITE_STALL:
                del self._writing[path]

    def _close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def close(self) -> None:
        self._close()


class PollWatcher:
    mode = "polling"
    broken = ""

    def __init__(
        self, files: set[str], debounce: float, waker: Waker, interval: float = POLL_INTERVAL
    ):
        self.files = frozenset(files)
        self.debounce = debounce
        self.waker = waker
        self.interval = interval
        self.wakeups = 0
        self._last = signature(self.files)
        self._pending: Optional[float] = None

    def describe(self) -> str:
        return f"polling every {self.interval:g}s"

    def retarget(self, files: set[str]) -> None:
        if frozenset(files) != self.files:
            self.files = frozenset(files)
            self._last = signature(self.files)

    def stale(self) -> bool:
        return False

    def refresh(self) -> None:
        self.mark_changed()

    def mark_changed(self) -> None:
        self._pending = time.monotonic()

    def wait(self, timeout: Optional[float]) -> bool:
        """Like InotifyWatcher.wait: True once a change held still for an interval and the
        debounce (a writer's pause shorter than the interval is never applied)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            delay = self.interval
            if self._pending is None and deadline is not None:
                delay = min(delay, deadline - time.monotonic())
                if delay <= 0:
                    return False
            ready, _, _ = select.select([self.waker.fileno()], [], [], delay)
            self.wakeups += 1
            if ready:
                self.waker.drain()
                return False
            now = signature(self.files)
            if now != self._last:
                self._last = now
                self._pending = time.monotonic()
            elif self._pending is not None and time.monotonic() - self._pending >= self.debounce:
                self._pending = None
                return True

    def close(self) -> None:
        pass


Watcher = Union[InotifyWatcher, PollWatcher]


def make_watcher(
    files: set[str],
    debounce: float,
    waker: Waker,
    warn: Callable[[str], None] = lambda _: None,
) -> Watcher:
    """inotify on Linux whenever it works; polling when forced or inotify is missing."""
    if os.environ.get("XDSGEN_WATCHER", "").lower() != "poll":
        try:
            return InotifyWatcher(files, debounce, waker)
        except OSError as exc:  # no inotify in libc or kernel, the watch limit, ...
            warn(f"warning: inotify is not usable ({exc}); polling instead")
    return PollWatcher(files, debounce, waker)


__all__ = [
    "InotifyWatcher",
    "PollWatcher",
    "Waker",
    "Watcher",
    "certificate_paths",
    "changed_between",
    "make_watcher",
    "resolution_chain",
    "signature",
    "watched_files",
]
