"""The texts of the configs in the apply history, stored once each by content hash in
DIR/.xdsgen/files/ (zlib-compressed where Python has zlib).

state.json used to hold every file's full text for each of the configs it remembers: at
10 000 vhosts that was ~37 MB rewritten on every apply. Now an apply writes only the texts
it has not stored yet (a one-vhost change: its two route files, ~0.6 MB compressed) and a
state.json of names and hashes. Texts are read only when needed (a restore, a rollback),
and a text no config refers to any more is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional

from xdsgen.errors import IOProblem
from xdsgen.files import TEMP_PREFIX, fsync_dir

BLOB_DIR = "files"
_COMPRESSED = ".z"
_INDEX = ".idx"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _zlib() -> Any:
    try:
        import zlib  # OpenWrt's smallest Python may lack it: then texts are stored as they are

        return zlib
    except ImportError:
        return None


class BlobStore:
    def __init__(self, state_directory: str):
        self.directory = os.path.join(state_directory, BLOB_DIR)

    def _path(self, key: str, compressed: bool) -> str:
        return os.path.join(self.directory, key + (_COMPRESSED if compressed else ""))

    def has(self, key: str) -> bool:
        return os.path.exists(self._path(key, True)) or os.path.exists(self._path(key, False))

    def read(self, key: str) -> str:
        for compressed in (True, False):
            try:
                with open(self._path(key, compressed), "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                continue
            except OSError as exc:
                path = self._path(key, compressed)
                raise IOProblem(f"cannot read {path}: {exc.strerror}") from None
            zlib = _zlib()
            damage: tuple[type[BaseException], ...] = (ValueError, UnicodeDecodeError)
            if zlib is not None:
                damage += (zlib.error,)
            try:
                if compressed:
                    if zlib is None:
                        raise ValueError("this Python has no zlib")
                    data = zlib.decompress(data)
                text = data.decode("utf-8")
            except damage as exc:
                raise IOProblem(f"{self._path(key, compressed)} is damaged ({exc})") from None
            if digest(text) != key:
                raise IOProblem(f"{self._path(key, compressed)} is damaged (its hash differs)")
            return text
        raise IOProblem(f"{self._path(key, False)} is missing (the apply history lost a file)")

    def write(self, texts: Iterable[tuple[str, str]]) -> None:
        """Store the (hash, text) pairs not stored yet; durable before this returns (state.json,
        written next, must never name a text that a power loss could take away)."""
        missing = [(key, text) for key, text in texts if not self.has(key)]
        if not missing:
            return
        zlib = _zlib()
        try:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            for key, text in dict(missing).items():
                data = text.encode("utf-8")
                if zlib is not None:
                    data = zlib.compress(data, 1)  # 4 MB of YAML: ~10 ms, ~15x smaller
                temp = os.path.join(self.directory, f"{TEMP_PREFIX}{key}")
                with open(temp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, self._path(key, zlib is not None))
            fsync_dir(self.directory)
        except OSError as exc:
            raise IOProblem(
                f"cannot store the config in {self.directory}: {exc.strerror}"
            ) from None

    # A text's index (live/digests.py: what the plan compares instead of parsing it) is a
    # cache: written without fsync, and a missing or damaged one means parsing as before.

    def read_index(self, key: str) -> Optional[str]:
        try:
            with open(os.path.join(self.directory, key + _INDEX), encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError):
            return None

    def has_index(self, key: str) -> bool:
        return os.path.exists(os.path.join(self.directory, key + _INDEX))

    def write_index(self, key: str, text: str) -> None:
        temp = os.path.join(self.directory, f"{TEMP_PREFIX}{key}{_INDEX}")
        with contextlib.suppress(OSError):
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            with open(temp, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temp, os.path.join(self.directory, key + _INDEX))

    def keep_only(self, keys: set[str]) -> None:
        """Remove every stored text (and index) not in `keys`."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            key = name
            for suffix in (_COMPRESSED, _INDEX):
                key = key[: -len(suffix)] if key.endswith(suffix) else key
            if key not in keys:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, name))


def _hashes(texts: Mapping[str, str]) -> dict[str, str]:
    return {name: digest(text) for name, text in texts.items()}


class FileSet(Mapping[str, str]):
    """One config's files, name -> text, known by their hashes; a text is read from the
    store the first time it is asked for. Two FileSets compare by hashes alone."""

    def __init__(
        self,
        hashes: dict[str, str],
        store: Optional[BlobStore],
        texts: Optional[dict[str, str]] = None,
    ):
        self.hashes = dict(sorted(hashes.items()))
        self._store = store
        self._texts: dict[str, str] = dict(texts or {})

    @classmethod
    def of(cls, texts: Mapping[str, str], store: Optional[BlobStore] = None) -> FileSet:
        if isinstance(texts, FileSet):
            return texts
        return cls(_hashes(texts), store, dict(texts))

    def __getitem__(self, name: str) -> str:
        text = self._texts.get(name)
        if text is None:
            key = self.hashes[name]  # KeyError for a name not in the config, as a dict
            if self._store is None:
                raise IOProblem(f"the text of {name} is not stored")
            text = self._texts[name] = self._store.read(key)
        return text

    def __iter__(self) -> Iterator[str]:
        return iter(self.hashes)

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, name: object) -> bool:
        return name in self.hashes

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileSet):
            return self.hashes == other.hashes
        if isinstance(other, Mapping):
            return self.hashes == _hashes(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def differing(self, other: Mapping[str, str]) -> list[str]:
        """Names whose text differs between this config and `other` (or is in one only)."""
        theirs = other.hashes if isinstance(other, FileSet) else _hashes(other)
        mine = self.hashes
        return sorted(n for n in set(mine) | set(theirs) if mine.get(n) != theirs.get(n))

    def loaded(self) -> dict[str, str]:
        """Every text (read now): a plain dict."""
        return {name: self[name] for name in self.hashes}

    def texts_by_name(self) -> Iterator[tuple[str, str]]:
        """(name, text) of the texts held in memory."""
        yield from list(self._texts.items())

    def texts_known(self) -> Iterator[tuple[str, str]]:
        """(hash, text) of the texts held in memory (to store before state.json names them)."""
        for name, text in self._texts.items():
            yield self.hashes[name], text

    def __repr__(self) -> str:
        return f"FileSet({sorted(self.hashes)})"
