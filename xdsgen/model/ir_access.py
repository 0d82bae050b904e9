"""The IR of access (issue 14): who may reach what, authenticators and header changes, as
model/access.py, auth.py and headers.py decide them (ir.py re-exports these)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Cidr:
    address: str  # the network's first address
    prefix_len: int

    def __str__(self) -> str:
        return f"{self.address}/{self.prefix_len}"


@dataclass(frozen=True)
class HeaderValue:
    key: str  # lower case
    value: str  # Envoy's header value format: a literal % is written %%
    action: str  # OVERWRITE_IF_EXISTS_OR_ADD or ADD_IF_ABSENT


@dataclass(frozen=True)
class HeaderRules:
    request_add: tuple[HeaderValue, ...] = ()
    request_remove: tuple[str, ...] = ()
    response_add: tuple[HeaderValue, ...] = ()
    response_remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class PerFilter:
    """A route's setting for one HTTP filter of its connection manager."""

    filter: str  # the filter's name in http_filters
    kind: str  # allow, basic, forward (turn it on), off, strip
    cidrs: tuple[Cidr, ...] = ()  # allow
    principal: str = "direct_remote_ip"  # allow: or remote_ip behind trusted proxies
    users: str = ""  # basic: the htpasswd file Envoy reads
    users_version: str = ""  # basic: its content's hash, so a changed file changes the RDS
    headers: tuple[str, ...] = ()  # strip: request headers removed before the auth check
    label: str = ""  # for people: the networks or the authenticator, as the inventory says


@dataclass(frozen=True)
class ForwardAuth:
    """An ext_authz HTTP service (Authelia, Authentik, oauth2-proxy)."""

    name: str  # the authenticator's name
    cluster: str
    uri: str
    path_prefix: str
    timeout: str
    headers_to_upstream: tuple[str, ...]  # lower case


@dataclass(frozen=True)
class HttpFilter:
    """An HTTP filter before the router; basic and forward are off unless a route turns
    them on (PerFilter)."""

    name: str
    kind: str  # rbac, strip, basic, forward
    forward: Optional[ForwardAuth] = None
    scheme: str = "http"  # forward: X-Forwarded-Proto told to the auth service
