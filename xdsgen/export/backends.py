"""Envoy Gateway objects for the upstreams, and what the envoy section sets.

- `Backend` (gateway.envoyproxy.io/v1alpha1) per upstream: the upstreams of a home router
  are outside the cluster. Envoy Gateway serves Backends only with
  `extensionApis.enableBackend: true` in its configuration, and refuses loopback addresses
  unless it runs on the host (not in Kubernetes). `h2: true` is the Backend's appProtocol
  gateway.envoyproxy.io/h2c; `backup` endpoints are a second Backend with `fallback: true`
  (priority 1), listed after the first in every rule that uses the upstream.
- BackendTLSPolicy (gateway.networking.k8s.io/v1) for upstream TLS that verifies, with the
  system CA bundle or the inventory's own CA file in a ConfigMap; `verify: false` becomes
  the Backend's own `tls.insecureSkipVerify`, which BackendTLSPolicy cannot express.

The policies are in policies_backend.py (BackendTrafficPolicy), policies_client.py
(ClientTrafficPolicy) and policies_security.py (SecurityPolicy).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from xdsgen.export.context import GATEWAY_API
from xdsgen.export.source import Upstream

if TYPE_CHECKING:
    from xdsgen.export.context import Context

EG_API = "gateway.envoyproxy.io/v1alpha1"
H2C = "gateway.envoyproxy.io/h2c"  # Backend.spec.appProtocols: HTTP/2 to the upstream
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


def backend_endpoint(host: str, port: int) -> tuple[dict[str, Any], bool]:
    """A Backend endpoint for host:port, and whether it is this machine (loopback)."""
    if _is_ip(host):
        return {"ip": {"address": _ip_text(host), "port": port}}, ipaddress.ip_address(
            host
        ).is_loopback
    return {"fqdn": {"hostname": host, "port": port}}, host == "localhost"


def backend_objects(ctx: Context) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    for name in ctx.used_upstreams():
        upstream = ctx.source.upstreams[name]
        backends = [(ctx.backend_ref(name)["name"], upstream.endpoints, False)]
        if upstream.backup:
            # Envoy Gateway puts a fallback Backend at priority 1, like xdsgen's backup.
            backends.append((ctx.backup_ref(name)["name"], upstream.backup, True))
        for backend, endpoints, fallback in backends:
            spec: dict[str, Any] = {"endpoints": _endpoints(ctx, upstream, backend, endpoints)}
            if upstream.http2:
                spec["appProtocols"] = [H2C]
            if fallback:
                spec["fallback"] = True
            if upstream.tls and not upstream.tls_verify:
                tls: dict[str, Any] = {"insecureSkipVerify": True}
                if upstream.tls_sni:
                    tls["sni"] = upstream.tls_sni
                spec["tls"] = tls
            objects.append(
                {
                    "apiVersion": EG_API,
                    "kind": "Backend",
                    "metadata": ctx.meta(backend),
                    "spec": spec,
                }
            )
        if upstream.tls and upstream.tls_verify:
            policies += _backend_tls(ctx, name, [backend for backend, _, _ in backends])
    return objects + policies


def _endpoints(
    ctx: Context, upstream: Upstream, backend: str, endpoints: tuple[tuple[str, int], ...]
) -> list[dict[str, Any]]:
    found = []
    for host, port in endpoints:
        endpoint, loopback = backend_endpoint(host, port)
        found.append(endpoint)
        if loopback:
            ctx.report.access(
                upstream.path,
                f"{host} is the machine the inventory was written for; Envoy Gateway in "
                "Kubernetes refuses loopback backends, so routes to it answer 500",
                "use the service's LAN address or an in-cluster Service",
                resource=f"Backend/{backend}",
            )
    return found


def _backend_tls(ctx: Context, upstream_name: str, backends: list[str]) -> list[dict[str, Any]]:
    from xdsgen.export.secrets import read_pem

    upstream = ctx.source.upstreams[upstream_name]
    backend = backends[0]
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
            "targetRefs": [
                {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": name}
                for name in backends
            ],
            "validation": validation,
        },
    }
    return [policy, *objects]


# --------------------------------------------------------------------------- envoy


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
    if ctx.source.access_log_format != "default":
        ctx.report.behaviour(
            "envoy.access_log_format",
            f"the {ctx.source.access_log_format} log format is not exported",
            "an EnvoyProxy resource's telemetry.accessLog format",
        )
    if "max_connections" in envoy.explicit and ctx.listeners:
        ctx.report.note(
            "envoy.max_connections",
            f"the limit of {envoy.max_connections} connections applies per Gateway listener in "
            "Envoy Gateway, not to the whole Envoy",
        )
