"""Which inventory keys the exporters know: every key an exporter reads or knowingly
leaves out. A key outside these lists comes from a feature newer than the exporters: it is
reported by each exporter, never silently dropped."""

from __future__ import annotations

from typing import Any

# The edge features (issue 15): `export k8s` renders them; `export gateway-api` writes
# Envoy Gateway policies for them or names what it cannot carry.
EDGE_KEYS = frozenset(
    {
        "envoy.access_log_format",
        "listen.*.http3",
        "listen.*.http3.advertised_port",
        "upstreams.*.backup",
        "upstreams.*.backup[]",
        "upstreams.*.h2",
        "upstreams.*.health_check",
        *(
            f"upstreams.*.health_check.{k}"
            for k in (
                "path",
                "tcp",
                "host",
                "interval",
                "timeout",
                "unhealthy_threshold",
                "healthy_threshold",
            )
        ),
        "http[].error_page",
        "http[].maintenance",
        "http[].compress",
        "http[].routes[].retries",
    }
)
# Every inventory key an exporter reads or knowingly leaves out. A key outside this list
# comes from a feature newer than the exporters: it is reported, never silently dropped.
_KNOWN = frozenset(
    {
        "version",
        "envoy",
        *(
            f"envoy.{k}"
            for k in (
                "config_dir",
                "container_config_dir",
                "admin",
                "admin_allow_remote",
                "access_log",
                "node_id",
                "max_connections",
                "layout",  # directory swaps are how a ConfigMap volume works anyway
            )
        ),
        # k8s renders the model, patches merged; gateway-api names each one it cannot carry.
        "patches",
        "patches[]",
        *(
            f"patches[].{k}"
            for k in ("cluster", "listener", "connection_manager", "route_config", "vhost", "route")
        ),
        "listen",
        "listen.*",
        "listen.*.address",
        "listen.*.http",
        "listen.*.https",
        "upstreams",
        "upstreams.*",
        "upstreams.*.endpoints",
        "upstreams.*.endpoints[]",
        "upstreams.*.connect_timeout",
        "upstreams.*.tls",
        "upstreams.*.tls.sni",
        "upstreams.*.tls.verify",
        "upstreams.*.tls.ca",
        "certificates",
        "certificates.*",
        "certificates.*.cert",
        "certificates.*.key",
        "http",
        "http[]",
        *(f"http[].{k}" for k in ("domains", "tls", "redirect_to_https", "families", "routes")),
        "http[].domains[]",
        "http[].families[]",
        "http[].routes[]",
        *(
            f"http[].routes[].{k}"
            for k in ("prefix", "path", "upstream", "rewrite", "websocket", "timeout")
        ),
        *(
            f"{section}{suffix}"
            for section, keys in (
                ("tls_passthrough", ("sni", "upstream", "families")),
                ("tcp", ("port", "upstream", "families")),
                ("udp", ("port", "upstream", "families")),
            )
            for suffix in ("", "[]", *(f"[].{k}" for k in keys), *(f"[].{k}[]" for k in keys))
        ),
        *EDGE_KEYS,
    }
)
# Access (issue 14): known, and reported by each exporter as far as it cannot carry them.
ACCESS_TOP = ("networks", "auth", "trusted_proxies")
ACCESS_KEYS = frozenset(
    {
        *ACCESS_TOP,
        "http[].allow",
        "http[].auth",
        "http[].hsts",
        "http[].security_headers",
        "http[].headers",
        "http[].routes[].allow",
        "http[].routes[].auth",
        "http[].routes[].headers",
        *(
            f"{section}[].{key}"
            for section in ("tcp", "tls_passthrough")
            for key in ("allow", "proxy_protocol")
        ),
        "udp[].allow",
    }
)
_NAMED = ("listen", "upstreams", "certificates")  # mappings whose keys the person chooses
_OPAQUE = ("patches[].merge",)  # Envoy's own config, carried whole


def unknown_keys(data: Any) -> list[str]:
    """Key paths (http[0].routes[1].allow) of the inventory that no exporter knows."""
    found: list[str] = []

    def walk(node: Any, pattern: str, where: str) -> None:
        if pattern in _OPAQUE:
            return
        if pattern in ACCESS_KEYS:
            return  # access_keys() lists these
        if pattern and pattern not in _KNOWN:
            found.append(where)
            return
        if isinstance(node, dict):
            for key, value in node.items():
                named = pattern in _NAMED
                sub = f"{pattern}.*" if named else (f"{pattern}.{key}" if pattern else str(key))
                walk(value, sub, f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pattern}[]", f"{where}[{index}]")

    walk(data, "", "")
    return found


def access_keys(data: Any) -> list[str]:
    """Key paths (http[0].routes[1].allow, auth.sso) of the inventory's access settings."""
    found: list[str] = []
    for key in ACCESS_TOP:
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, dict):
            found += [f"{key}.{name}" for name in value]
        elif value is not None:
            found.append(key)
    for section in ("http", "tcp", "udp", "tls_passthrough"):
        for index, item in enumerate(data.get(section) or [] if isinstance(data, dict) else []):
            if not isinstance(item, dict):
                continue
            for key in sorted(item):
                if f"{section}[].{key}" in ACCESS_KEYS:
                    found.append(f"{section}[{index}].{key}")
            for r_index, route in enumerate(item.get("routes") or [] if section == "http" else []):
                for key in sorted(route) if isinstance(route, dict) else []:
                    if f"http[].routes[].{key}" in ACCESS_KEYS:
                        found.append(f"http[{index}].routes[{r_index}].{key}")
    return found
