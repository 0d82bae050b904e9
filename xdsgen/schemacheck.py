"""A fast yes/no check of an inventory against the JSON Schema, mostly instead of jsonschema.

Why: importing jsonschema costs more than everything else a cron run of `render` does on a
router (its import pulls in referencing, attrs, rpds), and on a 10 000-vhost inventory its
validation takes seconds. This module compiles the same schema file (still the source of
truth) into plain closures that answer one question: is this instance valid?

It only ever *shortens* the path. The rules:
- `is_valid` returns True only when every keyword it met was checked with jsonschema's
  exact semantics (Draft 2020-12, no format assertions: the validator the loader uses).
- Where exactness would take effort (floats against "integer", const/enum/uniqueItems on
  floats or containers), it raises _Unsure and the caller runs jsonschema.
- A schema keyword it does not know disables the fast path altogether (compile fails,
  `is_valid` returns False), so a schema change can never be skipped silently.
- False means "ask jsonschema": it produces every message; an invalid inventory always
  takes the slow, complete path.
tests/test_schemacheck.py compares both validators on the examples, the golden cases, the
bad-input corpus and generated instances.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

Check = Callable[[Any], bool]

# Keywords that never change validity (annotations): skipped. "format" is not here:
# jsonschema ignores it without a format checker, but if the loader ever adds one this
# module must not say yes in its place.
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


class Unsupported(Exception):
    """The schema uses something this module does not implement exactly."""


class _Unsure(Exception):
    """This instance needs jsonschema's judgement."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float))) and not isinstance(value, bool)


def _type_check(name: str) -> Check:
    if name == "string":
        return lambda v: isinstance(v, str)
    if name == "object":
        return lambda v: isinstance(v, dict)
    if name == "array":
        return lambda v: isinstance(v, list)
    if name == "boolean":
        return lambda v: isinstance(v, bool)
    if name == "null":
        return lambda v: v is None
    if name == "number":
        return _is_number

    if name == "integer":

        def integer(v: Any) -> bool:
            if isinstance(v, float):
                raise _Unsure  # 1.0 is an integer to JSON Schema: let jsonschema say so
            return _is_int(v)

        return integer
    raise Unsupported(f"type {name!r}")


def _all_of(checks: list[Check]) -> Check:
    # Unrolled: this runs for every value of a 10 000-vhost inventory.
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda v: a(v) and b(v)
    if len(checks) == 3:
        a, b, c = checks
        return lambda v: a(v) and b(v) and c(v)
    checks_t = tuple(checks)

    def every(v: Any) -> bool:
        for check in checks_t:  # noqa: SIM110 - a plain loop: no generator per value
            if not check(v):
                return False
        return True

    return every


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or _is_int(value)


def _equal(expected: Any) -> Check:
    """jsonschema's `equal` for plain values (True is not 1; "1" is not 1)."""
    if not _plain(expected):
        raise Unsupported(f"const/enum value {expected!r}")

    def check(v: Any) -> bool:
        if not _plain(v):
            raise _Unsure
        return type(v) is type(expected) and v == expected

    return check


