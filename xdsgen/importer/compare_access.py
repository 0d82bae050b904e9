"""The comparer's questions about access (issue 14): for a route both sides serve alike,
who may use it, who must log in first, and the headers it changes (read_access)."""

from __future__ import annotations

from typing import Any, Optional

from xdsgen.importer.differences import Resource
from xdsgen.importer.semantics import Proxy, Route, Vhost


def compare_route(
    self: Any, ours: Route, theirs: Route, context: str, shown: str, path: str
) -> None:
    """Who may use the route, who must log in first, and its header changes (issue 14)."""
    a, b = ours.access, theirs.access
    what = f"{shown}, {_where_in_vhost(ours, theirs, path)}"
    where = ours.where
    resource = _route_resource(theirs.vhost, theirs)
    if (_sources(a.allow), a.client) != (_sources(b.allow), b.client):
        self.add(
            "access",
            where,
            context,
            f"{what}: the original allows {_allowed(a)}; the draft {_allowed(b)}",
            resource,
            ours.raw,
        )
    if not isinstance(ours.action, Proxy):
        return
    mine, draft = mapped_auth(self, a.auth), _auth_key(b.auth)
    if mine != draft:
        self.add(
            "auth",
            where,
            context,
            f"{what}: the original asks {_auth_words(mine)}; the draft {_auth_words(draft)}",
            resource,
            ours.raw,
        )
    for side, ours_headers, theirs_headers in (
        ("request", a.request_headers, b.request_headers),
        ("response", a.response_headers, b.response_headers),
    ):
        if ours_headers != theirs_headers:
            self.add(
                "headers",
                where,
                context,
                f"{what}: the {side} headers it changes differ: the original "
                f"{_headers(ours_headers)}; the draft {_headers(theirs_headers)}",
                resource,
                ours.raw,
            )
    if a.strip != b.strip and set(a.strip) <= set(b.strip):
        more = ", ".join(sorted(set(b.strip) - set(a.strip)))
        self.report.note(
            where,
            f"{context}: {what}: the draft removes {more} "
            "that a client sends before asking the auth service (the original lets the "
            "client's own reach the backend when the auth service does not answer with it)",
        )
    elif a.strip != b.strip:
        self.add(
            "headers",
            where,
            context,
            f"{what}: before the auth check the original removes "
            f"{', '.join(a.strip) or 'nothing'}; the draft {', '.join(b.strip) or 'nothing'}",
            resource,
            ours.raw,
        )


def mapped_auth(self: Any, auth: Optional[tuple[str, ...]]) -> Optional[tuple[str, ...]]:
    key = _auth_key(auth)
    if key is None or key[0] != "forward":
        return key
    cluster = self.auth_clusters.get(key[1]) or self.names.get(
        key[1], f"{key[1]} (not in the draft)"
    )
    return (key[0], cluster, *key[2:])


def _allowed(access: Any) -> str:
    if _sources(access.allow) is None:
        return "everyone"
    behind = " (the client behind trusted proxies)" if access.client else ""
    return "only " + ", ".join(access.allow) + behind


def _auth_key(auth: Optional[tuple[str, ...]]) -> Optional[tuple[str, ...]]:
    """An authenticator as compared: the uri of an auth service is only its label."""
    if auth is None or auth[0] != "forward":
        return auth
    return (auth[0], auth[1], *auth[3:])


def _auth_words(auth: Optional[tuple[str, ...]]) -> str:
    if auth is None:
        return "no one"
    if auth[0] == "basic":
        return f"for the users of {auth[1]} (basic auth)"
    headers = f", copying {auth[3]}" if len(auth) > 3 and auth[3] else ""
    return f"auth service {auth[1]!r} at {auth[2] or '/'}{headers}"


def _headers(effects: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    if not effects:
        return "none"
    words = []
    for name, effect in effects:
        if effect[0] == "removed":
            words.append(f"removes {name}")
        elif effect[0] == "default":
            words.append(f"adds {name}: {effect[1]} where absent")
        else:
            words.append(f"{effect[0]}s {name}: {effect[-1]}")
    return ", ".join(words)


def _where_in_vhost(ours: Optional[Route], theirs: Optional[Route], path: str) -> str:
    """Which requests: the original's route, and the draft's when it is narrower."""
    if ours is None:
        return theirs.describe() if theirs else f"path {path}"
    narrower = theirs is not None and theirs.value.startswith(ours.value)
    if theirs is not None and narrower and theirs.describe() != ours.describe():
        return f"{ours.describe()}, within it {theirs.describe()}"
    return ours.describe()


def _route_resource(vhost: Optional[Vhost], route: Optional[Route]) -> Optional[Resource]:
    if vhost is None or route is None:
        return None
    return Resource("route", f"{vhost.name}/{route.name}")


def _sources(cidrs: Optional[tuple[str, ...]]) -> Optional[tuple[str, ...]]:
    return None if cidrs is None or {"0.0.0.0/0", "::/0"} <= set(cidrs) else cidrs
