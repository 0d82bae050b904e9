"""Keep the draft a valid inventory: what `xdsgen validate` refuses is left out, with a note.

The translator avoids what the inventory's checks refuse, but those checks are the
model's, and they grow. Rather than repeat them, the draft is checked as `xdsgen validate`
would check it, and each element a problem points at (a route, a domain, a vhost, an
upstream and what uses it, ...) is left out, until the draft is valid. The comparer then
names what leaving it out changes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any, Callable, Union

from xdsgen.errors import InventoryError, Problem
from xdsgen.importer.differences import Report

MAX_ROUNDS = 25
_PART = re.compile(r'\.?([A-Za-z0-9_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def dump(inventory: Any) -> str:
    import yaml

    return yaml.safe_dump(
        inventory, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True
    )


def problems_of(text: str, loader: Callable[[str], Any]) -> list[Problem]:
    fd, path = tempfile.mkstemp(prefix="xdsgen-import-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        loader(path)
    except InventoryError as exc:
        return list(exc.problems)
    finally:
        os.unlink(path)
    return []


def make_valid(
    inventory: dict[str, Any], report: Report, loader: Callable[[str], Any]
) -> list[Problem]:
    """Leave out what the checks refuse (in place); the problems left, if any."""
    for _ in range(MAX_ROUNDS):
        problems = problems_of(dump(inventory), loader)
        if not problems:
            return []
        changed = False
        for problem in problems:
            parts = parse_path(problem.path)
            if parts and leave_out(inventory, parts):
                report.note("", f"left out of the draft: {problem.path}: {problem.message}")
                changed = True
        if not changed:
            return problems
    return problems_of(dump(inventory), loader)


def parse_path(text: str) -> list[Union[str, int]]:
    parts: list[Union[str, int]] = []
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            return []
        word, index, quoted = match.groups()
        if word is not None:
            parts.append(word)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(json.loads(quoted))
        position = match.end()
    return parts


def leave_out(inventory: dict[str, Any], parts: list[Union[str, int]]) -> bool:
    """Remove the element the path points into; False when nothing could be removed."""
    section = parts[0]
    if section == "upstreams" and len(parts) > 1:
        return _drop_upstream(inventory, str(parts[1]))
    if section == "certificates" and len(parts) > 1:
        name = str(parts[1])
        certificates = inventory.get("certificates") or {}
        if name not in certificates:
            return False
        del certificates[name]
        if not certificates:
            inventory.pop("certificates", None)
        inventory["http"] = [v for v in inventory.get("http", []) if v.get("tls") != name]
        return _tidy(inventory)
    if section == "envoy" and len(parts) > 1:
        return (inventory.get("envoy") or {}).pop(str(parts[1]), None) is not None
    if section == "listen" and len(parts) > 1:
        return _drop_family(inventory, str(parts[1]))
    if section in ("http", "tls_passthrough", "tcp", "udp") and len(parts) > 1:
        items = inventory.get(section)
        index = parts[1]
        if not isinstance(items, list) or not isinstance(index, int) or index >= len(items):
            return False
        item = items[index]
        if len(parts) > 3 and parts[2] in ("routes", "domains", "sni", "families"):
            inner = item.get(parts[2])
            if isinstance(inner, list) and isinstance(parts[3], int) and parts[3] < len(inner):
                del inner[parts[3]]
                return _tidy(inventory)
        del items[index]
        return _tidy(inventory)
    return False


def _drop_upstream(inventory: dict[str, Any], name: str) -> bool:
    upstreams = inventory.get("upstreams") or {}
    if name not in upstreams:
        return False
    del upstreams[name]
    for vhost in inventory.get("http", []):
        vhost["routes"] = [r for r in vhost.get("routes", []) if r.get("upstream") != name]
    for section in ("tls_passthrough", "tcp", "udp"):
        if section in inventory:
            inventory[section] = [i for i in inventory[section] if i.get("upstream") != name]
    return _tidy(inventory)


def _drop_family(inventory: dict[str, Any], family: str) -> bool:
    listen = inventory.get("listen") or {}
    if family not in listen or len(listen) < 2:
        return False
    del listen[family]
    for section in ("http", "tls_passthrough", "tcp", "udp"):
        for item in inventory.get(section, []):
            if family in item.get("families", []):
                item["families"].remove(family)
    return _tidy(inventory)


def _tidy(inventory: dict[str, Any]) -> bool:
    """Remove what the last removal emptied (a vhost without routes, an empty list)."""
    for section, key in (("http", "routes"), ("http", "domains"), ("tls_passthrough", "sni")):
        if section in inventory:
            inventory[section] = [i for i in inventory[section] if i.get(key)]
    for section in ("http", "tls_passthrough", "tcp", "udp"):
        if section in inventory:
            inventory[section] = [i for i in inventory[section] if i.get("families", [1])]
            if not inventory[section]:
                del inventory[section]
    return True
