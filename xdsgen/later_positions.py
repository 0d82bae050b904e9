"""Where each key of an inventory read by xdsgen/fastyaml.py is, read only when a message
needs it (a valid inventory without warnings never does).

fastyaml records no positions. A message asks for one path; the top-level section holding
it (the lines from its key at column 0 to the next one) is read by safeyaml alone and its
lines shifted: a warning about the certificates of a 10 000-vhost inventory reads three
lines, not 2 MB (~1.3 s). Iterating over all of them (tests do) reads the whole file.
Each section is exactly what safeyaml would give inside the whole file: fastyaml only
takes files whose top level is a plain mapping with one key per column-0 line (no
anchors, tags, multi-line scalars or document markers), so nothing ties two sections.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

from xdsgen.errors import InventoryError, PathKey

_Parts = tuple[dict[PathKey, tuple[int, int]], dict[PathKey, str]]
_WHOLE = ""  # the key of the whole file's parts (no top-level key is empty in fastyaml)


class LaterPositions:
    """The positions and raw texts of one inventory, as safeyaml would have recorded them."""

    def __init__(self, text: str, source: str, keys: list[str]):
        self._text = text
        self._source = source
        self._sections = _sections(text, keys)
        self._parts: dict[str, _Parts] = {}
        self.positions: Mapping[PathKey, tuple[int, int]] = _View(self, 0)
        self.raw: Mapping[PathKey, str] = _View(self, 1)

    def part(self, path: Optional[PathKey], index: int) -> Mapping[Any, Any]:
        """The positions (index 0) or raw texts (1) holding `path` (None: all of them)."""
        key = _WHOLE
        if path is not None and self._sections is not None:
            # (): the root mapping, where its first key is (the first section's root).
            first = path[0] if path else next(iter(self._sections), _WHOLE)
            if first not in self._sections:
                return {}
            key = first
        if key not in self._parts:
            self._parts[key] = self._read(key)
        return self._parts[key][index]

    def _read(self, key: str) -> _Parts:
        from xdsgen.safeyaml import _parse
        from xdsgen.speed import gc_paused

        lines = self._text.split("\n")
        start, end = (0, len(lines)) if key == _WHOLE else self._sections[key]  # type: ignore[index]
        try:
            with gc_paused():
                data, positions, raw, problems, _ = _parse(
                    "\n".join(lines[start:end]), self._source
                )
        except InventoryError:  # fastyaml took the file, so safeyaml does (tests/test_fastyaml.py)
            return {}, {}
        if key != _WHOLE and (problems or not isinstance(data, dict) or list(data) != [key]):
            return self._read(_WHOLE)  # not the section it should be: never guess
        shifted = {path: (line + start, column) for path, (line, column) in positions.items()}
        return shifted, raw


def _sections(text: str, keys: list[str]) -> Optional[dict[str, tuple[int, int]]]:
    """Each top-level key's lines [start, end), keys in the file's order; None when the
    column-0 lines do not match the keys (then the whole file is read)."""
    starts = [
        number
        for number, line in enumerate(text.split("\n"))
        if line[:1] and (line[0].isalnum() or line[0] in "_\"'")
    ]
    if len(starts) != len(keys) or len(set(keys)) != len(keys):
        return None
    ends = [*starts[1:], len(text.split("\n"))]
    return {key: (start, end) for key, start, end in zip(keys, starts, ends)}


class _View(Mapping[Any, Any]):
    def __init__(self, later: LaterPositions, index: int):
        self._later = later
        self._index = index

    def __getitem__(self, path: Any) -> Any:
        if not isinstance(path, tuple):
            raise KeyError(path)
        return self._later.part(path, self._index)[path]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._later.part(None, self._index))

    def __len__(self) -> int:
        return len(self._later.part(None, self._index))
