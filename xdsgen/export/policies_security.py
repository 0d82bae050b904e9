"""SecurityPolicy (gateway.envoyproxy.io/v1alpha1): who may reach what (issue 14).

Per route rule (by sectionName; rules of a kind alike share one policy, named after the first):
- `allow`: authorization with defaultAction Deny and one Allow rule with the CIDRs as
  principal.clientCIDRs: the client address Envoy Gateway detects, which is the
  connection's own, or with trusted_proxies the one from X-Forwarded-For (as xdsgen's
  remote_ip); refused requests get 403 as in xdsgen;
- basic auth: basicAuth with the htpasswd file in a Secret (key `.htpasswd`), read now
  like the certificates (the export then holds secrets: -o writes it 0600);
- forward auth: extAuth.http to a Backend for the auth service, the URL's path as prefix
  (Envoy appends the request's path, as in xdsgen), headersToBackend, a timeout of 1s
  and fail closed (403).
TCP maps: authorization on the TCPRoute (Envoy's network RBAC filter, which decides on
the client's first byte: said as a difference). TLS passthrough and UDP maps have no
SecurityPolicy in Envoy Gateway: reported.
"""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any, Optional

from xdsgen.export.pages import EG_API, EG_GROUP

if TYPE_CHECKING:
    from xdsgen.export.context import Context, Rule
    from xdsgen.export.features import Authenticator

HTPASSWD_KEY = ".htpasswd"  # the key Envoy Gateway reads users from
FAIL_CLOSED_STATUS = 403
# What xdsgen sends the auth service besides what Envoy always sends (Host, method, path,
# Content-Length, Authorization); X-Forwarded-For and -Proto as Envoy set them.
HEADERS_TO_AUTH = (
    "accept",
    "cookie",
    "proxy-authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
)


