"""What Envoy accepted, kept in DIR/.xdsgen/state.json: the history `rollback` returns to,
the target of every restore, the files xdsgen owns, and a journal of the apply under way.

Format 3 (formats 1 and 2 read the same, and are rewritten as 3 by the next save):
  {"format": 3,
   "accepted": [newest entry first, at most HISTORY],
   "pending": null | an entry being applied right now}
An entry: {"file_hashes": {name: sha256 of its text}, "certs": {secret: fingerprint},
"confirmed": bool, "admin": "...", "source": "inventory path", "time": "...Z"}; the texts
are in DIR/.xdsgen/files/ (live/blobs.py), each stored once. (Formats 1 and 2 held the
texts inline under "files"; the new key keeps an older xdsgen from reading hashes as
texts: it sees no history instead.) In memory an entry's "files" is a FileSet: name ->
text, read from the store when first used.

The journal is written before the first file is touched. If apply dies (SIGKILL, power
loss) or cannot record its success (disk full), the next apply finds it: when Envoy
runs exactly the pending files they are promoted to accepted, otherwise the directory is
known to hold something Envoy may not have confirmed, and restores go to the last
confirmed entry, never to whatever happens to be on disk.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.conventions import is_config_file, is_rds
from xdsgen.errors import IOProblem
from xdsgen.files import write_atomic
from xdsgen.live.blobs import BlobStore, FileSet
from xdsgen.live.lock import ensure_state_dir, state_dir

STATE_FILE = "state.json"
STATE_FORMAT = 3
HISTORY = 5  # accepted configs kept


def state_path(config_dir: str) -> str:
    return os.path.join(state_dir(config_dir), STATE_FILE)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(value: Any, store: BlobStore) -> Optional[dict[str, Any]]:
    """An entry as read from state.json; None when it is unusable (a text it names is not
    stored any more: a restore to it would be impossible)."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("file_hashes"), dict):
        hashes = {
            str(n): h
            for n, h in value["file_hashes"].items()
            if isinstance(h, str) and is_config_file(str(n))
        }
        if not all(store.has(h) for h in hashes.values()):
            return None
        files = FileSet(hashes, store)
    elif isinstance(value.get("files"), dict):  # formats 1 and 2: the texts inline
        texts = {
            str(n): t
            for n, t in value["files"].items()
            if isinstance(t, str) and is_config_file(str(n))
        }
        files = FileSet.of(texts, store)
    else:
        return None
    certs = value.get("certs") if isinstance(value.get("certs"), dict) else {}
    entry = {k: v for k, v in value.items() if k not in ("files", "file_hashes")}
    return {**entry, "files": files, "certs": certs}


def _stored(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as state.json holds it."""
    out = {k: v for k, v in entry.items() if k != "files"}
    out["file_hashes"] = dict(entry["files"].hashes)
    return out


@dataclass
class State:
    config_dir: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    pending: Optional[dict[str, Any]] = None
    readable: bool = True  # False: state.json exists but could not be read

    @property
    def store(self) -> BlobStore:
        return BlobStore(state_dir(self.config_dir))

    @classmethod
    def load(cls, config_dir: str) -> State:
        try:
            with open(state_path(config_dir), encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return cls(config_dir)
        except (OSError, ValueError):
            return cls(config_dir, readable=False)
        if not isinstance(data, dict):
            return cls(config_dir, readable=False)
        store = BlobStore(state_dir(config_dir))
        entries = [_entry(e, store) for e in data.get("accepted") or []]
        accepted = [e for e in entries if e is not None]
        return cls(config_dir, accepted, _entry(data.get("pending"), store))

    # ------------------------------------------------------------------ questions

    @property
    def last(self) -> Optional[dict[str, Any]]:
        return self.accepted[0] if self.accepted else None

    def last_confirmed(self) -> Optional[dict[str, Any]]:
        """The newest config Envoy confirmed: what every restore returns to."""
        return next((e for e in self.accepted if e.get("confirmed")), None)

    def owned(self) -> set[str]:
        """Files xdsgen wrote: only these may ever be removed."""
        names: set[str] = set()
        for entry in [*self.accepted, *([self.pending] if self.pending else [])]:
            names.update(entry["files"])
        return names

    def known_certs(self) -> dict[str, str]:
        return dict(self.last["certs"]) if self.last else {}

    # ------------------------------------------------------------------ changes

    def begin(self, files: Mapping[str, str], certs: dict[str, str], source: str) -> None:
        """Journal the apply about to start; nothing is written if this fails."""
        self.pending = self._new_entry(files, certs, False, "", source)
        self.save()

    def commit(
        self,
        files: Mapping[str, str],
        certs: dict[str, str],
        confirmed: bool,
        admin: str,
        source: str,
    ) -> None:
        entry = self._new_entry(files, certs, confirmed, admin, source)
        history = self.accepted
        if history and history[0]["files"] == entry["files"]:
            history = history[1:]  # the same config again (a certificate renewal): one entry
        self.accepted = [entry, *history][:HISTORY]
        self.pending = None
        self.save()

    def abandon(self) -> None:
        """The journalled apply did not happen (restored): forget it."""
        if self.pending is not None:
            self.pending = None
            self.save()

    def _new_entry(
        self,
        files: Mapping[str, str],
        certs: dict[str, str],
        confirmed: bool,
        admin: str,
        source: str,
    ) -> dict[str, Any]:
        pending = self.pending
        if pending is not None and pending["files"] == files:
            files = pending["files"]  # the journalled config: its texts are stored already
        return {
            "files": FileSet.of(files, self.store),
            "certs": dict(sorted(certs.items())),
            "confirmed": confirmed,
            "admin": admin,
            "source": source,
            "time": _now(),
        }

    def save(self) -> None:
        """The texts first (each stored once), then state.json naming them, then the texts
        no entry names any more are removed."""
        ensure_state_dir(self.config_dir)
        entries = [*self.accepted, *([self.pending] if self.pending else [])]
        store = self.store
        for entry in entries:
            store.write(entry["files"].texts_known())
            _store_indexes(store, entry["files"])
        data = {
            "format": STATE_FORMAT,
            "accepted": [_stored(e) for e in self.accepted],
            "pending": _stored(self.pending) if self.pending else None,
        }
        try:
            write_atomic(
                state_path(self.config_dir), json.dumps(data, indent=1, sort_keys=True) + "\n"
            )
        except IOProblem as exc:
            raise IOProblem(f"cannot record the apply history: {exc}") from None
        store.keep_only({h for e in entries for h in e["files"].hashes.values()})


def _store_indexes(store: BlobStore, files: FileSet) -> None:
    """The digests of each route file held in memory (live/digests.py), once per text."""
    from xdsgen.live.digests import index_json, route_digests
    from xdsgen.speed import gc_paused

    with gc_paused():  # thousands of small dicts, while the render's millions are alive
        for name, text in files.texts_by_name():
            key = files.hashes[name]
            if is_rds(name) and not store.has_index(key):
                digests = route_digests(text)
                if digests is not None:
                    store.write_index(key, index_json(digests))
