"""HTTP virtual hosts and their routes: checks independent of family, the route tables of
each http/https listener, and domains that two vhosts of one listener claim."""

from __future__ import annotations

from typing import Optional

from xdsgen.model.families import Family
from xdsgen.model.ir import Route, VirtualHost
from xdsgen.model.problems import Problems
from xdsgen.model.upstreams import check_reference
from xdsgen.model.values import domain_problem, duration, format_duration, path_problem
from xdsgen.schema_errors import suggest
from xdsgen.spec import Spec, VhostSpec

HTTPS_DEFAULT_PORT = 443
HTTP_DEFAULT_PORT = 80
REDIRECT_ROUTE = "redirect_to_https"
NO_TIMEOUT = "0s"
# Retried only when the request never reached a backend (refused, reset before it was
# sent, an HTTP/2 stream refused): safe for any method, a POST is never sent twice.
RETRY_ON = "connect-failure,refused-stream,reset-before-request"


def check(spec: Spec, problems: Problems) -> None:
    """Everything about a vhost that does not depend on the family it is served on."""
    for vhost in spec.http:
        _check_domains(vhost, problems)
        _check_tls(spec, vhost, problems)
        _check_routes(spec, vhost, problems)


def _check_domains(vhost: VhostSpec, problems: Problems) -> None:
    own: dict[str, int] = {}
    for d_index, domain in enumerate(vhost.domains):
        path = (*vhost.path, "domains", d_index)
        problem = domain_problem(domain)
        if problem:
            problems.error(path, problem)
        elif domain.lower() in own:
            # Envoy refuses the whole route configuration (names are case-insensitive).
            problems.error(
                path,
                f"domain {domain!r} is listed twice in this vhost (also "
                f"domains[{own[domain.lower()]}])",
                "list each name once",
            )
        own.setdefault(domain.lower(), d_index)


def _check_tls(spec: Spec, vhost: VhostSpec, problems: Problems) -> None:
    if vhost.tls is not None and vhost.tls not in spec.certificate_names:
        problems.error(
            (*vhost.path, "tls"),
            f"unknown certificate {vhost.tls!r}",
            suggest(vhost.tls, sorted(spec.certificate_names)) or "add it under certificates",
        )
    if vhost.tls and vhost.domains == ("*",):
        problems.error(
            (*vhost.path, "domains"),
            "a TLS vhost needs real host names: they are the SNI names of its filter chain",
        )
    elif vhost.tls and "*" in vhost.domains:
        problems.error(
            (*vhost.path, "domains", vhost.domains.index("*")),
            '"*" cannot be a TLS vhost\'s name: its domains are the SNI names of its '
            'filter chain, and Envoy refuses "*" there',
            'list the host names; serve "*" in a plain-HTTP vhost',
        )
    if vhost.redirect_to_https and not vhost.tls:
        problems.error(
            (*vhost.path, "redirect_to_https"),
            "redirect_to_https needs tls: there is no https vhost to redirect to",
        )


def _check_routes(spec: Spec, vhost: VhostSpec, problems: Problems) -> None:
    earlier: list[tuple[int, str, str]] = []  # (index, prefix or path, value)
    for route in vhost.routes:
        check_reference(spec, route.upstream, (*route.path, "upstream"), problems)
        if route.timeout is not None:
            duration(route.timeout, (*route.path, "timeout"), problems)
        for key, value in (("prefix", route.value), ("rewrite", route.rewrite)):
            key = route.match if key == "prefix" else key
            if value is not None:
                found = path_problem(key, value)
                if found:
                    problems.error((*route.path, key), *found)
        for e_index, e_kind, e_value in earlier:
            # An earlier prefix that starts this route's value, or the same exact path,
            # takes every request this route could match (first match wins).
            if (e_kind == "prefix" and route.value.startswith(e_value)) or (
                e_kind == route.match == "path" and e_value == route.value
            ):
                problems.warn(
                    route.path,
                    f"this route can never match: routes[{e_index}] ({e_kind} {e_value}) "
                    "matches first",
                    "move it above the catch-all route"
                    if e_value == "/"
                    else f"move it above routes[{e_index}]",
                )
                break
        earlier.append((route.index, route.match, route.value))


def _timeout(text: Optional[str]) -> Optional[str]:
    """The route's timeout in protobuf's form; a malformed one was reported by check()."""
    if text is None:
        return None
    try:
        return format_duration(text)
    except ValueError:
        return None


def virtual_host(vhost: VhostSpec, family: Family, for_tls: bool) -> VirtualHost:
    """The vhost as one listener serves it: on the plain listener of a family with an https
    port, redirect_to_https replaces its routes by one redirect to that port."""
    routes: list[Route] = []
    if vhost.redirect_to_https and not for_tls and family.https is not None:
        https_port = family.https
        routes.append(
            Route(
                name=REDIRECT_ROUTE,
                match="prefix",
                value="/",
                cluster=None,
                https_redirect=True,
                # Envoy keeps the Host's port in the redirect unless it is 80 (the backend
                # gets Host as sent, so no port is stripped before): another http port
                # must be replaced by 443 itself.
                redirect_port=None
                if https_port == HTTPS_DEFAULT_PORT and family.http in (None, HTTP_DEFAULT_PORT)
                else https_port,
            )
        )
    else:
        for route in vhost.routes:
            timeout = _timeout(route.timeout)
            routes.append(
                Route(
                    name=f"{route.index}",
                    match=route.match,
                    value=route.value,
                    cluster=route.upstream,
                    prefix_rewrite=route.rewrite,
                    websocket=route.websocket,
                    timeout=timeout,
                    retries=route.retries,
                    retry_on=RETRY_ON if route.retries else None,
                    idle_timeout=streaming_idle_timeout(route.websocket, timeout),
                )
            )
    return VirtualHost(
        name=f"vhost{vhost.index}_{vhost.domains[0]}".replace("*", "any"),
        domains=vhost.domains,
        routes=tuple(routes),
        certificate=vhost.tls,
        index=vhost.index,
    )


def streaming_idle_timeout(websocket: bool, timeout: Optional[str]) -> Optional[str]:
    """A WebSocket or a route without a response timeout (long polling, downloads) may be
    silent longer than Envoy's stream idle timeout (5 minutes): such routes get none."""
    return NO_TIMEOUT if websocket or timeout == NO_TIMEOUT else None


def check_domain_clashes(served: list[tuple[str, VhostSpec, str]], problems: Problems) -> None:
    """A domain may be in one vhost per listener. `served`: (listener, vhost, family) for
    every vhost a listener serves. One clash is one error, naming its families."""
    owners: dict[tuple[str, str], VhostSpec] = {}  # (listener, domain) -> first vhost
    clashes: dict[tuple[int, int, int], set[str]] = {}  # (vhost, domain index, other)
    by_index: dict[int, VhostSpec] = {}
    for listener, vhost, family in sorted(served, key=lambda item: (item[1].index, item[0])):
        by_index[vhost.index] = vhost
        for d_index, domain in enumerate(vhost.domains):
            first = owners.setdefault((listener, domain.lower()), vhost)
            if first.index != vhost.index:
                clashes.setdefault((vhost.index, d_index, first.index), set()).add(family)
    for (index, d_index, other), families in sorted(clashes.items()):
        vhost = by_index[index]
        problems.error(
            (*vhost.path, "domains", d_index),
            f"domain {vhost.domains[d_index]!r} is already served by http[{other}] on "
            f"{' and '.join(sorted(families))}",
            "a domain may be in one vhost per listener",
        )
