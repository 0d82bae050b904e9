"""Header changes (hsts, security_headers, headers:) as the standard HTTPRoute filters
RequestHeaderModifier and ResponseHeaderModifier, one of each per rule.

Values stay in Envoy's header format (a literal % written %%): Envoy Gateway copies them
into the route's headers_to_add, which Envoy reads as a format string. What Gateway API
cannot say is reported: "add where absent" (security_headers) has no filter of its own,
so those headers are appended (`add`), and a header value cannot be empty.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from xdsgen import conventions as xds
from xdsgen.export.features import HeaderChanges

if TYPE_CHECKING:
    from xdsgen.export.context import Context
    from xdsgen.export.source import Route

# What xdsgen's route configurations tell every backend besides X-Forwarded-For (the
# ClientTrafficPolicy's) and X-Forwarded-Proto (Envoy's own): set on every rule, in Envoy's
# format like the other values, replacing whatever the client sent.
CLIENT_HEADERS = ((xds.REAL_IP_HEADER, xds.XFF_VALUE), (xds.PORT_HEADER, xds.PORT_VALUE))
MAX_HEADERS = 16  # HTTPHeaderFilter set/add/remove maxItems (gateway-api v1.6.1)
_CONTENT_TYPE = "content-type"


def header_filters(ctx: Context, route: Route, resource: str) -> list[dict[str, Any]]:
    changes = route.headers or HeaderChanges()
    if route.direct_status is None:
        own = {name for name, _ in changes.request_set} | set(changes.request_remove)
        client = tuple(pair for pair in CLIENT_HEADERS if pair[0] not in own)
        changes = replace(changes, request_set=(*client, *changes.request_set))
    if route.direct_status is not None:
        # The maintenance page's content type is the HTTPRouteFilter's contentType.
        changes = changes.without_response(_CONTENT_TYPE)
    filters = []
    for side, kind, set_pairs, absent_pairs, removed in (
        (
            "request",
            "RequestHeaderModifier",
            changes.request_set,
            changes.request_add_if_absent,
            changes.request_remove,
        ),
        (
            "response",
            "ResponseHeaderModifier",
            changes.response_set,
            changes.response_add_if_absent,
            changes.response_remove,
        ),
    ):
        modifier: dict[str, Any] = {}
        for key, pairs in (("set", set_pairs), ("add", absent_pairs)):
            entries = [
                {"name": name, "value": value}
                for name, value in pairs
                if _usable(ctx, route, resource, side, name, value)
            ]
            if entries:
                modifier[key] = _limited(ctx, route, resource, side, key, entries)
        if absent_pairs:
            names = ", ".join(name for name, _ in absent_pairs)
            ctx.report.behaviour(
                route.path,
                f"{names} are added to every {side}, also where the backend sent its own: "
                "Gateway API can set or append a header, not add it only where absent (the "
                "backend's own value then comes with a second one)",
                resource=resource,
            )
        if removed:
            modifier["remove"] = _limited(ctx, route, resource, side, "remove", list(removed))
        if modifier:
            key = "requestHeaderModifier" if side == "request" else "responseHeaderModifier"
            filters.append({"type": kind, key: modifier})
    return filters


def _usable(ctx: Context, route: Route, resource: str, side: str, name: str, value: str) -> bool:
    if value:
        return True
    ctx.report.behaviour(
        route.path,
        f"{side} header {name} is set to an empty value: Gateway API header values cannot be "
        "empty, so it is left out",
        resource=resource,
    )
    return False


def _limited(
    ctx: Context, route: Route, resource: str, side: str, key: str, entries: list[Any]
) -> list[Any]:
    if len(entries) <= MAX_HEADERS:
        return entries
    left_out = entries[MAX_HEADERS:]
    names = ", ".join(str(e["name"] if isinstance(e, dict) else e) for e in left_out)
    ctx.report.behaviour(
        route.path,
        f"{len(entries)} {side} headers to {key}, and a Gateway API filter takes at most "
        f"{MAX_HEADERS}: {names} left out",
        resource=resource,
    )
    return entries[:MAX_HEADERS]
