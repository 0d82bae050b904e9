"""The `q` filter's memo (xdsgen/render.py): the same quoting for the same string as
without it, nothing kept for what it must not keep, and nothing kept after a render."""

from __future__ import annotations

import pytest

from xdsgen import render as render_mod
from xdsgen.errors import RenderError
from xdsgen.yamlsubset import quote


class _Text(str):
    """A str subclass: its text may not be all a template prints (never memoized)."""


@pytest.mark.parametrize("value", ["plain", "012", "yes", 'a"b\\c\n', "\u2028", ""])
def test_the_memo_quotes_as_the_quoter_does(value: str) -> None:
    first = render_mod.yaml_quote(value)
    again = render_mod.yaml_quote(value)
    assert first == again == quote(value)
    assert render_mod._QUOTED[value] == first


def test_subclasses_and_refused_strings_are_not_kept() -> None:
    render_mod._QUOTED.clear()
    assert render_mod.yaml_quote(_Text("x")) == quote("x")
    assert render_mod._QUOTED == {}
    for _ in range(2):  # refused every time: an error is never remembered as a quoting
        with pytest.raises(RenderError, match="lone surrogate"):
            render_mod.yaml_quote("a\udc80")
    assert render_mod._QUOTED == {}
    with pytest.raises(RenderError, match="q filter got int"):
        render_mod.yaml_quote(5)


def test_a_render_leaves_no_strings_behind() -> None:
    from pathlib import Path

    from xdsgen import inventory, model

    example = Path(__file__).resolve().parent.parent / "examples" / "home-router.yaml"
    built = model.build(inventory.load(str(example)))
    render_mod.yaml_quote("left over")
    rendered = render_mod.render(built)
    assert rendered.files
    assert render_mod._QUOTED == {}
