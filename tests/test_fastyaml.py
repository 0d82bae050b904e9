"""The fast reader of big inventories (xdsgen/fastyaml.py) gives exactly safeyaml's data or
declines (None), never anything else; and an inventory it read says every problem with the
same words, lines and columns as one safeyaml read (positions are read when needed).

Compared on every inventory in the repository (examples, golden cases, the bad-input
corpus, the synthetic benchmark inventories), on hand-picked YAML corners and on random
mutations of real inventories."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from xdsgen import fastyaml, inventory, safeyaml
from xdsgen.errors import InventoryError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import synth  # noqa: E402

CORPUS = (
    sorted(REPO.glob("examples/**/*.yaml"))
    + sorted(REPO.glob("tests/cases/*/inventory.yaml"))
    + sorted(REPO.glob("tests/bad/*.yaml"))
)


def _text(path: Path) -> Optional[str]:
    try:
        return inventory.read_text(str(path))
    except InventoryError:  # refused before parsing (binary, UTF-16...): not YAML's business
        return None


def _slow(text: str) -> tuple[Any, bool]:
    """safeyaml's data, and whether it found no problem."""
    try:
        data, _, _, problems, _ = safeyaml._parse(text, "x.yaml")
    except InventoryError:
        return None, False
    return data, not problems


def _agrees(text: str) -> bool:
    """True when the fast reader took the text (and gave safeyaml's data)."""
    fast = fastyaml.parse(text, safeyaml.MAX_VALUES)
    if fast is None:
        return False
    slow, clean = _slow(text)
    assert clean, f"fast reader took a text safeyaml has problems with:\n{text[:2000]}"
    assert fast == slow, f"different data:\n{text[:2000]}"
    assert type(fast) is dict
    return True


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(REPO)))
def test_the_corpus_reads_the_same_or_goes_to_safeyaml(path: Path) -> None:
    text = _text(path)
    if text is not None:
        _agrees(text)


def test_the_fast_reader_takes_the_inventories_people_write() -> None:
    """Not a vacuous comparison: the examples, nearly every golden case and every
    synthetic inventory are read by it."""
    taken = [p for p in CORPUS if "tests/bad" not in str(p) and _agrees(_text(p) or "")]
    assert REPO / "examples" / "home-router.yaml" in taken
    cases = sorted(REPO.glob("tests/cases/*/inventory.yaml"))
    assert len([p for p in taken if p in cases]) >= len(cases) - 5
    for n in (1, 10, 300):
        assert _agrees(synth.generate(n))


CORNERS = [
    # (YAML, taken by the fast reader)
    ("a: b\n", True),
    ("a: 'b c'\n", True),
    ('a: "b # c"   # comment\n', False),  # " #" inside quotes: not told apart
    ("a: b#c\n", True),
    ("a: b # c\n", True),
    ("a: {b: c, d: [e, f]}  # comment\n", True),
    ("a:\n  - {b: 1, c: true, d: null, f: -3, g: 0}\n", True),
    ("a: {e: ~}\n", False),  # not JSON: safeyaml reads it
    ('a: {b: "x, ~, 1, true, y"}\n', True),  # plain-looking words inside quotes stay text
    ("a:\n- b\n- c\nd: e\n", True),
    ("a:\n  - - b\n    - c\n", True),
    ("a:\nb: c\n", True),
    ('"a b": c\n', True),
    ("a: {b: c d, e: 'f'}\n", False),
    ("a: yes\n", False),
    ("a: [on, off]\n", False),
    ("a: {b: no}\n", False),
    ("a: 012\n", False),
    ("a: [012]\n", False),
    ("a: 1_000\n", False),
    ("a: [1.5]\n", False),
    ("a: [1e5]\n", True),  # a string in YAML 1.1
    ("a: [.inf, .nan]\n", False),
    ("a: [NaN, Infinity]\n", True),  # strings in YAML
    ("a: 2001-01-01\n", False),
    ("a: [2001-01-01]\n", False),
    ("a: {b: 1, b: 2}\n", False),
    ("a: 1\na: 2\n", False),
    ("a: [b, c\n", False),
    ("a: [b,\n  c]\n", False),
    ("a: !!str 5\n", False),
    ("a: &x {b: c}\nd: *x\n", False),
    ("a: |\n  text\n", False),
    ("a: b\n  c\n", False),
    ("---\na: b\n", False),
    ("a: {<<: {b: c}}\n", False),
    ("<<: {b: c}\n", False),
    ("80: a\n", False),
    ("a: {80: b}\n", False),
    ("a:\tb\n", False),
    ('a: "b\\tc"\n', False),
    ("a: 'it''s'\n", False),
    ("a: it's # x\n", False),
    ("a: {b: 1:30}\n", False),
    ("a: [b: c]\n", False),
    ("a: {b, c: d}\n", False),
    ("a: {b:c}\n", False),
    ("- a\n- b\n", False),  # not a mapping: safeyaml says so
    ("a: b: c\n", False),
    ("a: \u00a0b\n", False),  # a lookalike space: safeyaml's message
    ("a: [\u201cb\u201d]\n", False),
    ("a:\n  -\n  - b\n", False),
    ("a: [-b, ?c, :d]\n", False),  # PyYAML refuses "?c" and ":d" in a flow sequence
    ("a: [-b, c-, d:e]\n", True),
    ("a: [b~]\n", True),
    ("a: [- b]\n", False),
    ("a: {b: [c, {d: [e, {f: g}]}]}\n", True),
]


