"""Fields the inventory cannot say, recorded so that a patch can carry them over.

A reader that meets such a field records it on the object it belongs to (`extras`, keyed
by the patch kind and the field) and reports its difference with the patch that would
carry it (a semantics.Carry). The same reader reads the draft's render, so a draft whose
patch carries the field shows the very same extras: the comparer can tell a carried field
from a missing one by asking both sides, as for everything else.

Fields xdsgen renders itself (health checks, ejection, panic mode, retry policies, idle
timeouts) are different: the readers record on both sides the value they read (a
semantics.HealthCheck, a Retry), so that the same behaviour is the same extra however each
side says it; the comparer names a difference and offers the patch that replaces what
xdsgen rendered (`replacing`).

Only what Envoy reads as v3 is offered as a patch: v2 shapes (a `config:` Struct, a v2
@type), a filter known only by its name, a value with a null in it or one that needs a
management server (ads, api_config_source) stay differences.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from xdsgen.importer.differences import Difference
from xdsgen.importer.inputs import Context
from xdsgen.importer.semantics import Carry, Vhost
from xdsgen.importer.shapes import as_map, extension, is_v2_type, text, type_url

ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TLS_INSPECTOR = (
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
)
HTTP_INSPECTOR = (
    "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
)
# Filters Envoy 1.40 still knows by a name alone in old configs: their v3 form.
_BY_NAME = {
    "Router": ("envoy.filters.http.router", ROUTER),
    "TlsInspector": ("envoy.filters.listener.tls_inspector", TLS_INSPECTOR),
    "HttpInspector": ("envoy.filters.listener.http_inspector", HTTP_INSPECTOR),
}
_NEEDS_A_SERVER = {"ads", "api_config_source"}
# The extra of a field no patch can carry: never equal to what a draft has.
UNCARRIABLE = object()


def carry(
    ctx: Context,
    anchor: Any,
    topic: str,
    where: str,
    message: str,
    kind: str,
    key: str,
    merge: Any,
    fragment: Any = None,
    within: Any = None,
    quiet: bool = False,
    extends: bool = False,
) -> None:
    """Record the field on `anchor` and report its difference, with the patch that would
    carry it when Envoy can read that patch as it is. `within`: the original mapping the
    patch merges into, whose order the patch keeps. `quiet`: a field that changes nothing
    alone (or one the comparer names), offered as a patch without a difference. `extends`:
    a list carried after the draft's own entries (semantics.Carry)."""
    anchor.extras[(kind, key)] = UNCARRIABLE if merge is None else merge
    offer = offered(kind, key, merge, within, extends)
    if quiet:
        if offer is not None:
            ctx.report.offers.append(Difference(topic, where, message, None, None, anchor, offer))
        return
    ctx.report.differ(topic, where, message, fragment, anchor, carry=offer)


def offered(
    kind: str, key: str, merge: Any, within: Any = None, extends: bool = False
) -> Optional[Carry]:
    """The patch that carries `merge`, when Envoy reads it as it is (else None)."""
    if merge is None or not v3_shape(merge):
        return None
    return Carry(kind, key, merge, _position(within, merge), extends)


_MISSING = object()


def replacing(kind: str, key: str, path: tuple[str, ...], original: Any, draft: Any) -> Any:
    """The patch that makes the field at `path` of the draft's resource what it is in the
    original, for a field xdsgen renders itself (a retry policy, ejection, a health
    check): a merge would keep what xdsgen put there, so the patch removes (null) what
    the draft has there and the original has not; the field missing in the original is
    removed whole. None when Envoy could not read the original's value as it is."""
    ours, theirs = _at(original, path), _at(draft, path)
    if ours is not _MISSING and not v3_shape(ours):
        return None
    value = None if ours is _MISSING else _replaced(ours, theirs)
    merge = value
    for step in reversed(path):
        merge = {step: merge}
    return Carry(kind, key, merge, _position(original, merge))


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return _MISSING
        value = value[step]
    return value


def _replaced(ours: Any, theirs: Any) -> Any:
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return ours
    out = {key: _replaced(value, theirs.get(key, _MISSING)) for key, value in ours.items()}
    out.update((key, None) for key in theirs if key not in ours)
    return out


def _position(within: Any, merge: Any) -> tuple[int, ...]:
    """Where the patch's first field sits in the original, level by level: patches list
    their fields in the original's order (a merge appends new keys in its own order)."""
    out = []
    while isinstance(merge, dict) and merge and isinstance(within, dict):
        key = next(iter(merge))
        keys = list(within)
        out.append(keys.index(key) if key in within else len(keys))
        merge, within = merge[key], within.get(key)
    return tuple(out)


def v3_shape(value: Any) -> bool:
    """Whether Envoy reads `value` as v3, as it is (see the module's docstring)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            return False
        if isinstance(item, dict):
            if _NEEDS_A_SERVER & set(item):
                return False
            if "config" in item and "name" in item and "typed_config" not in item:
                return False  # a v2 filter with its Struct config
            url = text(item.get("@type"))
            if url and is_v2_type(url.rsplit("/", 1)[-1]):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def filter_list(entries: list[Any]) -> Optional[list[Any]]:
    """A list of HTTP or listener filters in the v3 form Envoy reads (v2 names of the
    router and the inspectors become their typed configs); None when an entry has no v3
    form here (a v2 `config:`, a filter known only by its name)."""
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            return None
        kind, _, _ = extension(entry)
        if "typed_config" in entry and type_url(as_map(entry["typed_config"])):
            out.append(entry)
        elif kind in _BY_NAME and "config" not in entry:
            name, url = _BY_NAME[kind]
            rest = {k: v for k, v in entry.items() if k != "name"}
            out.append({"name": name, **rest, "typed_config": {"@type": url}})
        else:
            return None
    return out


def vhost_extras(vhost: Vhost, wanted: bool = True) -> str:
    """What a vhost and its routes do beyond what an inventory says, as one text: vhosts
    that differ in it are kept apart in the draft, so that patches can carry each one's
    (only when patches are `wanted`)."""
    if not wanted:
        return ""
    extras = [vhost.extras] + [route.extras for route in vhost.routes]
    listed = [sorted((list(key), value) for key, value in found.items()) for found in extras]
    return json.dumps(listed, sort_keys=True, default=_extra_text)


def _extra_text(value: Any) -> str:
    """An extra that is not JSON: a field no patch carries, or a value read (a retry
    policy) that two vhosts share only when it is the same."""
    return "not carried" if value is UNCARRIABLE else repr(value)
