"""Atomic file replacement: the only way Envoy's file-based xDS notices a change.

Envoy watches for a file being *moved* into place (inotify IN_MOVED_TO); an in-place write
is never seen. So: temp file in the same directory (a rename across file systems is a
copy), fsync, chmod 0644 (the Envoy image runs as uid 101; mkstemp makes 0600),
os.replace, fsync the directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from xdsgen.errors import IOProblem

TEMP_PREFIX = ".xdsgen-tmp-"
FILE_MODE = 0o644


def read_or_none(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return None


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(target: str, text: str, mode: int = FILE_MODE) -> bool:
    """Replace `target` with `text` by rename; return False (touching nothing) if unchanged."""
    if read_or_none(target) == text:
        return False
    replace_file(target, text, mode)
    return True


def replace_file(target: str, text: str, mode: int = FILE_MODE) -> None:
    """Move `text` into place at `target` even when it is already there: Envoy reads a file
    only when one is moved into place, so a stale one must be moved in again."""
    directory = os.path.dirname(os.path.abspath(target))
    try:
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".yaml", dir=directory)
    except OSError as exc:
        raise IOProblem(f"cannot write in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise IOProblem(f"cannot write {target}: {exc.strerror}") from None
    fsync_dir(directory)


def sweep_temp_files(directory: str) -> list[str]:
    """Remove temp files a killed run left behind."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            if name.startswith(TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))
                    removed.append(name)
    return removed