@pytest.mark.parametrize(("text", "taken"), CORNERS)
def test_yaml_corners(text: str, taken: bool) -> None:
    assert _agrees(text) is taken


_ALPHABET = [*":-#'\"{}[],!&*|> \t\n0123456789.~yYnNoOtf_/\\@%`?<=", "\u00a0", "  "]


@pytest.mark.parametrize("seed", range(6))
def test_mutations_read_the_same_or_go_to_safeyaml(seed: int) -> None:
    sources = [
        REPO / "examples" / "home-router.yaml",
        *sorted(REPO.glob("tests/cases/*/inventory.yaml"))[seed::6][:3],
    ]
    texts = [synth.generate(3), *(p.read_text() for p in sources)]
    rng = random.Random(seed)
    taken = 0
    for _ in range(400):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text))
            kind = rng.randrange(3)
            if kind == 0:
                text = text[:at] + rng.choice(_ALPHABET) + text[at:]
            elif kind == 1:
                text = text[:at] + text[at + 1 :]
            else:
                text = text[:at] + rng.choice(_ALPHABET) + text[at + 1 :]
        taken += _agrees(text)
    assert taken > 40  # many mutations stay readable: both readers were compared on them


# --------------------------------------------------------------------------- through load


def _load(path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(fastyaml, "FAST_FROM_BYTES", 0 if fast else 1 << 40)
    try:
        return inventory.load(str(path))
    except InventoryError as exc:
        return [str(p) for p in exc.problems]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(REPO)))
def test_load_says_the_same_with_the_fast_reader(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every message of the bad-input corpus, its line and column included; the data,
    every position and every raw text of the good ones."""
    slow = _load(path, False, monkeypatch)
    fast = _load(path, True, monkeypatch)
    if isinstance(slow, list):
        assert fast == slow
        return
    assert fast.data == slow.data
    # One path at a time (each read from its top-level section, as messages ask), then
    # all of them (the whole file), each as safeyaml recorded it.
    for path, where in slow.positions.items():
        assert fast.positions[path] == where, path
        assert (*path, "no such key") not in fast.positions
    for path, text in slow.raw.items():
        assert fast.raw[path] == text, path
    assert ("no such key",) not in fast.positions
    assert dict(fast.positions) == dict(slow.positions)
    assert dict(fast.raw) == dict(slow.raw)


def test_warnings_of_a_big_inventory_are_located_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key readable by every user is a warning: its line and column come from the
    positions read when the warning needs them."""
    from xdsgen import model

    cert, key = tmp_path / "site.crt", tmp_path / "site.key"
    cert.write_text("x")
    key.write_text("x")
    key.chmod(0o644)
    path = tmp_path / "inventory.yaml"
    path.write_text(synth.generate(600, cert=str(cert), key=str(key)))
    assert path.stat().st_size >= fastyaml.FAST_FROM_BYTES
    said = []
    for fast in (False, True):
        monkeypatch.setattr(fastyaml, "FAST_FROM_BYTES", 0 if fast else 1 << 40)
        loaded = inventory.load(str(path))
        assert isinstance(loaded.positions, dict) is not fast  # read lazily when fast
        said.append([str(w) for w in model.build(loaded, check_files=True).warnings])
    assert said[0] == said[1]
    # Only the certificates section was read for the warning, not the 600 vhosts.
    read = loaded.positions._later._parts  # type: ignore[attr-defined]
    assert list(read) == ["certificates"]
    line = path.read_text().split("\n").index("certificates:") + 2
    assert any("readable by every user" in w and f"line={line}," in w for w in said[1])
