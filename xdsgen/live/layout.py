"""envoy.layout on disk: which layout the config directory has, moving it from one to the
other, and whether the running Envoy would see a swap at all.

Moving between layouts never changes what Envoy reads, only how:
  rename -> directory: the files on disk are written as a first generation (..data), then
    each regular file is replaced by its link, by rename (live/swap.py). Envoy must already
    watch the directory, or it would miss every later swap: apply refuses (exit 3, nothing
    written) until Envoy runs the bootstrap `xdsgen bootstrap` writes for directory mode.
  directory -> rename: each link is replaced by a regular file with the same text, by
    rename, then ..data and the ..<timestamp> directories go. An Envoy that still watches
    the directory sees each rename too, so the bootstrap can be changed at leisure.
Both are idempotent: an apply killed half-way finds a mixed directory and finishes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

from xdsgen.conventions import LAYOUT_DIRECTORY
from xdsgen.errors import EnvoyRefused, IOProblem
from xdsgen.live.swap import is_directory_layout, is_our_link, to_rename_layout, write_generation

BOOTSTRAP_MASK = "/config_dump?mask=bootstrap.dynamic_resources"


def layout_on_disk(config_dir: str) -> str:
    """directory when the directory has the ..data link (rollback follows what it finds)."""
    return LAYOUT_DIRECTORY if is_directory_layout(config_dir) else "rename"


def conversion(config_dir: str, layout: str, names: Iterable[str]) -> Optional[str]:
    """What must change for `layout` (None: nothing); `names`: the files of ours on disk."""
    if layout == LAYOUT_DIRECTORY:
        plain = [
            n
            for n in names
            if os.path.lexists(os.path.join(config_dir, n)) and not is_our_link(config_dir, n)
        ]
        if plain:
            return f"{config_dir} moves to the directory layout (..data, one link per file)"
        return None
    if is_directory_layout(config_dir) or any(is_our_link(config_dir, n) for n in names):
        return f"{config_dir} moves to the rename layout (regular files, ..data removed)"
    return None


def convert(
    config_dir: str, layout: str, files: Mapping[str, str], say: Callable[[str], None]
) -> bool:
    """Lay the directory out for `layout`, the same texts before and after; `files`: the
    files of ours on disk. True when something moved."""
    what = conversion(config_dir, layout, files)
    if what is None:
        return False
    if layout == LAYOUT_DIRECTORY:
        write_generation(config_dir, files, files)
    else:
        to_rename_layout(config_dir, files)
    say(f"note: {what}")
    return True


def check_envoy_watches(admin: Any, model: Any, timeout: float) -> None:
    """In directory mode Envoy must watch the directory (watched_directory in its
    bootstrap): otherwise no swap is ever seen. EnvoyRefused, nothing written, when not."""
    from xdsgen.admin import AdminUnreachable

    wanted = model.envoy.watched_directory
    try:
        dump = admin.get_json(BOOTSTRAP_MASK, timeout)
    except AdminUnreachable as exc:
        raise IOProblem(f"{exc}; nothing was written") from None
    watched = set()
    for config in dump.get("configs") or []:
        dynamic = ((config or {}).get("bootstrap") or {}).get("dynamic_resources") or {}
        for key in ("cds_config", "lds_config"):
            source = (dynamic.get(key) or {}).get("path_config_source") or {}
            watched.add((source.get("watched_directory") or {}).get("path"))
    if watched != {wanted}:
        seen = ", ".join(sorted(str(w) for w in watched if w)) or "no directory"
        raise EnvoyRefused(
            f"envoy.layout is directory, but the running Envoy's bootstrap watches {seen}, "
            f"not {wanted}: it would never see a swap. Nothing was written.\nWrite the "
            "bootstrap again (`xdsgen bootstrap INVENTORY -o FILE`), restart Envoy with it, "
            "then apply (the directory is then moved to the new layout)."
        )


def prepare(
    model: Any,
    old: Mapping[str, str],
    admin: Any,
    timeout: float,
    empty: bool,
    say: Callable[[str], None],
) -> None:
    """Before apply writes anything: in directory mode Envoy must watch the directory
    (checked when something is to be written and the admin answers). With nothing else to
    write (`empty` plan), a directory in the other layout is moved now; otherwise apply
    moves it just before its first step."""
    layout = model.envoy.layout
    config_dir = model.envoy.config_dir
    moving = conversion(config_dir, layout, old) is not None
    if layout == LAYOUT_DIRECTORY and admin is not None and (moving or not empty):
        check_envoy_watches(admin, model, timeout)
    if moving and empty:
        convert(config_dir, layout, old, say)


def dry_run_notes(config_dir: str, layout: str, old: Mapping[str, str]) -> list[str]:
    moving = conversion(config_dir, layout, old)
    return [f"{moving} (apply does it)"] if moving else []


def sweep_leftovers(config_dir: str, *temp_dirs: str) -> list[str]:
    """What a killed swap left (live/swap.py), and the temp files in `temp_dirs`."""
    from xdsgen.files import sweep_temp_files
    from xdsgen.live.swap import sweep

    return [name for d in temp_dirs for name in sweep_temp_files(d)] + sweep(config_dir)


def keep_files(
    model: Any,
    rendered: Any,
    old: Mapping[str, str],
    admin: Any,
    timeout: float,
    say: Callable[[str], None] = lambda _: None,
) -> Any:
    """Directory mode: the rendered files, plus the rds_/sds_ files of ours that a listener
    still reads: one on disk now (Envoy drains it once this apply replaces it) or one Envoy
    is draining (`admin`: asked when given), and the clusters their routes name. Every swap
    makes each subscription re-read its file, a draining listener's too, and a missing file
    is an update_failure; so such a file stays until no listener reads it, and a later
    apply removes it."""
    if model.envoy.layout != LAYOUT_DIRECTORY:
        return rendered
    from xdsgen.conventions import CDS_FILE, LDS_FILE, is_rds, is_sds
    from xdsgen.live.confirm import subscriptions
    from xdsgen.live.plan import cluster_references, union_cds
    from xdsgen.render import Rendered

    read = set(subscriptions(old.get(LDS_FILE)))
    if admin is not None:
        read |= draining_reads(admin, timeout)
    kept = {
        n: t
        for n, t in old.items()
        if n in read and n not in rendered.files and (is_rds(n) or is_sds(n))
    }
    if not kept:
        return rendered
    say(f"  kept until no listener reads them: {', '.join(sorted(kept))}")
    files = {**rendered.files, **kept}
    # ... and the clusters their routes name: a draining listener still routes by them.
    named = cluster_references([t for n, t in kept.items() if is_rds(n)])
    cds = union_cds(old.get(CDS_FILE), files[CDS_FILE], named)
    if cds is not None:
        files[CDS_FILE] = cds
    return Rendered(dict(sorted(files.items())))


def draining_reads(admin: Any, timeout: float) -> set[str]:
    """The rds_/sds_ files (base names) the listeners Envoy is draining read."""
    from xdsgen.admin import AdminUnreachable

    try:
        dump = admin.config_dump("dynamic_listeners", timeout=timeout)
    except AdminUnreachable:
        return set()
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            source = node.get("path_config_source")
            if isinstance(source, dict) and isinstance(source.get("path"), str):
                found.add(os.path.basename(source["path"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for entry in dump.get("configs") or []:
        if isinstance(entry, dict):
            walk(entry.get("draining_state"))
    return found
