"""Turn jsonschema's errors into messages a person editing YAML on a router understands."""

from __future__ import annotations

import difflib
from typing import Any

from xdsgen.inventory import PathKey

_TYPE_NAMES = {
    "object": "a mapping (key: value)",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "boolean": "true or false",
}


def _kind_of(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a number ({value})"
    if isinstance(value, float):
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
    return f"did you mean {match[0]!r}?" if match else None


def describe(error: Any, path: PathKey, data: Any) -> tuple[str, str | None, PathKey]:
    """Return (message, hint, path) for one jsonschema ValidationError."""
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extras = [key for key in error.instance if key not in schema.get("properties", {})]
        key = str(extras[0]) if extras else "?"
        hint = suggest(key, allowed) or ("allowed keys: " + ", ".join(allowed) if allowed else None)
        return f"unknown key {key!r}", hint, (*path, key)
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required key {missing!r}", None, path
    if validator == "type":
        expected = schema.get("type")
        wanted = _TYPE_NAMES.get(str(expected), str(expected))
        hint = None
        if expected == "string" and isinstance(error.instance, (bool, int, float)):
            hint = "quote it, e.g. \"...\": YAML reads bare no/off/012 as booleans and numbers"
        return f"expected {wanted}, got {_kind_of(error.instance)}", hint, path
    if validator == "pattern":
        return f"invalid value {error.instance!r}", schema.get("x-hint"), path
    if validator in ("minimum", "maximum") and "port" in str(schema.get("description", "")).lower():
        return f"port {error.instance} is outside 1-65535", None, path
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{error.instance} is out of range ({validator} {error.validator_value})", None, path
    if validator == "const":
        return f"must be {error.validator_value!r}, got {_kind_of(error.instance)}", None, path
    if validator == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = suggest(str(error.instance), choices) or "one of: " + ", ".join(choices)
        return f"invalid value {error.instance!r}", hint, path
    if validator in ("minItems", "minProperties", "minLength"):
        return "must not be empty", None, path
    if validator in ("maxLength", "maxItems"):
        return f"too long (at most {error.validator_value})", None, path
    if validator == "uniqueItems":
        return "has duplicate entries", None, path
    if validator in ("oneOf", "anyOf"):
        return _one_of(error, path, data)
    return error.message if len(error.message) < 200 else f"invalid ({validator})", None, path


def _one_of(error: Any, path: PathKey, data: Any) -> tuple[str, str | None, PathKey]:
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    options = schema.get("oneOf") or schema.get("anyOf") or []
    # A route: exactly one of prefix/path.
    if options and all(set(o) == {"required"} for o in options):
        keys = [o["required"][0] for o in options]
        present = [k for k in keys if isinstance(instance, dict) and k in instance]
        if present:
            return f"use only one of {', '.join(keys)}", None, path
        return f"needs one of {', '.join(keys)}", None, path
    # Otherwise pick the alternative that went deepest and report its error.
    best = None
    for sub in error.context or []:
        if best is None or len(sub.absolute_path) > len(best.absolute_path):
            best = sub
    if best is not None and isinstance(instance, dict) and best.validator != "type":
        return describe(best, tuple(best.absolute_path), data)
    if best is not None and isinstance(instance, str) and best.validator == "pattern":
        return describe(best, tuple(best.absolute_path), data)
    if "access_log" in [str(p) for p in path]:
        return f"expected a file path or off, got {_kind_of(instance)}", None, path
    if isinstance(instance, (int, float, bool)) or instance is None:
        return f"expected \"host:port\" or a mapping, got {_kind_of(instance)}", None, path
    return f"invalid value ({_kind_of(instance)})", None, path