class _Compiler:
    def __init__(self, root: Any):
        self.root = root
        self.refs: dict[str, Check] = {}

    def ref(self, pointer: str) -> Check:
        if pointer in self.refs:
            return self.refs[pointer]
        if not pointer.startswith("#"):
            raise Unsupported(f"$ref {pointer!r}")
        # Placeholder first: a recursive schema refers to itself while it is compiled.
        slot: list[Check] = []
        self.refs[pointer] = lambda v: slot[0](v)
        target = self.root
        for part in pointer[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                target = target[int(part)] if isinstance(target, list) else target[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise Unsupported(f"$ref {pointer!r} does not resolve") from None
        slot.append(self.compile(target))
        self.refs[pointer] = slot[0]
        return slot[0]

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        checks: list[Check] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS or keyword.startswith("x-"):
                continue
            if keyword in ("properties", "patternProperties", "additionalProperties"):
                continue  # together below: additionalProperties depends on the other two
            method = getattr(self, "k_" + keyword.lstrip("$"), None)
            if method is None:
                raise Unsupported(f"keyword {keyword!r}")
            checks.append(method(value, schema))
        if {"properties", "patternProperties", "additionalProperties"} & schema.keys():
            checks.append(self.object_properties(schema))
        return _all_of(checks)

    # ---- keywords (value, whole schema) -> check

    def k_ref(self, value: Any, _schema: Any) -> Check:
        return self.ref(value)

    def k_type(self, value: Any, _schema: Any) -> Check:
        if isinstance(value, str):
            return _type_check(value)
        options = tuple(_type_check(name) for name in value)
        return lambda v: any(check(v) for check in options)

    def k_const(self, value: Any, _schema: Any) -> Check:
        return _equal(value)

    def k_enum(self, value: Any, _schema: Any) -> Check:
        options = tuple(_equal(item) for item in value)
        return lambda v: any(check(v) for check in options)

    def k_pattern(self, value: Any, _schema: Any) -> Check:
        search = re.compile(value).search
        return lambda v: not isinstance(v, str) or search(v) is not None

    def k_minLength(self, value: int, _schema: Any) -> Check:
        return lambda v: not isinstance(v, str) or len(v) >= value

    def k_maxLength(self, value: int, _schema: Any) -> Check:
        return lambda v: not isinstance(v, str) or len(v) <= value

    def k_minimum(self, value: Any, _schema: Any) -> Check:
        return lambda v: not _is_number(v) or v >= value

    def k_maximum(self, value: Any, _schema: Any) -> Check:
        return lambda v: not _is_number(v) or v <= value

    def k_exclusiveMinimum(self, value: Any, _schema: Any) -> Check:
        return lambda v: not _is_number(v) or v > value

    def k_exclusiveMaximum(self, value: Any, _schema: Any) -> Check:
        return lambda v: not _is_number(v) or v < value

    def k_minItems(self, value: int, _schema: Any) -> Check:
        return lambda v: not isinstance(v, list) or len(v) >= value

    def k_maxItems(self, value: int, _schema: Any) -> Check:
        return lambda v: not isinstance(v, list) or len(v) <= value

    def k_minProperties(self, value: int, _schema: Any) -> Check:
        return lambda v: not isinstance(v, dict) or len(v) >= value

    def k_maxProperties(self, value: int, _schema: Any) -> Check:
        return lambda v: not isinstance(v, dict) or len(v) <= value

    def k_required(self, value: list[str], _schema: Any) -> Check:
        names = frozenset(value)
        return lambda v: not isinstance(v, dict) or names.issubset(v.keys())

    def k_uniqueItems(self, value: bool, _schema: Any) -> Check:
        if not value:
            return lambda v: True

        def unique(v: Any) -> bool:
            if not isinstance(v, list):
                return True
            if not all(isinstance(item, str) for item in v):
                raise _Unsure  # 1 vs True vs 1.0: jsonschema's rules
            return len(set(v)) == len(v)

        return unique

    def k_items(self, value: Any, schema: Any) -> Check:
        if "prefixItems" in schema:
            raise Unsupported("prefixItems")
        item = self.compile(value)

        def items(v: Any) -> bool:
            if isinstance(v, list):
                for x in v:
                    if not item(x):
                        return False
            return True

        return items

    def k_propertyNames(self, value: Any, _schema: Any) -> Check:
        name = self.compile(value)
        return lambda v: not isinstance(v, dict) or all(name(k) for k in v)

    def k_allOf(self, value: list[Any], _schema: Any) -> Check:
        return _all_of([self.compile(s) for s in value])

    def k_anyOf(self, value: list[Any], _schema: Any) -> Check:
        subs = tuple(self.compile(s) for s in value)
        return lambda v: any(sub(v) for sub in subs)

    def k_oneOf(self, value: list[Any], _schema: Any) -> Check:
        subs = tuple(self.compile(s) for s in value)
        # Every branch is evaluated: an _Unsure in any of them must reach the caller.
        return lambda v: sum(1 for sub in subs if sub(v)) == 1

    def k_not(self, value: Any, _schema: Any) -> Check:
        sub = self.compile(value)
        return lambda v: not sub(v)

    def object_properties(self, schema: dict[str, Any]) -> Check:
        properties = {name: self.compile(s) for name, s in schema.get("properties", {}).items()}
        patterns = tuple(
            (re.compile(p).search, self.compile(s))
            for p, s in schema.get("patternProperties", {}).items()
        )
        additional = self.compile(schema.get("additionalProperties", True))

        def check(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for key, item in v.items():
                sub = properties.get(key)
                matched = False
                if sub is not None:
                    matched = True
                    if not sub(item):
                        return False
                for search, pattern_check in patterns:
                    if search(key) is not None:
                        matched = True
                        if not pattern_check(item):
                            return False
                if not matched and not additional(item):
                    return False
            return True

        return check


def compile_schema(schema: Any) -> Check:
    """The schema as one function; raises Unsupported for anything not implemented exactly."""
    if isinstance(schema, dict) and schema.get("$schema", _DRAFT) != _DRAFT:
        raise Unsupported(f"$schema {schema.get('$schema')!r}")
    return _Compiler(schema).compile(schema)


# id(schema) -> (schema, its check or None); the schema is kept so that its id stays unique.
_COMPILED: dict[int, tuple[Any, Optional[Check]]] = {}


def is_valid(schema: Any, instance: Any) -> bool:
    """True only if `instance` is certainly valid; False means: ask jsonschema."""
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        try:
            entry = (schema, compile_schema(schema))
        except (Unsupported, re.error, RecursionError):
            entry = (schema, None)
        _COMPILED[id(schema)] = entry
    check = entry[1]
    if check is None:
        return False
    try:
        return bool(check(instance))
    except (_Unsure, RecursionError, TypeError):
        return False
