"""The fast schema check (xdsgen.schemacheck) never says "valid" where jsonschema would not.

It may say "ask jsonschema" (False) for a valid instance; it must never say True for an
invalid one. Compared on every inventory in the repository (examples, golden cases, the
bad-input corpus, the synthetic benchmark inventories), on mutations of them, and on
hypothesis-generated values against every subschema of the real schema.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from xdsgen import inventory, safeyaml, schemacheck

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import synth  # noqa: E402

SCHEMA = inventory.schema()
VALIDATOR = Draft202012Validator(SCHEMA)


def _inventories() -> list[Path]:
    paths = sorted(REPO.glob("examples/**/*.yaml")) + sorted(
        REPO.glob("tests/cases/*/inventory.yaml")
    )
    paths += sorted(REPO.glob("tests/bad/*.yaml"))
    return paths


def _data(path: Path) -> Any:
    try:
        data, _ = safeyaml.parse_yaml(inventory.read_text(str(path)), str(path))
    except Exception:  # unreadable or unparsable on purpose (the bad-input corpus)
        return None
    return data


def _agrees(instance: Any) -> None:
    fast = schemacheck.is_valid(SCHEMA, instance)
    if fast:
        assert VALIDATOR.is_valid(instance), (
            f"fast check accepted an invalid instance: {instance!r:.300}"
        )


def test_the_real_schema_compiles() -> None:
    # If this fails, a schema keyword is not implemented: the fast path is off for everyone.
    schemacheck.compile_schema(SCHEMA)


@pytest.mark.parametrize("path", _inventories(), ids=lambda p: str(p.relative_to(REPO)))
def test_same_verdict_on_every_inventory_in_the_repository(path: Path) -> None:
    data = _data(path)
    if data is None:
        return
    fast = schemacheck.is_valid(SCHEMA, data)
    slow = VALIDATOR.is_valid(data)
    assert fast == slow, f"fast={fast} jsonschema={slow}"


def test_valid_inventories_take_the_fast_path() -> None:
    valid = [d for d in map(_data, _inventories()) if d is not None and VALIDATOR.is_valid(d)]
    assert len(valid) >= 10
    assert all(schemacheck.is_valid(SCHEMA, d) for d in valid)
    for n in (10, 100):
        data, _ = safeyaml.parse_yaml(synth.generate(n), "synth")
        assert schemacheck.is_valid(SCHEMA, data) and VALIDATOR.is_valid(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(data)
    target = copied
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copied


REPLACEMENTS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    1.5,
    70000,
    "",
    "x",
    "off",
    "0",
    "a" * 300,
    [],
    [1],
    ["a", "a"],
    {},
    {"unknown": 1},
    "127.0.0.1:80",
    "[::1]:80",
    "/",
    "1s",
]


def test_every_single_mutation_of_the_example_gets_the_same_verdict() -> None:
    base = _data(REPO / "examples" / "home-router.yaml")
    checked = 0
    for path in _paths(base):
        for value in REPLACEMENTS:
            _agrees(_set(base, path, value))
            checked += 1
        if path and isinstance(path[-1], str):
            parent = path[:-1]
            holder = base
            for part in parent:
                holder = holder[part]
            renamed = dict(holder)
            renamed[path[-1] + "_x"] = renamed.pop(path[-1])
            _agrees(_set(base, parent, renamed))
    assert checked > 500


def _subschemas() -> list[Any]:
    found: list[Any] = []

    def walk(schema: Any) -> None:
        if isinstance(schema, dict):
            found.append(schema)
            for key, value in schema.items():
                if key in ("examples", "default", "const", "enum"):
                    continue
                if key in ("properties", "$defs", "patternProperties"):
                    for sub in value.values():
                        walk(sub)
                else:
                    walk(value)
        elif isinstance(schema, list):
            for sub in schema:
                walk(sub)

    walk(SCHEMA)
    return found


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        ["", "a", "off", "127.0.0.1:80", "[::1]:443", "/x", "5s", "example.com", "*", "ipv4"]
    )
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "address",
                    "http",
                    "https",
                    "endpoints",
                    "tls",
                    "sni",
                    "verify",
                    "port",
                    "upstream",
                    "families",
                    "prefix",
                    "path",
                    "routes",
                    "domains",
                    "cert",
                    "key",
                    "x",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 10_000), value=json_values)
def test_generated_values_against_every_subschema(index: int, value: Any) -> None:
    subs = _subschemas()
    sub = {**subs[index % len(subs)], "$defs": SCHEMA["$defs"]}
    fast = schemacheck.is_valid(sub, value)
    if fast:
        assert Draft202012Validator(sub).is_valid(value), (sub, value)


def test_unknown_keywords_turn_the_fast_path_off() -> None:
    for schema in (
        {"type": "string", "format": "ipv4"},
        {"if": {}, "then": {}},
        {"$ref": "https://elsewhere/schema.json"},
        {"type": "string", "dependentRequired": {}},
    ):
        with pytest.raises(schemacheck.Unsupported):
            schemacheck.compile_schema(schema)
        assert schemacheck.is_valid(schema, "x") is False


def test_jsonschema_subtleties_are_left_to_jsonschema() -> None:
    assert schemacheck.is_valid({"type": "integer"}, 1.0) is False  # valid, but jsonschema decides
    assert schemacheck.is_valid({"type": "integer"}, True) is False
    assert schemacheck.is_valid({"const": 1}, True) is False
    assert schemacheck.is_valid({"const": False}, 0) is False
    assert (
        schemacheck.is_valid({"minimum": 5}, True) is True
    )  # not a number: minimum does not apply
    assert schemacheck.is_valid({"uniqueItems": True}, [1, True]) is False
    assert schemacheck.is_valid({"oneOf": [{"type": "string"}, {"maxLength": 3}]}, "ab") is False
    assert schemacheck.is_valid({"oneOf": [{"type": "string"}, {"maxLength": 3}]}, "abcd") is True
