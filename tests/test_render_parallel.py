"""Rendering on two cores (xdsgen/render_parallel.py) gives what one process gives: the same
files, every one verified and parsed, a wrong file refused whichever process rendered it,
and a child that dies costs nothing but time."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from xdsgen import inventory, parsed, render, render_parallel
from xdsgen import model as model_mod
from xdsgen.errors import RenderError
from xdsgen.yamlsubset import parse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import synth  # noqa: E402


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """400 vhosts: two big route files (http and https), clusters, listeners, a secret."""
    path = tmp_path_factory.mktemp("pair") / "inventory.yaml"
    path.write_text(synth.generate(400))
    return model_mod.build(inventory.load(str(path)))


def _render(model: Any, processes: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("XDSGEN_RENDER_PROCESSES", processes)
    parsed._CACHE.clear()
    return render.render(model).files


def test_two_processes_render_exactly_what_one_renders(
    big: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = render_parallel._parent

    def counted(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(render_parallel, "_parent", counted)
    one = _render(big, "1", monkeypatch)
    assert calls == []
    two = _render(big, "2", monkeypatch)
    assert calls == [1]  # the pair did render
    assert two == one
    assert len(two) >= 5
    # The parent holds every file parsed (the child's sent back): the plan parses none again.
    for text in two.values():
        assert parsed.is_parsed(text)
        assert parsed.document(text) == parse(text)


def _in_child(parent: int) -> bool:
    return os.getpid() != parent


def test_a_file_the_child_finds_wrong_is_refused(big: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's verify counts: a route file that means something else than the model
    is an error, though the parent verified its own files fine."""
    from xdsgen import file_facts

    parent = os.getpid()
    original = file_facts.parsed_route_facts

    def wrong_in_child(doc: Any) -> Any:
        facts = original(doc)
        return (facts[0] + "-not-the-model", *facts[1:]) if _in_child(parent) else facts

    monkeypatch.setattr(file_facts, "parsed_route_facts", wrong_in_child)
    with pytest.raises(RenderError, match=r"means something else than the model(.|\n)*xdsgen bug"):
        _render(big, "2", monkeypatch)
    # One process: the same file is fine (only the child was made to misread it).
    assert _render(big, "1", monkeypatch)


def test_a_file_the_parent_finds_wrong_is_refused(
    big: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xdsgen import file_facts

    parent = os.getpid()
    original = file_facts.parsed_route_facts

    def wrong_in_parent(doc: Any) -> Any:
        facts = original(doc)
        return facts if _in_child(parent) else (facts[0] + "-x", *facts[1:])

    monkeypatch.setattr(file_facts, "parsed_route_facts", wrong_in_parent)
    with pytest.raises(RenderError, match="means something else than the model"):
        _render(big, "2", monkeypatch)


def test_a_child_that_dies_leaves_the_parent_to_render_everything(
    big: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _render(big, "1", monkeypatch)
    parent = os.getpid()
    original = render_parallel._claim

    def die_in_child(tokens: int) -> Any:
        if _in_child(parent):
            os._exit(9)  # before answering for anything; the jobs it took are lost
        return original(tokens)

    monkeypatch.setattr(render_parallel, "_claim", die_in_child)
    assert _render(big, "2", monkeypatch) == expected
    for text in expected.values():
        assert parsed.is_parsed(text)


def test_a_child_that_answers_garbage_is_ignored(big: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _render(big, "1", monkeypatch)
    monkeypatch.setattr(render_parallel.marshal, "dumps", lambda value: b"\x00garbage")
    monkeypatch.setattr(render_parallel.marshal, "loads", _refuse)
    assert _render(big, "2", monkeypatch) == expected


def _refuse(data: bytes) -> Any:
    raise ValueError("bad marshal data")


def test_a_template_error_in_the_child_is_the_same_error(
    big: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()
    original = render.yaml_quote

    def broken_in_child(value: object) -> Any:
        return original(7 if _in_child(parent) else value)

    monkeypatch.setitem(render.environment().filters, "q", broken_in_child)
    with pytest.raises(RenderError, match="template bug: q filter got int 7"):
        _render(big, "2", monkeypatch)


def test_one_process_for_small_configs_and_one_core(
    big: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDSGEN_RENDER_PROCESSES", raising=False)
    jobs = render._jobs(big)
    small = model_mod.build(inventory.load(str(REPO / "examples" / "home-router.yaml")))
    assert render_parallel.render_in_pair(small, render._jobs(small), None) is None
    monkeypatch.setattr(render_parallel, "PAIR_FROM_BYTES", 1)
    monkeypatch.setattr(render_parallel, "_cores", lambda: 1)
    assert render_parallel.render_in_pair(big, jobs, None) is None
    monkeypatch.setattr(render_parallel, "_cores", lambda: 2)
    files = render_parallel.render_in_pair(big, jobs, None)
    assert files is not None and set(files) == {name for name, _ in jobs}


def test_the_size_estimate_is_near_the_real_size(big: Any) -> None:
    """It only orders the jobs and decides whether to fork, but a wild guess would fork
    for small configs or not for big ones."""
    files = render.render(big, check=False).files
    for name, text in files.items():
        if len(text) > 10_000:
            estimate = render_parallel.estimated_bytes(big, name)
            assert 0.5 < estimate / len(text) < 2, name
