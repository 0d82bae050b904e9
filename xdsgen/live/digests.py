"""Route configurations known by digests, so that the plan need not parse a big route file
on disk again.

A one-vhost change at 10 000 vhosts changes two route files of ~6 MB together; to say
which vhost changed, the plan compared the parsed old files with the new ones, and
parsing the old ones took ~0.5 s and ~15 MB (the new ones are parsed by the render
anyway). When apply stores a route file in the history (live/blobs.py) it now also stores
a digest of each route configuration and of each of its vhosts; a later apply that finds
that very file on disk compares digests instead (~0.1 s). Anything else (a file apply
did not write, no digests stored, a file already parsed in this process) is parsed as
before. The digests only serve the plan's description of a change: which files are
written is decided by their texts.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any, Optional

_MEMO: OrderedDict[str, Optional[dict[str, RouteDigest]]] = OrderedDict()
_MEMO_FILES = 64


def digest_of(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:20]


def without_route_metadata(vhost: Any) -> Any:
    """A vhost less its routes' metadata, where the render keeps the hash of an htpasswd
    file the route names (auth basic, issue 14): equal when only that file was edited."""
    if not isinstance(vhost, dict):
        return vhost
    routes = [
        {k: v for k, v in route.items() if k != "metadata"}
        for route in vhost.get("routes") or []
        if isinstance(route, dict)
    ]
    return {**vhost, "routes": routes}


class RouteDigest:
    """One route configuration: a digest of the whole (equal exactly when the parsed
    resources are equal, vhost order included) and one per vhost, by name, with and
    without the routes' metadata (`bare`: an htpasswd file's hash is all that differs)."""

    def __init__(self, whole: str, vhosts: dict[str, str], bare: Optional[dict[str, str]] = None):
        self.whole = whole
        self.vhosts = vhosts
        self.bare = bare or {}

    @classmethod
    def of(cls, resource: dict[str, Any]) -> RouteDigest:
        hosts = list(resource.get("virtual_hosts") or [])
        digests = [digest_of(h) for h in hosts]
        rest = {k: v for k, v in resource.items() if k != "virtual_hosts"}
        whole = digest_of([rest, digests, "virtual_hosts" in resource])
        named = {_name(h): d for h, d in zip(hosts, digests)}
        bare = {_name(h): digest_of(without_route_metadata(h)) for h in hosts}
        return cls(whole, named, bare)

    def with_vhosts(self, resource: dict[str, Any], changed: dict[str, Any]) -> RouteDigest:
        """The digests of `resource`, a route configuration that differs from the one these
        digests are of only in the vhosts `changed` (name -> the vhost as parsed)."""
        vhosts, bare = dict(self.vhosts), dict(self.bare)
        for name, host in changed.items():
            vhosts[name] = digest_of(host)
            bare[name] = digest_of(without_route_metadata(host))
        rest = {k: v for k, v in resource.items() if k != "virtual_hosts"}
        whole = digest_of([rest, list(vhosts.values()), "virtual_hosts" in resource])
        return RouteDigest(whole, vhosts, bare)

    def users_only(self, other: RouteDigest, vhost: str) -> bool:
        """Whether `vhost` differs from `other`'s only in its routes' metadata."""
        mine, theirs = self.bare.get(vhost), other.bare.get(vhost)
        return mine is not None and mine == theirs

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RouteDigest):
            return self.whole == other.whole
        if isinstance(other, dict):
            return self.whole == RouteDigest.of(other).whole
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def as_json(self) -> dict[str, Any]:
        return {"whole": self.whole, "vhosts": self.vhosts, "bare": self.bare}

    @classmethod
    def from_json(cls, data: Any) -> Optional[RouteDigest]:
        if not isinstance(data, dict) or not isinstance(data.get("whole"), str):
            return None
        vhosts = data.get("vhosts")
        if not isinstance(vhosts, dict) or not all(isinstance(v, str) for v in vhosts.values()):
            return None
        bare = data.get("bare")  # missing in digests stored before it was kept
        if not isinstance(bare, dict) or not all(isinstance(v, str) for v in bare.values()):
            bare = {}
        return cls(data["whole"], {str(k): v for k, v in vhosts.items()}, bare)


def _name(host: Any) -> str:
    return str(host.get("name")) if isinstance(host, dict) else ""


def route_digests(text: str) -> Optional[dict[str, RouteDigest]]:
    """Route configuration name -> its digests, for a route file's text (parsed once, or
    taken from the parse cache); None when it does not parse."""
    if text in _MEMO:
        _MEMO.move_to_end(text)
        return _MEMO[text]
    from xdsgen.parsed import resources_of

    items = resources_of(text)
    found = None if items is None else {str(r.get("name")): RouteDigest.of(r) for r in items}
    remember(text, found)
    return found


def remember(text: str, found: Optional[dict[str, RouteDigest]]) -> None:
    """A route file's digests (None: it does not parse); xdsgen/reuse.py knows some
    without parsing the file."""
    _MEMO[text] = found
    while len(_MEMO) > _MEMO_FILES:
        _MEMO.popitem(last=False)


def retain(texts: set[str]) -> None:
    """Forget the digests of every text but `texts` (see parsed.retain)."""
    for text in [t for t in _MEMO if t not in texts]:
        del _MEMO[text]


def index_json(digests: dict[str, RouteDigest]) -> str:
    return json.dumps({"format": 1, "routes": {n: d.as_json() for n, d in digests.items()}})


def index_from_json(text: str) -> Optional[dict[str, RouteDigest]]:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    routes = data.get("routes") if isinstance(data, dict) and data.get("format") == 1 else None
    if not isinstance(routes, dict):
        return None
    found = {str(n): RouteDigest.from_json(d) for n, d in routes.items()}
    if any(d is None for d in found.values()):
        return None
    return {n: d for n, d in found.items() if d is not None}
