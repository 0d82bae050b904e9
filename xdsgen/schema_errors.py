"""Turn jsonschema's errors into messages a person editing YAML on a router understands.

jsonschema speaks about instances and subschemas; the person wrote `access_log: yes` in
vi. So a message names the key path, says what was expected, quotes what was written
(the source text, not what YAML 1.1 made of it: `012` is not "the number 10" to them) and
suggests the fix where there is one.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any, Optional

from xdsgen.errors import PathKey
from xdsgen.hints import (
    inline_upstream_hint,
    looks_like_address,
    port_out_of_range,
    tls_value_message,
)

_TYPE_NAMES = {
    "object": "a mapping (key: value)",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}

Described = tuple[str, Optional[str], PathKey]


def _kind_of(value: Any, raw: Optional[str] = None) -> str:
    """What the value is, in the words of someone who wrote `raw` in the file."""
    if raw is not None and not isinstance(value, str):
        if value is None:
            return "nothing (an empty value)" if raw == "" else f"{raw} (YAML reads it as null)"
        if isinstance(value, bool) and raw.lower() != str(value).lower():
            return f"{raw} (YAML reads a bare {raw} as {str(value).lower()})"
        if isinstance(value, (int, float)) and raw != str(value):
            return f"{raw} (YAML reads it as the number {value})"
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) <= 60 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def suggest(word: str, choices: list[str]) -> str | None:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not match:
        # Case slips (Grafana vs grafana) and long names where one typo is a small ratio.
        lowered = {c.lower(): c for c in choices}
        found = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        match = [lowered[found[0]]] if found else []
    return f"did you mean {match[0]!r}?" if match else None


def _quote_hint(raw: Optional[str], value: Any) -> Optional[str]:
    if isinstance(value, (bool, int, float)) or value is None:
        text = raw if raw else (str(value).lower() if isinstance(value, bool) else str(value))
        if value is None and not raw:
            return "write a value, or remove the key"
        return f'quote it: "{text}"'
    return None


class _Context:
    def __init__(self, inventory: Any):
        self.data = inventory.data if inventory is not None else None
        # Not `or {}`: an inventory read by fastyaml reads its raw texts when asked (and
        # all of them when asked for its length).
        raw = getattr(inventory, "raw", None)
        self.raw: Mapping[PathKey, str] = raw if raw is not None else {}

    def raw_at(self, path: PathKey) -> Optional[str]:
        return self.raw.get(path)


def describe_all(error: Any, path: PathKey, inventory: Any = None) -> list[Described]:
    """Every (message, hint, path) one jsonschema ValidationError stands for."""
    return _describe(error, path, _Context(inventory))


def _describe(error: Any, path: PathKey, ctx: _Context) -> list[Described]:
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    raw = ctx.raw_at(path)
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        out: list[Described] = []
        for key in error.instance:
            if key in schema.get("properties", {}):
                continue
            hint = suggest(str(key), allowed) or (
                "allowed keys: " + ", ".join(allowed) if allowed else None
            )
            out.append((f"unknown key {key!r}", hint, (*path, key)))
        return out or [("unknown key", None, path)]
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [(f"missing required key {missing!r}", None, path)]
    if validator == "type":
        expected = schema.get("type")
        if path[:1] == ("http",) and path[-1:] == ("tls",) and not isinstance(error.instance, str):
            names = sorted((ctx.data or {}).get("certificates") or {}) if ctx.data else []
            words = tls_value_message(error.instance, raw, [str(n) for n in names])
            return [(*words, path)]
        wanted = _TYPE_NAMES.get(str(expected), str(expected))
        hint = _quote_hint(raw, error.instance) if expected == "string" else None
        if hint and error.instance is not None and schema.get("pattern") and schema.get("x-hint"):
            # Quoting helps only if the text written would then be valid (`012` as a name);
            # `connect_timeout: 5` needs a unit instead.
            written = raw if raw is not None else str(error.instance)
            if not re.search(schema["pattern"], written):
                hint = schema["x-hint"]
        if expected == "string" and isinstance(error.instance, (list, dict)):
            hint = "a value starting with [ or { must be quoted"
        if expected in ("integer", "number") and isinstance(error.instance, str):
            hint = "write the number without quotes"
        if expected == "boolean" and isinstance(error.instance, str):
            hint = "write true or false, without quotes"
        return [(f"expected {wanted}, got {_kind_of(error.instance, raw)}", hint, path)]
    if validator == "pattern":
        if "propertyNames" in list(error.relative_schema_path) and isinstance(error.instance, str):
            return [
                (f"invalid name {error.instance!r}", schema.get("x-hint"), (*path, error.instance))
            ]
        if path[-1:] == ("upstream",) and looks_like_address(str(error.instance)):
            message = f"{_short(error.instance)} is an address, not the name of an upstream"
            return [(message, inline_upstream_hint(str(error.instance)), path)]
        return [(f"invalid value {_short(error.instance)}", schema.get("x-hint"), path)]
    if validator in ("minimum", "maximum") and _is_port(schema):
        return [(port_out_of_range(error.instance), None, path)]
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return [(f"{error.instance} is outside {low}-{high}", None, path)]
        return [
            (f"{error.instance} is out of range ({validator} {error.validator_value})", None, path)
        ]
    if validator == "const":
        return [
            (
                f"must be {json.dumps(error.validator_value)}, got {_kind_of(error.instance, raw)}",
                None,
                path,
            )
        ]
    if validator == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = suggest(str(error.instance), choices) or "one of: " + ", ".join(choices)
        return [(f"invalid value {_short(error.instance)}", hint, path)]
    if validator in ("minItems", "minProperties", "minLength"):
        if "x-empty-message" in schema:  # why empty is wrong here (allow: [] locks all out)
            return [(str(schema["x-empty-message"]), schema.get("x-hint"), path)]
        return [("must not be empty", None, path)]
    if validator == "maxLength":
        return [
            (
                f"too long: {len(error.instance)} characters, at most {error.validator_value}",
                None,
                path,
            )
        ]
    if validator == "maxItems":
        return [(f"too many entries (at most {error.validator_value})", None, path)]
    if validator == "uniqueItems":
        return [("has duplicate entries", "list each one once", path)]
    if validator in ("oneOf", "anyOf"):
        return _one_of(error, path, ctx)
    message = error.message if len(error.message) < 200 else f"invalid ({validator})"
    return [(message, None, path)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "...'"


def _is_port(schema: dict[str, Any]) -> bool:
    return schema.get("minimum") == 1 and schema.get("maximum") == 65535


def _one_of(error: Any, path: PathKey, ctx: _Context) -> list[Described]:
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    options = schema.get("oneOf") or schema.get("anyOf") or []
    raw = ctx.raw_at(path)
    # A route: exactly one of prefix/path.
    if options and all(set(o) == {"required"} for o in options):
        keys = [o["required"][0] for o in options]
        present = [k for k in keys if isinstance(instance, dict) and k in instance]
        if present:
            return [(f"use only one of {', '.join(keys)}", None, path)]
        return [(f"needs one of {', '.join(keys)}", None, path)]
    # The alternatives whose type fits the value: their errors are the real ones (a mapping
    # upstream with a typo in a key is not "not a string").
    branches: dict[Any, list[Any]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [
        subs
        for subs in branches.values()
        if not any(
            s.validator in ("type", "const")
            and tuple(s.absolute_path) == tuple(error.absolute_path)
            for s in subs
        )
    ]
    if len(fitting) == 1:
        out: list[Described] = []
        for sub in sorted(fitting[0], key=lambda s: list(map(str, s.absolute_path))):
            out.extend(_describe(sub, tuple(sub.absolute_path), ctx))
        return out
    if "access_log" in [str(p) for p in path]:
        hint = _quote_hint(raw, instance) if raw is not None else None
        if isinstance(instance, bool):
            hint = "write off for no access log, or a file path"
        return [(f"expected a file path or off, got {_kind_of(instance, raw)}", hint, path)]
    if path and path[0] == "upstreams" and len(path) == 2:
        hint = _quote_hint(raw, instance) if not isinstance(instance, (list, dict)) else None
        return [
            (
                f'expected "host:port" or a mapping with endpoints, got {_kind_of(instance, raw)}',
                hint,
                path,
            )
        ]
    return [(f"invalid value ({_kind_of(instance, raw)})", None, path)]
