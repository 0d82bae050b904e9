"""xdsgen.yamlsubset, the strict parser render.verify reads every rendered file back with.

The rule it must keep: for every text it accepts, it returns exactly what PyYAML's
safe_load returns (PyYAML is the oracle here; Envoy's own reading of the files is proved
by the real-Envoy tests). Anything outside the subset is a SubsetError, never a guess.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xdsgen import yamlsubset
from xdsgen.render import verify, yaml_quote
from xdsgen.yamlsubset import SubsetError, parse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import synth  # noqa: E402

GOLDEN = sorted(REPO.glob("tests/cases/*/expected/*.yaml"))


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_golden_file_reads_as_pyyaml_reads_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert parse(text) == safe_load(text)


def _rendered(n: int, tmp_path: Path) -> dict[str, str]:
    from xdsgen.pipeline import load_model, render

    inventory = tmp_path / "inv.yaml"
    inventory.write_text(synth.generate(n, config_dir=str(tmp_path / "config")))
    return render(load_model(str(inventory))).files


def test_a_synthetic_hosting_box_reads_as_pyyaml_reads_it(tmp_path: Path) -> None:
    files = _rendered(200, tmp_path)
    assert len(files) >= 4
    for text in files.values():
        assert parse(text) == safe_load(text)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_string_through_the_q_filter_reads_back_exactly(value: str) -> None:
    from xdsgen.errors import RenderError

    try:
        quoted = yaml_quote(value)
    except RenderError:
        return  # refused outright (lone surrogates): nothing is written
    text = f"k: {quoted}\nl:\n- {quoted}\nm:\n  {quoted}: 1\n"
    try:
        expected = safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(SubsetError):
            parse(text)
        return
    assert parse(text) == expected
    assert expected["k"] == value


_NOISE = [
    " ",
    "  ",
    "- ",
    "-",
    ":",
    ": ",
    '"',
    "'",
    "#",
    " #x",
    "\n",
    "\n  ",
    "&a ",
    "*a",
    "!!str ",
    "!",
    "{",
    "}",
    "[",
    "]",
    "{}",
    "[]",
    ",",
    "\\",
    "\\x4",
    "\\u00e9",
    "a",
    "0",
    "012",
    "yes",
    "on",
    "~",
    "null",
    "\t",
    "\x85",
    "\u2028",
    "?",
    "|",
    ">",
    "%",
    "@",
    "`",
    "---",
    "...",
    "\r",
    "1.5",
    "0x1F",
    "1e3",
    "2001-12-14",
    "<<: *a",
    "\ufeff",
]


@st.composite
def mutated(draw: Any, base: list[str]) -> str:
    text = draw(st.sampled_from(base))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["insert", "delete", "dup-line", "drop-line", "indent", "dedent"])
        )
        lines = text.split("\n")
        i = draw(st.integers(0, max(0, len(lines) - 2)))
        if kind == "insert":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(st.sampled_from(_NOISE)) + text[pos:]
            continue
        if kind == "delete" and text:
            pos = draw(st.integers(0, len(text) - 1))
            text = text[:pos] + text[pos + draw(st.integers(1, 3)) :]
            continue
        if kind == "dup-line":
            lines.insert(i, lines[i])
        elif kind == "drop-line":
            del lines[i]
        elif kind == "indent":
            lines[i] = "  " + lines[i]
        elif kind == "dedent" and lines[i].startswith("  "):
            lines[i] = lines[i][2:]
        text = "\n".join(lines)
    return text


def _bases() -> list[str]:
    small = [p.read_text(encoding="utf-8") for p in GOLDEN if p.stat().st_size < 6000]
    return small[:40]


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated(_bases()))
def test_a_mutated_file_is_refused_or_read_exactly_as_pyyaml_reads_it(text: str) -> None:
    try:
        ours = parse(text)
    except SubsetError:
        return
    # Accepted: then PyYAML must accept it too and mean the very same thing.
    assert ours == safe_load(text), text


@pytest.mark.parametrize(
    "text",
    [
        "a: 1 # comment\n",
        'a: "x" #c\n',
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: {b: 1}\n",
        "a: [1]\n",
        "---\na: 1\n",
        "a: 1\n...\n",
        "a: |\n  x\n",
        "a: >\n  x\n",
        "a:\n",
        "a: ~\n",
        "a: null\n",
        "a: 1\na: 2\n",
        "a:\n\tb: 1\n",
        'a: "x\x85y"\n',
        "a: x\u2028y\n",
        "a: yes\n",
        "a: on\n",
        "a: Off\n",
        "on: 1\n",
        "a: 012\n",
        "a: 0x1F\n",
        "a: 1e3\n",
        "a: 1.5\n",
        "a: 2001-12-14\n",
        "a: -0\n",
        'a: "x\\/y"\n',
        'a: "x\\zy"\n',
        "a: 'x'\n",
        "a: x y\n",
        'a: "x" \n',
        "a:  x\n",
        "- a\nb: 1\n",
        "a: 1\n  b: 2\n",
        "a:\n  - x\n   - y\n",
        "a:\nb: 1\n",
        "-\n",
        "- \n",
        "-  a\n",
        "a: b: c\n",
        'a: "x\n',
        '"a": "b"c\n',
        "",
        "\n\n",
        "x\n",
        "  a: 1\n",
        "a: 1\r\n",
        'a: "\ufeff"\n',
        "? a\n: b\n",
        "<<: {}\n",
        'a: "x" # c\n',
        "a: %x\n",
        "a: @x\n",
        "a: `x\n",
        "a: ,\n",
    ],
)
def test_outside_the_subset_is_an_error(text: str) -> None:
    with pytest.raises(SubsetError):
        parse(text)


def test_the_shapes_the_templates_write() -> None:
    text = (
        'version_info: "v1"\n'
        "resources:\n"
        '- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n'
        '  name: "http_ipv4"\n'
        "  virtual_hosts:\n"
        '  - name: "a"\n'
        "    domains:\n"
        '    - "a.example.com"\n'
        "    routes:\n"
        "    - match:\n"
        '        prefix: "/"\n'
        "      route:\n"
        "        upgrade_configs:\n"
        "        - upgrade_type: websocket\n"
        "        port: 8443\n"
        "        flag: true\n"
        "  empty_map: {}\n"
        "  empty_list: []\n"
        "  # a comment line, as templates may write\n"
        "  nested:\n"
        "  - - h2\n"
        "    - http/1.1\n"
        '  "quoted key": "tab\\there \\"q\\" \\\\ \\x7F \\u2028 é 😀"\n'
    )
    assert parse(text) == safe_load(text)


def test_an_escaped_quote_cannot_smuggle_structure() -> None:
    # What a broken q filter would write for the value `x"\n  cluster: "evil`: the parser
    # sees the extra key (and verify then sees a model mismatch) or refuses the text.
    smuggled = 'name: "x"\n  cluster: "evil"\n'
    with pytest.raises(SubsetError):
        parse(smuggled)
    smuggled_same_level = 'name: "x"\ncluster: "evil"\n'
    assert parse(smuggled_same_level) == {"name": "x", "cluster": "evil"}


def test_verify_refuses_output_that_means_something_else(tmp_path: Path) -> None:
    from xdsgen.errors import RenderError
    from xdsgen.pipeline import load_model, render
    from xdsgen.render import Rendered

    inventory = tmp_path / "inv.yaml"
    inventory.write_text(synth.generate(20, config_dir=str(tmp_path / "config")))
    model = load_model(str(inventory))
    files = dict(render(model).files)
    name = next(n for n in files if n.startswith("rds_"))
    # Structure that is not YAML of the subset (a key indented under a scalar value).
    tampered = files[name].replace('cluster: "up1"', 'cluster: "up1"\n          cluster2: "x"', 1)
    assert tampered != files[name]
    with pytest.raises(RenderError):
        verify(model, Rendered({**files, name: tampered}))
    retargeted = files[name].replace('cluster: "up1"', 'cluster: "up2"', 1)
    with pytest.raises(RenderError):
        verify(model, Rendered({**files, name: retargeted}))


def test_big_output_is_parsed_without_pyyaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the cross-check size verify relies on the strict parser alone (that is the point:
    PyYAML is slower than Envoy there); below it PyYAML must agree as well."""
    from xdsgen import render as render_mod

    calls: list[int] = []
    original = render_mod.load_yaml
    monkeypatch.setattr(
        render_mod, "load_yaml", lambda text: calls.append(len(text)) or original(text)
    )
    render_mod.parse_back('a: "small"\n')
    assert calls == [len('a: "small"\n')]
    big = "a:\n" + "".join(f'- "{i}"\n' for i in range(render_mod._CROSS_CHECK_BYTES // 5))
    assert len(big) > render_mod._CROSS_CHECK_BYTES
    assert len(render_mod.parse_back(big)["a"]) == render_mod._CROSS_CHECK_BYTES // 5
    assert len(calls) == 1
    assert yamlsubset.parse(big) == safe_load(big)
