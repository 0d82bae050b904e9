"""Reusing the last full render of a big inventory when only some vhosts' routes changed.

At 10 000 vhosts a full render takes ~1.6 s (loading and checking the inventory 0.3 s, the
model 0.6 s, templates and parsing every file back 0.9 s on two cores), while the common
edit, a route of one vhost, changes one vhost in two route files. After a full render of
a big inventory (REUSE_FROM vhosts or more) its result is kept in the cache directory
(xdsgen/cache.py) by a detached process: the model, every file, the files parsed and
their route digests (what apply's plan reads), each vhost's text as it was, and a digest
of each part. The next render of the same context (`Finder`):
- while the inventory is loaded, compares its vhosts with the kept ones: the schema
  check skips those it accepted then (it checks `http` item by item);
- builds each changed vhost (at most MAX_CHANGED) alone, in a small inventory under its
  real index (reuse_edits.py), and renders it, verified as every render is (parsed back,
  compared with its model); its text replaces the kept one in the kept route files. Every
  other vhost's text is text a full render wrote and parsed back before;
- returns the kept model with the new vhosts in (the others unpickled only if used:
  render and apply never use them) and the warnings located in the new text.

Reuse is refused, and the full render runs, unless all of this holds:
- the kept render is of the same context: every part of the inventory but `http`, the
  files it names (stat: size, mtime, inode, mode), the options, xdsgen's own code, schema
  and templates, Python (`context_key`); and it has no patches, acme certificates or
  htpasswd files (their outside files or decisions reach every vhost);
- a changed vhost differs only in its routes, and its routes only in keys that stay within
  the route (reuse_edits.ROUTE_KEYS): domains, tls, access, headers, pages are decided
  across vhosts and listeners; no vhost was added or removed;
- the changed vhost's old version, built alone, gives exactly the kept texts and warnings
  (nothing from the other vhosts reached it), and its new version gives texts in the same
  route files with the same route-file header and the same clusters and listeners;
- no upstream becomes used or unused (that is a warning about another part).
XDSGEN_REUSE=off turns reuse off; XDSGEN_REUSE_FROM sets the threshold and
XDSGEN_REUSE_FOREGROUND=1 keeps the render in the foreground (tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from xdsgen.conventions import is_rds
from xdsgen.errors import parse_path
from xdsgen.inventory import Inventory
from xdsgen.model import Model
from xdsgen.render import Rendered
from xdsgen.reuse_edits import Edits, Options, fragments, upstreams_of

FORMAT = 1
REUSE_FROM = 1000  # vhosts: below, a full render takes a few tenths of a second at most
MAX_CHANGED = 16
# Route keys whose effect stays within the vhost's own part of the route files.
# Kept renders (contexts: render -o DIR and apply are two), the most recently used: one of
# 10 000 vhosts is ~25 MB.
_KEEP_RENDERS = 3


def _enabled_from() -> Optional[int]:
    if os.environ.get("XDSGEN_REUSE", "").strip().lower() in ("off", "0", "no", "false"):
        return None
    try:
        return int(os.environ.get("XDSGEN_REUSE_FROM", REUSE_FROM))
    except ValueError:
        return REUSE_FROM


def _vhosts(data: dict[str, Any]) -> Optional[list[Any]]:
    items = data.get("http")
    least = _enabled_from()
    if least is None or not isinstance(items, list) or len(items) < max(1, least):
        return None
    return items


# --------------------------------------------------------------------------- context


_CODE: dict[str, bytes] = {}


def _code_signature() -> bytes:
    """xdsgen's modules, schema and templates as stat signatures: a changed xdsgen is a new
    context."""
    if "sig" not in _CODE:
        from xdsgen import __version__, resources

        roots = [os.path.dirname(os.path.abspath(__file__)), str(resources.directory("templates"))]
        parts = [__version__, sys.version]
        for root in roots:
            for folder, dirs, names in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(names):
                    parts.append(_stat_signature(os.path.join(folder, name)))
        _CODE["sig"] = "\0".join(parts).encode()
    return _CODE["sig"]


def _stat_signature(path: str) -> str:
    try:
        s = os.stat(path)
    except OSError as exc:
        return f"{path} {exc.errno}"
    if stat.S_ISDIR(s.st_mode):  # the config directory: its files are not read by a render
        return f"{path} directory"
    return f"{path} {s.st_size} {s.st_mtime_ns} {s.st_ino} {s.st_mode} {s.st_uid}"


def _path_strings(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        if "/" in value:
            found.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _path_strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _path_strings(item, found)


def context_key(data: dict[str, Any], base_dir: Path, items: list[Any], options: Options) -> str:
    """A digest of everything but the vhosts a render depends on."""
    rest = {k: v for k, v in data.items() if k != "http"}
    paths: set[str] = set()
    _path_strings(rest, paths)
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("error_page"), str):
            paths.add(item["error_page"])
    digest = hashlib.sha256(f"{FORMAT}\0{options!r}\0{base_dir}\0".encode())
    digest.update(_code_signature())
    digest.update(repr(rest).encode("utf-8", "surrogatepass"))
    for path in sorted(paths):
        digest.update(_stat_signature(os.path.join(base_dir, path)).encode())
    return digest.hexdigest()[:32]


def _blobs(items: list[Any]) -> list[str]:
    """Each vhost as text, equal exactly when the values are: repr of YAML's plain data
    (marshal's bytes depend on which strings are shared or interned; JSON takes 3x longer
    and says 1 for 1.0)."""
    return [repr(item) for item in items]


def _counts(model: Model, items: list[Any]) -> dict[str, int]:
    """Upstream -> how many routes of served vhosts name it."""
    served = {vh.index for rc in model.route_configs for vh in rc.virtual_hosts}
    counts: dict[str, int] = {}
    for index in served:
        for name in upstreams_of(items[index]):
            counts[name] = counts.get(name, 0) + 1
    return counts


def _route_digests(files: dict[str, str]) -> dict[str, Any]:
    """Route file -> route configuration -> its digests (live/digests.py), as JSON data."""
    from xdsgen.live.digests import route_digests

    found = {}
    for name, text in files.items():
        if is_rds(name):
            digests = route_digests(text) or {}
            found[name] = {rc: d.as_json() for rc, d in digests.items()}
    return found


# --------------------------------------------------------------------------- keeping


def _folder(key: str, create: bool = False) -> Optional[str]:
    from xdsgen.cache import cache_dir

    base = cache_dir()
    if base is None:
        return None
    renders = os.path.join(base, "renders")
    if create:
        try:
            os.makedirs(renders, mode=0o700, exist_ok=True)
        except OSError:
            return None
    return os.path.join(renders, key)


def _keep(folder: str, key: str, items: list[Any], model: Model, rendered: Rendered) -> None:
    import pickle

    from xdsgen.parsed import document, is_parsed
    from xdsgen.speed import gc_paused

    with gc_paused():
        for name, text in rendered.files.items():
            found = fragments(text) if is_rds(name) else ()
            if found is None or (found and len(set(found[1])) != len(found[1])):
                return
        warnings = [(parse_path(w.path), w.message, w.hint) for w in model.warnings]
        meta: dict[str, Any] = {
            "format": FORMAT,
            "key": key,
            "blobs": _blobs(items),
            "counts": _counts(model, items),
            "warnings": warnings,
        }
        if any(path is None for path, _, _ in warnings):
            return
        # The vhosts apart: a reused model reads them only if used (reuse_edits.KeptVhosts).
        skeleton = replace(
            model, route_configs=tuple(replace(rc, virtual_hosts=()) for rc in model.route_configs)
        )
        vhosts = {rc.name: rc.virtual_hosts for rc in model.route_configs}
        parts: dict[str, bytes] = {
            "model.pickle": pickle.dumps(skeleton, protocol=pickle.HIGHEST_PROTOCOL),
            "vhosts.pickle": pickle.dumps(vhosts, protocol=pickle.HIGHEST_PROTOCOL),
            "files.marshal": marshal.dumps(rendered.files),
        }
        if all(is_parsed(t) for t in rendered.files.values()):
            docs = {n: document(t) for n, t in rendered.files.items()}
            parts["docs.marshal"] = marshal.dumps(docs)
            parts["digests.marshal"] = marshal.dumps(_route_digests(rendered.files))
        meta["parts"] = {name: _digest(data) for name, data in parts.items()}
        parts["meta.pickle"] = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
        _write(folder, parts)


def _write(folder: str, parts: dict[str, bytes]) -> None:
    import shutil

    temp = f"{folder}.{os.getpid()}.tmp"
    old = f"{folder}.{os.getpid()}.old"
    try:
        shutil.rmtree(temp, ignore_errors=True)
        os.mkdir(temp, 0o700)
        for name, data in parts.items():
            with open(os.path.join(temp, name), "wb") as handle:
                handle.write(data)
        if os.path.isdir(folder):
            os.rename(folder, old)
        os.rename(temp, folder)
    except OSError:
        shutil.rmtree(temp, ignore_errors=True)
        return
    finally:
        shutil.rmtree(old, ignore_errors=True)
    _prune(os.path.dirname(folder))


def _prune(renders: str) -> None:
    """Only the _KEEP_RENDERS most recently used renders stay."""
    import shutil

    try:
        entries = sorted(
            # Kept renders only: another process's .tmp or .old folder is its own business.
            (
                e
                for e in os.scandir(renders)
                if "." not in e.name and e.is_dir(follow_symlinks=False)
            ),
            key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns,
            reverse=True,
        )
    except OSError:
        return
    for entry in entries[_KEEP_RENDERS:]:
        shutil.rmtree(entry.path, ignore_errors=True)


def _read(folder: str, name: str, loads: Any, meta: Any = None) -> Any:
    """A part of a kept render, or None. Parts but the meta are checked against the digest
    the meta has of them: a damaged file is never used (the vhosts are read lazily)."""
    import pickle

    try:
        with open(os.path.join(folder, name), "rb") as handle:
            data = handle.read()
        if meta is not None and meta.get("parts", {}).get(name) != _digest(data):
            return None
        return loads(data)
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError, AttributeError):
        return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- reusing


class Finder:
    """Finds the kept render of an inventory's context while the inventory is loaded (so
    that the schema check can skip the vhosts it already checked), then reuses it."""

    def __init__(self, options: Options):
        self.options = options
        self.looked = False
        self.key: Optional[str] = None  # the context, once the vhosts are big enough
        self.items: list[Any] = []
        self.folder: Optional[str] = None  # the kept render of that context, if reusable
        self.meta: Any = None
        self.changed: list[int] = []

    def checked_vhosts(self, data: dict[str, Any], base_dir: Path) -> frozenset[int]:
        """The indices of the vhosts the kept render has exactly as they are in `data`:
        the schema accepted them then (inventory.load need not check them again)."""
        self._find(data, base_dir)
        if self.meta is None or not _items_checked_alone():
            return frozenset()
        changed = set(self.changed)
        return frozenset(i for i in range(len(self.meta["blobs"])) if i not in changed)

    def _find(self, data: dict[str, Any], base_dir: Path) -> None:
        import pickle

        if self.looked:
            return
        self.looked = True
        items = _vhosts(data)
        if items is None:
            return
        key = context_key(data, base_dir, items, self.options)
        self.key, self.items = key, items
        folder = _folder(key)
        meta = None if folder is None else _read(folder, "meta.pickle", pickle.loads)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
            return
        blobs = _blobs(items)
        if len(blobs) != len(meta["blobs"]):
            return
        changed = [i for i, (new, old) in enumerate(zip(blobs, meta["blobs"])) if new != old]
        if len(changed) <= MAX_CHANGED:
            self.folder, self.meta, self.changed = folder, meta, changed

    def keep(self, inventory: Inventory, model: Model, rendered: Rendered) -> None:
        """Keep a full render of a big inventory for the next render to reuse; quietly
        nothing when it is small, not eligible, or the cache cannot be written. The writing
        (~0.5 s at 10 000 vhosts) is done by a detached process, so no one waits for it
        (XDSGEN_REUSE_FOREGROUND=1: by this one, for tests)."""
        self._find(inventory.data, inventory.base_dir)
        key, items = self.key, self.items
        if key is None or model.patches or model.user_files:
            return
        if any(c.acme for c in model.certificates):
            return
        folder = _folder(key, create=True)
        if folder is None:
            return
        if os.environ.get("XDSGEN_REUSE_FOREGROUND") == "1" or not hasattr(os, "fork"):
            with contextlib.suppress(Exception):  # keeping only saves time later
                _keep(folder, key, items, model, rendered)
            return
        from xdsgen.speed import detached

        detached(lambda: _keep(folder, key, items, model, rendered))

    def reused(
        self, inventory: Inventory, documents: bool = False
    ) -> Optional[tuple[Model, Rendered]]:
        """The model and files of `inventory` from the kept render, when it can be reused
        (see the module doc); else None, and the caller renders in full. `documents`: also
        put the parsed files and route digests in their caches, as a full render and
        apply's plan leave them."""
        from xdsgen.speed import gc_paused

        with gc_paused():
            self._find(inventory.data, inventory.base_dir)
            if self.folder is None:
                return None
            try:
                return self._reuse(self.folder, inventory, documents)
            except Exception:  # reuse only saves time: the full render decides anything odd
                return None

    def _reuse(
        self, folder: str, inventory: Inventory, documents: bool
    ) -> Optional[tuple[Model, Rendered]]:
        import ast
        import pickle

        model = _read(folder, "model.pickle", pickle.loads, self.meta)
        files = _read(folder, "files.marshal", marshal.loads, self.meta)
        vhosts = _read(folder, "vhosts.pickle", bytes, self.meta)  # unpickled when used
        if not isinstance(model, Model) or not isinstance(files, dict) or vhosts is None:
            return None
        edits = Edits(inventory, self.options, files, self.meta)
        for index in self.changed:
            try:
                old = ast.literal_eval(self.meta["blobs"][index])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
            if not edits.rebuild(index, old, inventory.data["http"][index]):
                return None
        new_files = edits.files()
        if new_files is None or not edits.same_upstreams_in_use():
            return None
        if documents:
            docs = _read(folder, "docs.marshal", marshal.loads, self.meta)
            edits.remember(docs, new_files)
            kept_digests = _read(folder, "digests.marshal", marshal.loads, self.meta)
            edits.remember_digests(kept_digests, new_files)
        with contextlib.suppress(OSError):
            os.utime(folder)  # used: the last to be pruned
        return edits.model(model, _unpickled(vhosts)), Rendered(dict(sorted(new_files.items())))


def _unpickled(data: bytes) -> Callable[[], dict[str, Any]]:
    import pickle

    found: list[dict[str, Any]] = []

    def load() -> dict[str, Any]:
        if not found:
            from xdsgen.speed import gc_paused

            with gc_paused():
                found.append(pickle.loads(data))
        return found[0]

    return load


def _items_checked_alone() -> bool:
    """Whether the schema checks `http` item by item (then a vhost it accepted once is
    accepted again): an array of one $ref, nothing across items."""
    from xdsgen.inventory import schema

    http = schema().get("properties", {}).get("http", {})
    return set(http) <= {"type", "items", "description", "examples"} and set(
        http.get("items", {})
    ) == {"$ref"}
