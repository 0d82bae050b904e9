"""ACME on the listeners: http-01 tokens answered by Envoy itself, and vhosts whose
certificate has not been obtained yet.

Both are changes of a built model, made while a certificate is obtained (xdsgen/live/
acme_step.py), never written in the inventory:

- `with_challenges`: an exact-path route `/.well-known/acme-challenge/<token>` answering
  the key authorization (200, text/plain) goes first in the vhost of its domain on every
  http listener, ahead of the https redirect (Let's Encrypt follows no redirect to another
  port, and none to https before the certificate exists). A family whose http listener
  does not serve that vhost gets a vhost of its own for the domain: the CA may come over
  either family.
- `without_certificates`: an acme: certificate whose files do not exist yet cannot be
  loaded by Envoy (it would refuse the listener). Its TLS chains and its vhosts leave the
  https listeners (the listener itself when nothing is left on it) until it is obtained.
  On the http listeners its vhosts stay, so that the CA reaches the challenge there; a
  vhost with redirect_to_https answers 503 instead of redirecting to an https listener
  that cannot serve it, and never serves its routes in cleartext (the inventory asked
  for TLS). A vhost without redirect_to_https is served on http as the inventory says.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from xdsgen.model.families import Family
from xdsgen.model.ir import Listener, Model, Route, RouteConfig, VirtualHost
from xdsgen.model.problems import Problems
from xdsgen.spec import Spec

CHALLENGE_ROUTE = "acme_challenge"
CHALLENGE_STATUS = 200
CHALLENGE_VHOST_PREFIX = "acme_"
PENDING_ROUTE = "certificate_pending"
PENDING_STATUS = 503
PENDING_BODY = (
    "This site's certificate has not been obtained yet: https is not available. "
    "Try again in a few minutes.\n"
)


class Challenge(Protocol):
    """An http-01 challenge (xdsgen.acme.challenges.Http01Challenge has this shape)."""

    @property
    def domain(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def key_authorization(self) -> str: ...


def check(spec: Spec, families: dict[str, Family], problems: Problems) -> None:
    """http-01 is answered on the http listeners: a certificate needs at least one."""
    if any(f.http is not None for f in families.values()):
        return
    for name, entry in spec.certificates.items():
        if entry.acme is not None and entry.acme.challenge == "http-01":
            problems.error(
                (*entry.acme.path, "challenge"),
                f"http-01 for certificate {name!r} is answered by Envoy's http listener, "
                "and no family has an http port",
                "add listen.ipv4.http: 80 (the CA asks on port 80), or use challenge: dns-01",
            )


def missing_certificates(model: Model) -> tuple[str, ...]:
    """The acme: certificates Envoy is given whose files do not both exist yet."""
    used = {s.name for s in model.secrets}
    return tuple(
        sorted(
            c.name
            for c in model.certificates
            if c.acme is not None
            and c.name in used
            and not (os.path.isfile(c.cert) and os.path.isfile(c.key))
        )
    )


def pending_message(name: str) -> str:
    return (
        f"certificate {name!r} has not been obtained yet: until it is, its vhosts are not on "
        "the https listeners, and those with redirect_to_https answer 503 on http"
    )


def without_certificates(model: Model, names: Iterable[str]) -> Model:
    """The model without the TLS chains, https vhosts and secrets of `names`."""
    pending = set(names)
    if not pending:
        return model
    listeners = []
    for listener in model.listeners:
        chains = tuple(c for c in listener.filter_chains if c.secret not in pending)
        if listener.kind == "https" and not chains:
            continue  # nothing left to serve: no listener (it comes back with the certificate)
        listeners.append(replace(listener, filter_chains=chains))
    used_routes = {item.route_config for item in listeners if item.route_config}
    route_configs = []
    for rc in model.route_configs:
        if rc.name not in used_routes:
            continue
        route_configs.append(
            replace(rc, virtual_hosts=_pending_vhosts(rc, pending, _is_tls(rc, listeners)))
        )
    return replace(
        model,
        listeners=tuple(listeners),
        route_configs=tuple(route_configs),
        secrets=tuple(s for s in model.secrets if s.name not in pending),
    )


def _is_tls(rc: RouteConfig, listeners: list[Listener]) -> bool:
    return any(item.route_config == rc.name and item.kind == "https" for item in listeners)


def _pending_vhosts(rc: RouteConfig, pending: set[str], tls: bool) -> tuple[VirtualHost, ...]:
    vhosts = []
    for vhost in rc.virtual_hosts:
        if vhost.certificate not in pending:
            vhosts.append(vhost)
        elif tls:
            continue
        elif any(r.https_redirect for r in vhost.routes):
            waiting = Route(
                name=PENDING_ROUTE,
                match="prefix",
                value="/",
                cluster=None,
                direct_status=PENDING_STATUS,
                direct_body=PENDING_BODY,
            )
            vhosts.append(replace(vhost, routes=(waiting,)))
        else:
            vhosts.append(vhost)
    return tuple(vhosts)


def with_challenges(model: Model, challenges: Iterable[Challenge]) -> Model:
    """The model answering every challenge on every http listener, ahead of other routes."""
    wanted = list(challenges)
    if not wanted:
        return model
    http_routes = {item.route_config for item in model.listeners if item.kind == "http"}
    route_configs = tuple(
        _with_challenges(rc, wanted) if rc.name in http_routes else rc for rc in model.route_configs
    )
    return replace(model, route_configs=route_configs)


def _challenge_route(challenge: Challenge) -> Route:
    return Route(
        name=CHALLENGE_ROUTE,
        match="path",
        value=challenge.path,
        cluster=None,
        direct_status=CHALLENGE_STATUS,
        direct_body=challenge.key_authorization,
    )


def _with_challenges(rc: RouteConfig, challenges: list[Challenge]) -> RouteConfig:
    by_domain: dict[str, list[Route]] = {}
    for challenge in challenges:
        by_domain.setdefault(challenge.domain.lower(), []).append(_challenge_route(challenge))
    vhosts = []
    for vhost in rc.virtual_hosts:
        routes = [r for d in vhost.domains for r in by_domain.pop(d.lower(), [])]
        vhosts.append(replace(vhost, routes=(*routes, *vhost.routes)) if routes else vhost)
    for domain, routes in sorted(by_domain.items()):
        vhosts.append(VirtualHost(f"{CHALLENGE_VHOST_PREFIX}{domain}", (domain,), tuple(routes)))
    return replace(rc, virtual_hosts=tuple(vhosts))


def challenge_listeners(model: Model, path: str) -> list[Listener]:
    """The http listeners whose routes answer `path` directly (to check each one)."""
    answering = {
        rc.name
        for rc in model.route_configs
        if any(r.value == path and r.direct_status for v in rc.virtual_hosts for r in v.routes)
    }
    return [
        item for item in model.listeners if item.kind == "http" and item.route_config in answering
    ]
