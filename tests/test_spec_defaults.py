"""spec.DEFAULTS is the one defaults table: every `default` in the inventory schema is in
it with the same value, and every entry of it is a schema default (so the editor's hover
help, README's reference and the model agree)."""

from __future__ import annotations

import json
from typing import Any

from harness import REPO

from xdsgen.spec import DEFAULTS

# The schema documents Envoy's TCP admin port; the model's default is a Unix socket in
# the config directory (envoy.admin left out), which has no value to put in the table.
SCHEMA_ONLY = {"envoy.admin"}


def schema_defaults() -> dict[str, Any]:
    schema = json.loads((REPO / "schemas" / "inventory.schema.json").read_text())
    found: dict[str, Any] = {}

    def resolve(node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target = schema
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def walk(node: Any, path: str) -> None:
        node = resolve(node)
        if not isinstance(node, dict):
            return
        if "default" in node and path:
            found[path] = node["default"]
        for key, child in node.get("properties", {}).items():
            # listen.ipv4 and listen.ipv6 share one definition: DEFAULTS says listen.*.
            name = "*" if path == "listen" else key
            walk(child, f"{path}.{name}" if path else name)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.*")
        if "items" in node:
            walk(node["items"], f"{path}[]")
        for branch in (*node.get("oneOf", ()), *node.get("anyOf", ())):
            walk(branch, path)

    walk(schema, "")
    return found


def test_every_schema_default_is_the_table_entry() -> None:
    found = schema_defaults()
    assert {k: v for k, v in found.items() if k not in SCHEMA_ONLY} == DEFAULTS


def test_the_edge_features_defaults_are_in_the_table() -> None:
    for key in (
        "upstreams.*.health_check.interval",
        "upstreams.*.health_check.unhealthy_threshold",
        "upstreams.*.health_check.healthy_threshold",
        "listen.*.http3",
        "http[].maintenance",
        "http[].compress",
        "http[].routes[].retries",
        "envoy.access_log_format",
    ):
        assert key in schema_defaults() and key in DEFAULTS, key
