"""Upstreams: one Envoy cluster each (same name, so Envoy's stats name the service)."""

from __future__ import annotations

from typing import Optional

from xdsgen.errors import PathKey
from xdsgen.hints import endpoint_hint, inline_upstream_hint
from xdsgen.model.ir import Cluster, Endpoint, UpstreamTls
from xdsgen.model.problems import Problems
from xdsgen.model.values import domain_problem, duration, is_ip, parse_endpoint
from xdsgen.schema_errors import suggest
from xdsgen.spec import Spec, UpstreamSpec, UpstreamTlsSpec

STATIC = "STATIC"
STRICT_DNS = "STRICT_DNS"
# A router's LAN names often have only an A record; prefer it over a missing AAAA.
DNS_LOOKUP_FAMILY = "V4_PREFERRED"


def build(spec: Spec, problems: Problems) -> dict[str, Cluster]:
    clusters: dict[str, Cluster] = {}
    lowered: dict[str, str] = {}
    for name, upstream in spec.upstreams.items():
        if name.lower() in lowered:
            problems.error(
                upstream.path,
                f"upstream {name!r} differs from {lowered[name.lower()]!r} only in case",
                "Envoy stats and people confuse them; rename one",
            )
        lowered[name.lower()] = name
        cluster = _cluster(upstream, problems)
        if cluster is not None:
            clusters[name] = cluster
    return clusters


def _cluster(upstream: UpstreamSpec, problems: Problems) -> Optional[Cluster]:
    endpoints: list[Endpoint] = []
    for text, path in upstream.endpoints:
        parsed = parse_endpoint(text)
        if isinstance(parsed, str):
            problems.error(path, parsed, endpoint_hint(text))
        elif parsed in endpoints:
            problems.error(
                path,
                f"{text!r} is listed twice (as {parsed.host}:{parsed.port})",
                "list each endpoint once",
            )
        else:
            endpoints.append(parsed)
    if not endpoints:
        return None
    static = all(is_ip(e.host) for e in endpoints)
    if not static and any(is_ip(e.host) for e in endpoints):
        problems.error(
            (*upstream.path, "endpoints"),
            "mixes IP addresses and host names",
            "Envoy resolves either all endpoints by DNS or none; split into two upstreams",
        )
    tls = _tls(upstream.tls, endpoints, problems) if upstream.tls else None
    return Cluster(
        name=upstream.name,
        discovery=STATIC if static else STRICT_DNS,
        endpoints=tuple(endpoints),
        connect_timeout=duration(
            upstream.connect_timeout, (*upstream.path, "connect_timeout"), problems
        )
        or "5s",
        tls=tls,
        dns_lookup_family=None if static else DNS_LOOKUP_FAMILY,
    )


def _tls(spec: UpstreamTlsSpec, endpoints: list[Endpoint], problems: Problems) -> UpstreamTls:
    sni = spec.sni
    if sni is not None and domain_problem(sni):
        problems.error((*spec.path, "sni"), str(domain_problem(sni)))
    elif sni is not None and "*" in sni:
        problems.error(
            (*spec.path, "sni"), f"SNI {sni!r} is a wildcard", "send the upstream's real host name"
        )
    if not spec.verify:
        problems.warn(
            (*spec.path, "verify"),
            "upstream certificate verification is off: anyone on the path to "
            f"{endpoints[0].host} can read and change the traffic",
            "set tls.ca to the device's CA (or its self-signed certificate) instead",
        )
    elif spec.ca_written:
        problems.require_absolute((*spec.path, "ca"), spec.ca)
    hostnames = sorted({e.host for e in endpoints if not is_ip(e.host)})
    if sni is None and len(hostnames) == 1:
        # Without SNI the certificate's names are never checked: any certificate the CA
        # signed would do. The one host name dialled is the name to expect.
        sni = hostnames[0]
    if spec.verify and sni is None:
        problems.error(
            spec.path,
            "cannot verify the upstream's certificate without a name",
            "set tls.sni to the name in its certificate, or verify: false",
        )
    return UpstreamTls(sni=sni, verify=spec.verify, ca=spec.ca if spec.verify else None)


def check_reference(spec: Spec, name: str, path: PathKey, problems: Problems) -> bool:
    """Whether `name` is an upstream; an error with the likely meant one if not."""
    if name in spec.upstream_names:
        return True
    if not spec.upstreams_readable:
        return False
    hint = inline_upstream_hint(name) or suggest(name, sorted(spec.upstream_names))
    problems.error(path, f"unknown upstream {name!r}", hint)
    return False


def unused_message(name: str) -> str:
    return f"upstream {name!r} is not used by any route, port map or passthrough"


def check_unused(spec: Spec, used: set[str], problems: Problems) -> None:
    """An upstream nothing routes to is often a typo elsewhere, or left over."""
    for name, upstream in spec.upstreams.items():
        if name not in used:
            problems.warn(upstream.path, unused_message(name), "remove it, or route to it")
