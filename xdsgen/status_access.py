"""`xdsgen status`'s access table (issue 14): per listener, who may use it, who must log
in, and how many Envoy turned away since it started (its own counters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xdsgen.model import Listener, Model

ALLOW_WIDTH = 26  # the table stays within 80 columns
AUTH_WIDTH = 12


@dataclass
class AccessRow:
    listener: str
    allow: str  # who may: "3 of 5 routes", "192.168.1.0/24, fd00::/8"
    auth: str  # the authenticators asked ("" for none)
    not_allowed: int  # refused by allow (403, closed, dropped)
    auth_refused: int  # refused by an authenticator, or with it unreachable


def _count(stats: dict[str, Any], name: str) -> int:
    try:
        return int(stats.get(name) or 0)
    except (TypeError, ValueError):
        return 0


def _short(text: str, width: int = ALLOW_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def rows(model: Model, stats: dict[str, Any]) -> list[AccessRow]:
    found = []
    for listener in model.listeners:
        row = _row(model, listener, stats)
        if row is not None:
            found.append(row)
    return found


def _row(model: Model, listener: Listener, stats: dict[str, Any]) -> AccessRow | None:
    name = listener.name
    if listener.kind == "udp":
        if not listener.udp_sources:
            return None
        allow = ", ".join(str(c) for c in listener.udp_sources)
        refused = _count(stats, f"udp.{listener.stat_prefix}.downstream_sess_no_route")
        return AccessRow(name, _short(allow), "", refused, 0)
    sourced = [c for c in listener.filter_chains if c.sources]
    closed = _count(stats, f"listener.{listener.stat_prefix}.no_filter_chain_match")
    if listener.kind == "tcp":
        if not sourced:
            return None
        allow = ", ".join(str(c) for c in sourced[0].sources)
        return AccessRow(name, _short(allow), "", closed, 0)
    rc = next((r for r in model.route_configs if r.name == listener.route_config), None)
    routes = [route for vhost in (rc.virtual_hosts if rc else ()) for route in vhost.routes]
    restricted = sum(1 for r in routes if any(f.kind == "allow" for f in r.filters))
    auths = sorted({f.label for r in routes for f in r.filters if f.kind in ("basic", "forward")})
    if not (restricted or auths or sourced):
        return None
    parts = [f"{restricted}/{len(routes)} routes"] if routes else []
    if sourced:
        parts.append(f"{len(sourced)} passthrough")
    prefix = f"http.{listener.stat_prefix}."
    refused_auth = _count(stats, prefix + "basic_auth.denied") + sum(
        _count(stats, prefix + f"ext_authz.{auth}.{outcome}")
        for auth in auths
        for outcome in ("denied", "error")
    )
    # A passthrough's refusals are the listener's closed connections (an unknown SNI too).
    not_allowed = _count(stats, prefix + "rbac.denied") + (closed if sourced else 0)
    return AccessRow(
        name,
        _short(", ".join(parts)),
        _short(", ".join(auths), AUTH_WIDTH),
        not_allowed,
        refused_auth,
    )
