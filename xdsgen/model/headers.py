"""Headers (issue 14): what every backend is told about the client, and the header changes
of vhosts and routes (hsts, security_headers, headers:).

Every listener's route configuration replaces the client's own X-Forwarded-For,
X-Real-IP, X-Forwarded-Proto and X-Forwarded-Port: those are facts about the connection
Envoy took, never the client's word. A vhost's changes are merged into each of its routes
(the route's own win for the same header), so the render says at each route exactly what
happens there.
"""

from __future__ import annotations

import re
from typing import Optional

from xdsgen import conventions as xds
from xdsgen.errors import PathKey
from xdsgen.model.ir import HeaderRules, HeaderValue
from xdsgen.model.problems import Problems
from xdsgen.spec import HeaderChangesSpec, HeadersSpec, Spec, VhostSpec

HSTS_HEADER = "strict-transport-security"
HSTS_DEFAULT_MAX_AGE = 31536000  # one year: what browsers' preload lists ask for at least
# security_headers: added only where the backend sent none (it may know better, e.g. an
# app meant to be framed by its own other pages).
SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("content-security-policy", "frame-ancestors 'self'"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
)
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_VALUE_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Envoy refuses to change these (":-prefixed or host headers may not be modified").
_UNMODIFIABLE = frozenset({"host"})


def client_headers(scheme: str) -> tuple[tuple[str, str], ...]:
    """The client's address, scheme and port, as a listener's route configuration sets
    them (`scheme`: http or https, what the listener is)."""
    return (
        (xds.XFF_HEADER, xds.XFF_VALUE),
        (xds.REAL_IP_HEADER, xds.XFF_VALUE),
        (xds.PROTO_HEADER, scheme),
        (xds.PORT_HEADER, xds.PORT_VALUE),
    )


def envoy_value(text: str) -> str:
    """A literal header value in Envoy's format, where % starts a command (%REQ(...)%)."""
    return text.replace("%", "%%")


def check(spec: Spec, problems: Problems) -> None:
    """hsts, security_headers and headers: of every vhost and route."""
    for vhost in spec.http:
        if vhost.hsts not in (None, False) and vhost.tls is None:
            problems.error(
                (*vhost.path, "hsts"),
                "hsts needs tls: browsers ignore Strict-Transport-Security over plain http",
                "add tls: CERTIFICATE to the vhost, or remove hsts",
            )
        for headers in (vhost.headers, *(r.headers for r in vhost.routes)):
            if headers is not None:
                _check_headers(headers, problems)


def _check_headers(headers: HeadersSpec, problems: Problems) -> None:
    for side, changes in (("request", headers.request), ("response", headers.response)):
        path: PathKey = (*headers.path, side)
        seen: dict[str, str] = {}
        for index, name in enumerate(changes.remove):
            _check_name(name, side, (*path, "remove", index), problems)
        for name, value in changes.set:
            where = (*path, "set", name)
            if _check_name(name, side, where, problems) and name.lower() in seen:
                problems.error(
                    where,
                    f"header {name!r} is set twice (also as {seen[name.lower()]!r}): names "
                    "are case-insensitive",
                    "set it once",
                )
            seen.setdefault(name.lower(), name)
            if _VALUE_UNSAFE.search(value):
                problems.error(where, "the value contains a line break or a control character")


def _check_name(name: str, side: str, path: PathKey, problems: Problems) -> bool:
    lowered = name.lower()
    if not _TOKEN.match(name):
        problems.error(path, f"{name!r} is not a header name", "letters, digits and -")
    elif lowered in _UNMODIFIABLE:
        problems.error(
            path,
            "Envoy cannot change Host here",
            "rewrite the path with rewrite:; the backend gets the Host the client sent",
        )
    elif side == "request" and lowered in xds.CLIENT_HEADERS:
        problems.error(
            path,
            f"{lowered} is set by xdsgen on every request: it carries the client's address, "
            "scheme or port",
            "backends read it as README's 'What backends receive' says",
        )
    else:
        return True
    return False


def _changes(
    changes: HeaderChangesSpec,
) -> tuple[dict[str, HeaderValue], set[str]]:
    adds = {
        name.lower(): HeaderValue(name.lower(), envoy_value(value), xds.OVERWRITE)
        for name, value in changes.set
    }
    return adds, {name.lower() for name in changes.remove}


def route_rules(
    vhost: VhostSpec, route_headers: Optional[HeadersSpec], for_tls: bool
) -> Optional[HeaderRules]:
    """The header changes at one route: the vhost's presets and headers, then the
    route's own (which win for the same header)."""
    request: dict[str, HeaderValue] = {}
    response: dict[str, HeaderValue] = {}
    request_remove: set[str] = set()
    response_remove: set[str] = set()
    if vhost.security_headers:
        for key, value in SECURITY_HEADERS:
            response[key] = HeaderValue(key, envoy_value(value), xds.ADD_IF_ABSENT)
    if for_tls and vhost.hsts not in (None, False):
        max_age = HSTS_DEFAULT_MAX_AGE if vhost.hsts is True else int(vhost.hsts)
        response[HSTS_HEADER] = HeaderValue(HSTS_HEADER, f"max-age={max_age}", xds.OVERWRITE)
    for headers in (vhost.headers, route_headers):
        if headers is None:
            continue
        # Envoy removes before it adds: a header both removed and set ends up set.
        for changes, found, removed in (
            (headers.request, request, request_remove),
            (headers.response, response, response_remove),
        ):
            adds, removes = _changes(changes)
            for key in removes:
                found.pop(key, None)
            found.update(adds)
            removed |= removes
            removed -= set(adds)
    if not (request or response or request_remove or response_remove):
        return None
    return HeaderRules(
        request_add=tuple(request[k] for k in sorted(request)),
        request_remove=tuple(sorted(request_remove)),
        response_add=tuple(response[k] for k in sorted(response)),
        response_remove=tuple(sorted(response_remove)),
    )


def combine(base: Optional[HeaderRules], own: HeaderRules) -> HeaderRules:
    """`own` over `base`: a header `own` sets or removes is no longer changed by `base`."""
    if base is None:
        return own
    own_request = {h.key for h in own.request_add} | set(own.request_remove)
    own_response = {h.key for h in own.response_add} | set(own.response_remove)
    return HeaderRules(
        request_add=tuple(
            sorted(
                (*(h for h in base.request_add if h.key not in own_request), *own.request_add),
                key=lambda h: h.key,
            )
        ),
        request_remove=tuple(
            sorted({*(k for k in base.request_remove if k not in own_request), *own.request_remove})
        ),
        response_add=tuple(
            sorted(
                (*(h for h in base.response_add if h.key not in own_response), *own.response_add),
                key=lambda h: h.key,
            )
        ),
        response_remove=tuple(
            sorted(
                {*(k for k in base.response_remove if k not in own_response), *own.response_remove}
            )
        ),
    )