def security_objects(ctx: Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the policies and the auth services' Backends, the basic auth Secrets)."""
    groups: dict[str, tuple[dict[str, Any], list[Rule]]] = {}
    used: set[str] = set()
    for rule in sorted(ctx.rules, key=lambda r: (r.kind, r.route, r.name)):
        spec = _rule_spec(ctx, rule, used)
        if spec:
            groups.setdefault(rule.kind + json.dumps(spec, sort_keys=True), (spec, []))[1].append(
                rule
            )
    policies = []
    for spec, rules in groups.values():
        first = rules[0]
        refs = [r.ref() for r in rules]
        if first.kind == "TCPRoute":  # one rule per TCPRoute: the whole route
            refs = [{k: v for k, v in ref.items() if k != "sectionName"} for ref in refs]
        policies.append(
            {
                "apiVersion": EG_API,
                "kind": "SecurityPolicy",
                "metadata": ctx.meta(ctx.object_names(f"{first.route}-{first.name}")),
                "spec": {"targetRefs": refs, **spec},
            }
        )
    backends: list[dict[str, Any]] = []
    secrets: list[dict[str, Any]] = []
    for name in sorted(used):
        auth = ctx.source.authenticators[name]
        if auth.kind == "basic":
            secret = _users_secret(ctx, auth)
            if secret is not None:
                secrets.append(secret)
        else:
            backends += _auth_backend(ctx, auth)
    return policies + backends, secrets


def _rule_spec(ctx: Context, rule: Rule, used: set[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if rule.http is not None:
        route = rule.http
        auth = ctx.source.authenticators.get(route.auth) if route.auth else None
        if auth is not None:
            used.add(auth.name)
            if auth.kind == "basic":
                spec["basicAuth"] = {"users": {"name": users_secret_name(ctx, auth.name)}}
            else:
                spec["extAuth"] = _ext_auth(ctx, auth)
        if route.allow is not None:
            spec["authorization"] = _authorization(route.allow)
            if auth is not None:
                ctx.report.behaviour(
                    route.path,
                    f"clients outside the allow list ({route.allow_label}) are asked to log in "
                    f"({auth.name}) before they are refused: Envoy Gateway checks the login "
                    "first, xdsgen the address",
                )
        return spec
    key = f"{rule.path}.allow"
    if rule.allow is None:
        return spec
    ctx.carried.add(key)
    if rule.kind == "TCPRoute":
        ctx.report.access(
            key,
            "Envoy Gateway refuses a client outside the allow list when it sends its first "
            "byte, after it has connected the upstream: a server that speaks first (an SSH "
            "banner) answers refused clients; xdsgen closes their connection at once",
            resource=f"TCPRoute/{rule.route}",
        )
        spec["authorization"] = _authorization(rule.allow)
    else:
        what = "TLS passthrough" if rule.kind == "TLSRoute" else "a UDP map"
        ctx.report.access(
            key,
            f"not exported: Envoy Gateway has no allow list for {what} (SecurityPolicy "
            f"takes no {rule.kind}): every client reaches {rule.upstream}",
            resource=f"{rule.kind}/{rule.route}",
        )
    return spec


def _authorization(cidrs: tuple[str, ...]) -> dict[str, Any]:
    return {
        "defaultAction": "Deny",
        "rules": [{"action": "Allow", "principal": {"clientCIDRs": list(cidrs)}}],
    }


def _ext_auth(ctx: Context, auth: Authenticator) -> dict[str, Any]:
    from xdsgen.export.routes import gateway_duration

    http: dict[str, Any] = {"backendRefs": [_auth_backend_ref(ctx, auth)]}
    if auth.path_prefix:
        http["path"] = auth.path_prefix
    if auth.headers_to_upstream:
        http["headersToBackend"] = list(auth.headers_to_upstream)
    ctx.report.behaviour(
        f"{auth.path}.forward",
        "the auth service is not sent X-Forwarded-Host, X-Forwarded-Uri and "
        "X-Forwarded-Method (it gets the request's Host, its path after the URL's, and its "
        "method), and a Set-Cookie it sends with a yes does not reach the client",
        "check that the auth service works with what Envoy Gateway sends",
    )
    return {
        "http": http,
        "headersToExtAuth": list(HEADERS_TO_AUTH),
        "timeout": gateway_duration(auth.timeout)[0],
        "failOpen": False,
        "statusOnError": FAIL_CLOSED_STATUS,
    }


def users_secret_name(ctx: Context, auth_name: str) -> str:
    return ctx.object_names(f"{ctx.gateway}-users-{auth_name}")


def _users_secret(ctx: Context, auth: Authenticator) -> Optional[dict[str, Any]]:
    """The htpasswd file as an Opaque Secret, or None (and a difference) when unreadable."""
    name = users_secret_name(ctx, auth.name)
    path = str(auth.users_file)
    problem = ""
    try:
        with open(path, "rb") as handle:
            data = handle.read(1024 * 1024 + 1)
        if len(data) > 1024 * 1024:
            problem = f"{path} is larger than 1 MiB"
    except OSError as exc:
        problem = f"{path}: {exc.strerror or exc}"
    if problem:
        namespace = f" -n {ctx.namespace}" if ctx.namespace else ""
        ctx.report.access(
            f"{auth.path}.basic",
            f"{problem}: Secret {name} is not in the output, and Envoy Gateway refuses the "
            "routes that use it until it exists",
            f"kubectl create secret generic {name} --from-file={HTPASSWD_KEY}="
            f"{os.path.basename(path) or 'HTPASSWD'}{namespace}",
            resource=f"Secret/{name}",
        )
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": ctx.meta(name),
        "type": "Opaque",
        "data": {HTPASSWD_KEY: base64.b64encode(data).decode("ascii")},
    }


def _auth_backend_ref(ctx: Context, auth: Authenticator) -> dict[str, Any]:
    return {
        "group": EG_GROUP,
        "kind": "Backend",
        "name": ctx.backend_names(f"{ctx.gateway}-auth-{auth.name}"),
    }


def _auth_backend(ctx: Context, auth: Authenticator) -> list[dict[str, Any]]:
    """The auth service as a Backend, and its BackendTLSPolicy for https://."""
    from xdsgen.export.backends import backend_endpoint

    ref = _auth_backend_ref(ctx, auth)
    endpoint, loopback = backend_endpoint(auth.host, auth.port)
    if loopback:
        ctx.report.access(
            f"{auth.path}.forward.url",
            f"{auth.host} is the machine the inventory was written for; Envoy Gateway in "
            "Kubernetes refuses loopback backends, so every request that needs this login "
            "is refused",
            "use the auth service's LAN address or an in-cluster Service",
            resource=f"Backend/{ref['name']}",
        )
    objects = [
        {
            "apiVersion": EG_API,
            "kind": "Backend",
            "metadata": ctx.meta(ref["name"]),
            "spec": {"endpoints": [endpoint]},
        }
    ]
    if auth.tls:
        objects.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "BackendTLSPolicy",
                "metadata": ctx.meta(ctx.object_names(f"{ref['name']}-tls")),
                "spec": {
                    "targetRefs": [{"group": EG_GROUP, "kind": "Backend", "name": ref["name"]}],
                    "validation": {
                        "wellKnownCACertificates": "System",
                        "hostname": str(auth.sni or auth.host),
                    },
                },
            }
        )
    return objects
