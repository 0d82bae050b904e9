"""`xdsgen apply --watch`: re-apply whenever the inventory or a file it names changes.

Watched: the inventory, every certificate and key it names (so a renewal reaches Envoy)
and the templates. The *directories* holding them are watched, not the files: editors
save by writing a new file and renaming it over the old one, certbot swaps symlinks, and
a file may be missing for a moment; a watch on the old inode would miss all of that.

watchfiles (inotify) is used when it imports and works; OpenWrt has no package for it and
some builds are empty placeholders, so otherwise the files are polled (a stat per file
per interval). XDSGEN_WATCHER=poll forces polling.

A bad edit prints its errors and keeps the running config; SIGINT/SIGTERM end the loop
cleanly between applies (an apply in progress finishes, so no temp file is left).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional

from xdsgen.errors import EXIT_OK, InventoryError, XdsgenError

POLL_INTERVAL = 1.0
Signature = dict[str, Optional[tuple[int, int, int, int]]]


def watched_paths(inventory: str, model: Any = None) -> set[str]:
    from xdsgen import resources

    paths = {os.path.abspath(inventory)}
    try:
        template_dir = resources.directory("templates")
        paths.update(str(p) for p in template_dir.glob("*.j2"))
    except FileNotFoundError:
        pass
    if model is not None:
        for path in model.secret_files():
            paths.add(os.path.abspath(path))
            # An in-place edit of a symlink's target shows up in the target's directory.
            paths.add(os.path.realpath(path))
    return paths


def signature(paths: set[str]) -> Signature:
    """What polling compares: inode, size and mtime (following symlinks) of each file."""
    result: Signature = {}
    for path in sorted(paths):
        try:
            info = os.stat(path)
            result[path] = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        except OSError:
            result[path] = None
    return result


def watchfiles_usable() -> bool:
    if os.environ.get("XDSGEN_WATCHER", "").lower() == "poll":
        return False
    try:
        import watchfiles
        from watchfiles._rust_notify import RustNotify  # noqa: F401 - the empty build lacks it
    except Exception:  # ImportError, or a broken native module
        return False
    return callable(getattr(watchfiles, "watch", None))


class PollWatcher:
    """Sleeps `interval` between stats; a change is reported once it held still for `debounce`."""

    kind = "polling"
    broken = ""

    def __init__(
        self,
        paths: set[str],
        debounce: float,
        stop: threading.Event,
        interval: float = POLL_INTERVAL,
    ):
        self.paths = paths
        self.debounce = debounce
        self.stop = stop
        self.interval = interval
        self.last = signature(paths)

    def wait(self) -> bool:
        while not self.stop.wait(self.interval):
            now = signature(self.paths)
            if now == self.last:
                continue
            # Settle: an editor or certbot may still be writing.
            while not self.stop.wait(self.debounce):
                again = signature(self.paths)
                if again == now:
                    break
                now = again
            self.last = now
            return not self.stop.is_set()
        return False

    def close(self) -> None:
        pass


class InotifyWatcher:
    """watchfiles on the directories of the watched files, filtered to those files."""

    kind = "watchfiles"
    broken = ""

    def __init__(self, paths: set[str], debounce: float, stop: threading.Event):
        import watchfiles

        self.paths = paths
        directories = sorted(
            {os.path.dirname(p) for p in paths if os.path.isdir(os.path.dirname(p))}
        )
        self._changes: Iterator[Any] = watchfiles.watch(
            *directories,
            watch_filter=lambda _change, path: os.path.abspath(path) in paths,
            debounce=max(int(debounce * 1000), 50),
            step=50,
            stop_event=stop,
            rust_timeout=0,
            yield_on_timeout=False,
            raise_interrupt=False,
            recursive=False,
        )

    def wait(self) -> bool:
        try:
            next(self._changes)
        except StopIteration:
            return False
        except Exception as exc:  # a watched directory vanished, the inotify limit, ...
            self.broken = f"{type(exc).__name__}: {exc}"
            return True  # something changed: apply, then poll from now on
        return True

    def close(self) -> None:
        close = getattr(self._changes, "close", None)
        if close:
            close()


def make_watcher(
    paths: set[str], debounce: float, stop: threading.Event, inotify: bool = True
) -> Any:
    if inotify and watchfiles_usable():
        try:
            return InotifyWatcher(paths, debounce, stop)
        except Exception:  # e.g. the inotify watch limit is reached: polling still works
            pass
    return PollWatcher(paths, debounce, stop)


def watch_and_apply(
    inventory: str,
    options: Any,
    console: Any,
    debounce: float = 0.5,
    stop: Optional[threading.Event] = None,
) -> int:
    """Apply now, then after every change until SIGINT/SIGTERM (or `stop` is set)."""
    from xdsgen.live.orchestrate import apply as apply_once

    stop = stop or threading.Event()
    restore = _install_signal_handlers(stop)
    paths = watched_paths(inventory)
    try:
        watcher = None
        announced = False
        inotify = True
        while not stop.is_set():
            before = signature(paths)
            model_paths = _apply_and_report(inventory, options, console, apply_once)
            if model_paths is not None:
                paths = model_paths
            if watcher is not None and watcher.broken:
                console.warn(f"watchfiles stopped working ({watcher.broken}); polling instead")
                inotify = False
            if watcher is None or watcher.paths != paths or watcher.broken:
                if watcher is not None:
                    watcher.close()
                watcher = make_watcher(paths, debounce, stop, inotify)
                if not announced:
                    console.info(f"watching {len(paths)} files ({watcher.kind}); Ctrl-C to stop")
                    announced = True
            if signature(paths) != before:
                continue  # changed while we applied: apply again straight away
            if not watcher.wait():
                break
        if watcher is not None:
            watcher.close()
    finally:
        restore()
    console.detail("stopped")
    return EXIT_OK


def _apply_and_report(
    inventory: str, options: Any, console: Any, apply_once: Callable[..., Any]
) -> Optional[set[str]]:
    """One apply; one line of output. Returns the paths to watch, None if unknown."""
    from xdsgen.pipeline import load_model

    try:
        result = apply_once(inventory, options, progress=console.detail, warn=console.warn)
    except InventoryError as exc:
        console.problems(exc.problems)
        count = len(exc.problems)
        console.error(f"{count} error{'s' if count != 1 else ''}; keeping the running config")
        return None
    except XdsgenError as exc:
        console.error(f"error: {exc}")
        return _paths_or_none(inventory, load_model)
    if result.plan.empty:
        console.detail("unchanged")
    else:
        if result.warnings:
            console.problems(result.warnings)
        console.info(f"{time.strftime('%H:%M:%S')} {result.line()}")
    return watched_paths(inventory, result.model)


def _paths_or_none(inventory: str, load_model: Callable[..., Any]) -> Optional[set[str]]:
    try:
        return watched_paths(inventory, load_model(inventory))
    except XdsgenError:
        return None


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
