"""Envoy Gateway objects for the upstreams and for what xdsgen sets on every Envoy.

- `Backend` (gateway.envoyproxy.io/v1alpha1) per upstream: the upstreams of a home router
  are outside the cluster. Envoy Gateway serves Backends only with
  `extensionApis.enableBackend: true` in its configuration, and refuses loopback addresses
  unless it runs on the host (not in Kubernetes).
- BackendTLSPolicy (gateway.networking.k8s.io/v1) for upstream TLS that verifies, with the
  system CA bundle or the inventory's own CA file in a ConfigMap; `verify: false` becomes
  the Backend's own `tls.insecureSkipVerify`, which BackendTLSPolicy cannot express.
- BackendTrafficPolicy: round robin (Envoy Gateway's default is least request) and the
  connect timeouts; ClientTrafficPolicy: the client's own X-Forwarded-For dropped before
  Envoy adds the real address (as xdsgen's route configs do), and the connection limit.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from xdsgen.export.context import GATEWAY_API, GATEWAY_GROUP
from xdsgen.export.routes import gateway_duration
from xdsgen.export.source import DEFAULT_CONNECT_TIMEOUT_TEXT

if TYPE_CHECKING:
    from xdsgen.export.context import Context

EG_API = "gateway.envoyproxy.io/v1alpha1"
# Backend.spec.endpoints[].ip.address in Envoy Gateway v1.9.0's CRD.
_EG_IP = re.compile(
    r"^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$"
    r"|^(([0-9a-fA-F]{1,4}:){1,7}[0-9a-fA-F]{1,4}|::|(([0-9a-fA-F]{1,4}:){0,5})?"
    r"(:[0-9a-fA-F]{1,4}){1,2})$"
)


def _ip_text(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return str(ip) if _EG_IP.match(str(ip)) else ip.exploded


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def backend_objects(ctx: Context) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    for name in ctx.used_upstreams():
        upstream = ctx.source.upstreams[name]
        ref = ctx.backend_ref(name)
        endpoints = []
        for host, port in upstream.endpoints:
            if _is_ip(host):
                endpoints.append({"ip": {"address": _ip_text(host), "port": port}})
                loopback = ipaddress.ip_address(host).is_loopback
            else:
                endpoints.append({"fqdn": {"hostname": host, "port": port}})
                loopback = host == "localhost"
            if loopback:
                ctx.report.access(
                    upstream.path,
                    f"{host} is the machine the inventory was written for; Envoy Gateway in "
                    "Kubernetes refuses loopback backends, so routes to it answer 500",
                    "use the service's LAN address or an in-cluster Service",
                    resource=f"Backend/{ref['name']}",
                )
        spec: dict[str, Any] = {"endpoints": endpoints}
        if upstream.tls and not upstream.tls_verify:
            tls: dict[str, Any] = {"insecureSkipVerify": True}
            if upstream.tls_sni:
                tls["sni"] = upstream.tls_sni
            spec["tls"] = tls
        objects.append(
            {
                "apiVersion": EG_API,
                "kind": "Backend",
                "metadata": ctx.meta(ref["name"]),
                "spec": spec,
            }
        )
        if upstream.tls and upstream.tls_verify:
            policies += _backend_tls(ctx, name, ref["name"])
    return objects + policies


def _backend_tls(ctx: Context, upstream_name: str, backend: str) -> list[dict[str, Any]]:
    from xdsgen.export.secrets import read_pem

    upstream = ctx.source.upstreams[upstream_name]
    name = ctx.object_names(f"{backend}-tls")
    validation: dict[str, Any] = {}
    objects = []
    if upstream.tls_ca_is_system:
        validation["wellKnownCACertificates"] = "System"
    else:
        config_map = ctx.object_names(f"{backend}-ca")
        validation["caCertificateRefs"] = [{"group": "", "kind": "ConfigMap", "name": config_map}]
        text, problem = read_pem(str(upstream.tls_ca), "CA bundle")
        if text is None:
            ctx.report.access(
                f"{upstream.path}.tls.ca",
                f"{problem}: ConfigMap {config_map} is not in the output, and Envoy Gateway "
                f"cannot reach {upstream_name} over TLS until it exists",
                f"kubectl create configmap {config_map} --from-file=ca.crt=CA_BUNDLE",
                resource=f"ConfigMap/{config_map}",
            )
        else:
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": ctx.meta(config_map),
                    "data": {"ca.crt": text},
                }
            )
    validation["hostname"] = str(upstream.tls_sni)
    policy = {
        "apiVersion": GATEWAY_API,
        "kind": "BackendTLSPolicy",
        "metadata": ctx.meta(name),
        "spec": {
            "targetRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": backend}],
            "validation": validation,
        },
    }
    return [policy, *objects]


# --------------------------------------------------------------------------- policies


def policy_objects(ctx: Context) -> list[dict[str, Any]]:
    if not ctx.listeners:
        return []
    gateway_ref = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": ctx.gateway}
    default_timeout = gateway_duration(DEFAULT_CONNECT_TIMEOUT_TEXT)[0]
    objects = []
    client: dict[str, Any] = {"targetRefs": [gateway_ref]}
    if any(gl.protocol in ("HTTP", "HTTPS") for gl in ctx.listeners.values()):
        # Removed before Envoy's own handling, which then sets it to the client's address.
        client["headers"] = {"earlyRequestHeaders": {"remove": ["X-Forwarded-For"]}}
    client["connection"] = {"connectionLimit": {"value": ctx.source.envoy.max_connections}}
    objects.append(
        {
            "apiVersion": EG_API,
            "kind": "ClientTrafficPolicy",
            "metadata": ctx.meta(ctx.object_names(f"{ctx.gateway}-clients")),
            "spec": client,
        }
    )
    objects.append(_traffic_policy(ctx, f"{ctx.gateway}-upstreams", [gateway_ref], default_timeout))
    # A route's policy replaces the Gateway's (no merging), so it repeats the round robin.
    by_timeout: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for kind, route, rule, upstream_name in sorted(set(ctx.rule_upstreams)):
        upstream = ctx.source.upstreams[upstream_name]
        duration, exact = gateway_duration(upstream.connect_timeout)
        if not exact:
            ctx.report.behaviour(
                f"{upstream.path}.connect_timeout",
                f"{upstream.connect_timeout} becomes {duration}: Gateway API durations count "
                "whole milliseconds",
            )
        if duration == default_timeout:
            continue
        ref = {"group": GATEWAY_GROUP, "kind": kind, "name": route, "sectionName": rule}
        by_timeout.setdefault((duration, kind), []).append(ref)
    for (duration, kind), refs in sorted(by_timeout.items()):
        wish = f"{ctx.gateway}-connect-{duration}-{kind.lower()}"
        for start in range(0, len(refs), 16):
            chunk = refs[start : start + 16]
            name = wish if len(refs) <= 16 else f"{wish}-{start // 16}"
            objects.append(_traffic_policy(ctx, name, chunk, duration))
    return objects


def _traffic_policy(
    ctx: Context, wish: str, refs: list[dict[str, Any]], connect_timeout: str
) -> dict[str, Any]:
    return {
        "apiVersion": EG_API,
        "kind": "BackendTrafficPolicy",
        "metadata": ctx.meta(ctx.object_names(wish)),
        "spec": {
            "targetRefs": refs,
            "loadBalancer": {"type": "RoundRobin"},
            "timeout": {"tcp": {"connectTimeout": connect_timeout}},
        },
    }


def envoy_differences(ctx: Context) -> None:
    """What the inventory's envoy section sets that Envoy Gateway decides for itself."""
    envoy = ctx.source.envoy
    if "admin" in envoy.explicit or "admin_allow_remote" in envoy.explicit:
        ctx.report.behaviour(
            "envoy.admin",
            f"Envoy Gateway's proxies have their own admin interface (not {envoy.admin}); "
            "xdsgen apply/status do not manage them",
            "use egctl, or kubectl port-forward to a proxy pod's admin port",
        )
    if "node_id" in envoy.explicit:
        ctx.report.note("envoy.node_id", "Envoy Gateway names its proxies' nodes itself")
    if "access_log" in envoy.explicit and envoy.access_log != "/dev/stdout":
        if envoy.access_log is None:
            ctx.report.behaviour(
                "envoy.access_log",
                "off, but Envoy Gateway's proxies log every request to stdout by default",
                "an EnvoyProxy resource with telemetry.accessLog.disable: true turns it off",
            )
        else:
            ctx.report.behaviour(
                "envoy.access_log",
                f"Envoy Gateway's proxies log to stdout, not to {envoy.access_log}",
                "read them with kubectl logs, or configure an EnvoyProxy resource's "
                "telemetry.accessLog",
            )
    if "max_connections" in envoy.explicit and ctx.listeners:
        ctx.report.note(
            "envoy.max_connections",
            f"the limit of {envoy.max_connections} connections applies per Gateway listener in "
            "Envoy Gateway, not to the whole Envoy",
        )
