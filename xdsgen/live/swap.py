"""Directory-swap mode's writer (envoy.layout: directory): kubelet's AtomicWriter, so that
the whole set of files changes with one rename.

The layout, as kubelet lays out a ConfigMap volume:
  DIR/..data         -> ..2025_01_02_03_04_05.k3x9q_1   (a symlink, replaced by rename)
  DIR/..<timestamp>/    every file of one generation, 0644
  DIR/cds.yaml       -> ..data/cds.yaml                 (one symlink per file)
Envoy reads DIR/cds.yaml and the others through the symlinks and watches DIR
(path_config_source.watched_directory): the rename of `..data` is the one event of an
update, and every subscription re-reads its file then.

One swap (write_generation) makes kubelet's system calls:
  1. mkdir ..<timestamp> (then 0755); each file written, fsynced, 0644; the directory fsynced
  2. symlink NAME -> ..data/NAME for each name that is new. Older kubelets did this here
     too; current ones do it after step 4 (for Windows, where a link to a missing target
     breaks). Before the swap, a listener that is new in this generation finds its rds_ or
     sds_ file the moment Envoy reads the generation.
  3. symlink ..data_tmp -> ..<timestamp>
  4. rename ..data_tmp over ..data: the swap; DIR fsynced
  5. unlink the NAME links of the names the generation dropped
  6. remove the previous ..<timestamp> directory
A kill between two steps leaves Envoy a whole generation: before step 4 the previous one
(a new name's link dangles, and nothing refers to it yet), from step 4 on the new one.
`sweep` removes what a killed run left (..data_tmp, a ..<timestamp> directory that ..data
does not point at); the next swap creates missing links and drops stale ones.

Only names of the generations xdsgen writes are ever linked or unlinked, and only links
into ..data are removed: a file of your own in the directory is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from typing import Optional

from xdsgen.conventions import DATA_LINK, DATA_LINK_TMP
from xdsgen.errors import IOProblem
from xdsgen.files import FILE_MODE, TEMP_PREFIX, fsync_dir, replace_file

STAMP_MODE = 0o755
# kubelet's names: os.MkdirTemp(dir, "..2006_01_02_15_04_05.")
_STAMP_RE = re.compile(r"^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.[A-Za-z0-9_]+$")


def link_target(name: str) -> str:
    """What the visible file NAME points at."""
    return f"{DATA_LINK}/{name}"


def is_stamp_dir(name: str) -> bool:
    return bool(_STAMP_RE.match(name))


def data_target(config_dir: str) -> Optional[str]:
    """The ..<timestamp> directory ..data points at; None outside directory mode."""
    try:
        return os.readlink(os.path.join(config_dir, DATA_LINK))
    except OSError:
        return None


def is_directory_layout(config_dir: str) -> bool:
    """Whether the directory is laid out for swaps (it has the ..data link)."""
    return os.path.islink(os.path.join(config_dir, DATA_LINK))


def is_our_link(config_dir: str, name: str) -> bool:
    try:
        return os.readlink(os.path.join(config_dir, name)) == link_target(name)
    except OSError:
        return False


def sweep(config_dir: str) -> list[str]:
    """Remove what a killed swap left: ..data_tmp, and ..<timestamp> directories that
    ..data does not point at (a generation written but never swapped in, or one swapped
    out but not removed yet)."""
    removed: list[str] = []
    live = data_target(config_dir)
    try:
        names = os.listdir(config_dir)
    except OSError:
        return removed
    for name in sorted(names):
        path = os.path.join(config_dir, name)
        if name == DATA_LINK_TMP and os.path.islink(path):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(name)
        elif is_stamp_dir(name) and name != live and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                removed.append(name)
    return removed


def write_generation(config_dir: str, files: Mapping[str, str], previous: Iterable[str]) -> None:
    """Swap the directory to exactly `files` (name -> text); `previous`: the names of the
    generation on disk now (the only links ever removed). IOProblem when a step fails;
    before the swap nothing Envoy reads has changed then."""
    old_stamp = data_target(config_dir)
    stamp = _write_stamp_dir(config_dir, files)
    occupied = []
    try:
        for name in sorted(files):
            path = os.path.join(config_dir, name)
            if is_our_link(config_dir, name):
                continue
            if os.path.lexists(path):
                occupied.append(name)  # a file of the rename layout: replaced after the swap
            else:
                os.symlink(link_target(name), path)
        temp_link = os.path.join(config_dir, DATA_LINK_TMP)
        if os.path.lexists(temp_link):
            os.unlink(temp_link)
        os.symlink(stamp, temp_link)
        os.rename(temp_link, os.path.join(config_dir, DATA_LINK))
    except OSError as exc:
        with contextlib.suppress(OSError):
            if data_target(config_dir) != stamp:
                shutil.rmtree(os.path.join(config_dir, stamp), ignore_errors=True)
        hint = (
            " (directory mode needs symlinks: a file system such as ext4, f2fs or tmpfs, not "
            "FAT; or set envoy.layout: rename)"
            if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP)
            else ""
        )
        raise IOProblem(
            f"cannot swap {config_dir} to a new generation: {exc.strerror}{hint}"
        ) from None
    try:
        fsync_dir(config_dir)
        for name in occupied:
            _replace_with_link(config_dir, name)
        for name in sorted(set(previous) - set(files)):
            if is_our_link(config_dir, name):
                os.unlink(os.path.join(config_dir, name))
        if old_stamp and old_stamp != stamp and is_stamp_dir(old_stamp):
            shutil.rmtree(os.path.join(config_dir, old_stamp), ignore_errors=True)
        fsync_dir(config_dir)
    except OSError as exc:
        # Envoy runs the new generation; what is left over goes with the next swap or sweep.
        raise IOProblem(f"{config_dir} was swapped, but tidying failed: {exc.strerror}") from None


def _write_stamp_dir(config_dir: str, files: Mapping[str, str]) -> str:
    prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    try:
        path = tempfile.mkdtemp(prefix=prefix, dir=config_dir)
    except OSError as exc:
        raise IOProblem(f"cannot write in {config_dir}: {exc.strerror}") from None
    try:
        os.chmod(path, STAMP_MODE)
        for name, text in sorted(files.items()):
            target = os.path.join(path, name)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(target, FILE_MODE)
        fsync_dir(path)
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise IOProblem(f"cannot write {path}: {exc.strerror}") from None
    return os.path.basename(path)


def _replace_with_link(config_dir: str, name: str) -> None:
    """A regular file becomes the link to its own content in ..data, by rename (so there is
    never a moment without the name)."""
    temp = os.path.join(config_dir, f"{TEMP_PREFIX}{os.getpid()}-{name}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)
    os.symlink(link_target(name), temp)
    os.rename(temp, os.path.join(config_dir, name))


def to_rename_layout(config_dir: str, files: Mapping[str, str]) -> None:
    """Leave directory mode: each link becomes a regular file with the same text (renamed
    over the link), then ..data and the ..<timestamp> directories go."""
    for name, text in sorted(files.items()):
        if is_our_link(config_dir, name):
            replace_file(os.path.join(config_dir, name), text)
    try:
        names = os.listdir(config_dir)
    except OSError as exc:
        raise IOProblem(f"cannot read {config_dir}: {exc.strerror}") from None
    for name in names:
        path = os.path.join(config_dir, name)
        # ..data itself, and the links of names no generation of ours holds any more
        ours = is_our_link(config_dir, name)
        if ours or (name in (DATA_LINK, DATA_LINK_TMP) and os.path.islink(path)):
            with contextlib.suppress(OSError):
                os.unlink(path)
    sweep(config_dir)
    with contextlib.suppress(OSError):
        fsync_dir(config_dir)
