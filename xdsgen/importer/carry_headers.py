"""Header changes an inventory cannot say, offered as patches at the level they are made.

read_access reads what every route does to each header, and translate says with
`headers` what it can (a value set, a header removed, the security_headers preset); the
comparer names the rest (an appended value, one replaced only where present). Those
entries are offered here as patches of the route configuration, vhost or route that has
them, after the draft's own entries there (Carry.extends: a merge patch replaces a list).
The same reader reads the patched draft, so the entries carried show on both sides.
"""

from __future__ import annotations

from typing import Any

from xdsgen.importer.carrying import carry
from xdsgen.importer.inputs import Context
from xdsgen.importer.read_access import CLIENT_HEADERS, HEADER_LISTS
from xdsgen.importer.read_access import _header as header_entry
from xdsgen.importer.semantics import Hcm
from xdsgen.importer.shapes import as_list, as_map
from xdsgen.importer.translate_access import _HEADER_RE as NAME
from xdsgen.importer.translate_access import CLIENT_HEADERS as CLIENT_NAMES
from xdsgen.importer.translate_access import SECURITY_HEADERS


def offer_headers(ctx: Context, hcm: Hcm) -> None:
    """Offer the entries no inventory key says, level by level (quietly: the comparer
    names how the route's headers differ)."""
    levels: list[tuple[Any, str, Any, str]] = [(hcm, "route_config", hcm.route_headers, hcm.where)]
    for vhost in hcm.vhosts or []:
        levels.append((vhost, "vhost", vhost.raw, vhost.where))
        levels.extend((route, "route", route.raw, route.where) for route in vhost.routes)
    for anchor, kind, data, where in levels:
        for key in HEADER_LISTS:
            entries = [e for e in as_list(as_map(data).get(key)) if not _sayable(key, e, kind)]
            if entries:
                merge = {key: entries}
                carry(
                    ctx,
                    anchor,
                    "headers",
                    where,
                    "",
                    kind,
                    key,
                    merge,
                    within=data,
                    quiet=True,
                    extends=True,
                )


def _sayable(key: str, entry: Any, kind: str) -> bool:
    request = key.startswith("request")
    if key.endswith("_remove"):
        return isinstance(entry, str) and bool(NAME.match(entry))
    name, value, action = header_entry(entry)
    if request and kind == "route_config" and (name, value) in CLIENT_HEADERS:
        return True  # what every xdsgen route configuration sets
    if set(as_map(entry)) - {"header", "append_action", "append"} or not NAME.match(name):
        return False
    if action in ("OVERWRITE_IF_EXISTS_OR_ADD", "2"):
        return not (request and name in CLIENT_NAMES)
    preset = SECURITY_HEADERS.get(name) == value  # the security_headers preset
    return action in ("ADD_IF_ABSENT", "1") and not request and preset
