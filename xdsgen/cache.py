"""A per-user cache of compiled Jinja templates.

Compiling the templates is most of what a small `render` or `apply` does after start-up
(lexing, parsing and generating Python for ~250 template lines, then compiling that), and
OpenWrt's Python writes no .pyc files, so every cron run would pay it again. Jinja's
bytecode cache keeps the compiled code objects (marshal) keyed by template name and a hash
of the template source; a changed template is recompiled.

Where: $XDSGEN_CACHE_DIR, else $XDG_CACHE_HOME/xdsgen, else ~/.cache/xdsgen. Set
XDSGEN_CACHE_DIR=off to disable it. The files hold code that is executed, so the directory
must belong to the user and be writable by nobody else; otherwise, or when it cannot be
created or written (read-only flash, no HOME), xdsgen silently compiles in memory as before.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from typing import Any, Optional

OFF = ("", "off", "0", "no", "false")


def cache_dir() -> Optional[str]:
    """The cache directory if it is safe to use (created if missing), else None."""
    explicit = os.environ.get("XDSGEN_CACHE_DIR")
    if explicit is not None:
        if explicit.strip().lower() in OFF:
            return None
        directory = explicit
    else:
        base = os.environ.get("XDG_CACHE_HOME") or ""
        if not os.path.isabs(base):
            home = os.path.expanduser("~")
            if not os.path.isabs(home):
                return None
            base = os.path.join(home, ".cache")
        directory = os.path.join(base, "xdsgen")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        info = os.lstat(directory)
    except OSError:
        return None
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        return None
    return directory


def _environment_key(jinja2: Any) -> str:
    # The cached code depends on the Environment's settings and filters as well as on the
    # template source, and those are defined in render.py: any change there (or a new
    # xdsgen, Jinja or Python) starts a fresh set of cache files.
    digest = hashlib.sha256()
    render_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "render.py")
    try:
        with open(render_py, "rb") as handle:
            digest.update(handle.read())
    except OSError:
        digest.update(b"no render.py")
    from xdsgen import __version__

    digest.update(f"{__version__} {jinja2.__version__} {sys.version}".encode())
    return digest.hexdigest()[:16]


def jinja_bytecode_cache() -> Any:
    """A Jinja BytecodeCache in cache_dir(), or None (no cache)."""
    directory = cache_dir()
    if directory is None:
        return None
    import jinja2
    from jinja2.bccache import FileSystemBytecodeCache

    class SafeBytecodeCache(FileSystemBytecodeCache):
        """Never fails a render: an unreadable, corrupt or unwritable cache means compiling."""

        def load_bytecode(self, bucket: Any) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # truncated or foreign file: pickle/marshal raise all sorts
                bucket.reset()

        def dump_bytecode(self, bucket: Any) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    return SafeBytecodeCache(directory, f"jinja-{_environment_key(jinja2)}-%s.cache")
