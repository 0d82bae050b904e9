"""Envoy's lenient shapes, read defensively: every accessor returns a usable value or None.

Envoy (protobuf's JSON mapping) accepts a single mapping wherever a list is expected,
enum names in any case, port numbers as strings, v2 names and `config:` Structs. Hand
written files use all of these, and a fuzzed one may put anything anywhere: nothing here
raises on a value of the wrong type.
"""

from __future__ import annotations

import re
from typing import Any, Optional

TYPE_PREFIX = "type.googleapis.com/"
# Filters, sockets and loggers by their v2/v3 names, for entries without a typed_config @type.
KIND_BY_NAME = {
    "envoy.http_connection_manager": "HttpConnectionManager",
    "envoy.filters.network.http_connection_manager": "HttpConnectionManager",
    "envoy.tcp_proxy": "TcpProxy",
    "envoy.filters.network.tcp_proxy": "TcpProxy",
    "envoy.router": "Router",
    "envoy.filters.http.router": "Router",
    "envoy.listener.tls_inspector": "TlsInspector",
    "envoy.filters.listener.tls_inspector": "TlsInspector",
    "envoy.filters.udp_listener.udp_proxy": "UdpProxyConfig",
    "envoy.file_access_log": "FileAccessLog",
    "envoy.access_loggers.file": "FileAccessLog",
    "envoy.access_loggers.stdout": "StdoutAccessLog",
    "envoy.access_loggers.stderr": "StderrAccessLog",
    "envoy.transport_sockets.tls": "TlsContext",
    "tls": "TlsContext",
    "envoy.transport_sockets.raw_buffer": "RawBuffer",
    "raw_buffer": "RawBuffer",
}
V2_NAMES = {
    "envoy.http_connection_manager",
    "envoy.tcp_proxy",
    "envoy.router",
    "envoy.listener.tls_inspector",
    "envoy.file_access_log",
    "tls",
}
_TYPED_STRUCTS = ("udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct")
_DURATION_RE = re.compile(r"^\s*(-?[0-9]+)(?:\.([0-9]{1,9}))?s\s*$")


def as_list(value: Any) -> list[Any]:
    """A repeated field: Envoy reads a single value as a list of one."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def as_map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def maps(value: Any) -> list[dict[str, Any]]:
    """The mappings of a repeated field (anything else in it is skipped by the caller's
    own check, or cannot be a message)."""
    return [item for item in as_list(value) if isinstance(item, dict)]


def text(value: Any) -> Optional[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def texts(value: Any) -> list[str]:
    return [t for t in (text(item) for item in as_list(value)) if t is not None]


def port(value: Any) -> Optional[int]:
    """A port: an integer, or its digits in a string (protobuf's JSON mapping allows both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 <= value <= 65535:
        return value
    return None


def integer(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", value):
        return int(value)
    return None


def enum(value: Any, default: Optional[str] = None) -> Optional[str]:
    """An enum value by name, in any case (Envoy parses enum names case-insensitively)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().upper()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return default


def flag(value: Any) -> bool:
    return value is True


def duration_ns(value: Any) -> Optional[int]:
    """A protobuf Duration ("0.25s", or {seconds, nanos}) in nanoseconds; None if absent
    or unreadable."""
    if isinstance(value, dict):
        seconds, nanos = integer(value.get("seconds", 0)), integer(value.get("nanos", 0))
        if seconds is None or nanos is None:
            return None
        return seconds * 10**9 + nanos
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            whole, fraction = match.groups()
            sign = -1 if whole.startswith("-") else 1
            return sign * (abs(int(whole)) * 10**9 + int((fraction or "0").ljust(9, "0")))
    return None


def duration_text(value: Any) -> Optional[str]:
    """A protobuf Duration as an inventory duration ("0.25s", "30s"); None if absent or
    not a non-negative duration."""
    nanos = duration_ns(value)
    if nanos is None or nanos < 0:
        return None
    return nanos_text(nanos)


def nanos_text(nanos: int) -> str:
    seconds, rest = divmod(nanos, 10**9)
    if rest == 0:
        return f"{seconds}s"
    return f"{seconds}.{rest:09d}".rstrip("0") + "s"


def type_url(config: Any) -> str:
    """The message type of a typed_config, without its type.googleapis.com/ prefix."""
    url = text(as_map(config).get("@type")) or ""
    return url.strip().rsplit("/", 1)[-1]


def is_v2_type(url: str) -> bool:
    return url.startswith("envoy.api.v2.") or ".v2." in url or ".v2alpha." in url


def message_name(url: str) -> str:
    """envoy.extensions.filters.http.router.v3.Router -> Router."""
    return url.rsplit(".", 1)[-1]


def package_name(url: str) -> str:
    """envoy.extensions.filters.http.header_to_metadata.v3.Config -> header_to_metadata
    (many filters call their message just Config)."""
    parts = url.split(".")
    for index, part in enumerate(parts):
        if re.fullmatch(r"v[0-9]+(alpha|beta)?[0-9]*", part) and index > 0:
            return parts[index - 1]
    return ""


def unwrap(config: Any) -> dict[str, Any]:
    """A typed_config with a TypedStruct (type_url + value) unwrapped to the message itself."""
    config = as_map(config)
    if type_url(config) in _TYPED_STRUCTS:
        inner = dict(as_map(config.get("value")))
        inner["@type"] = text(config.get("type_url")) or ""
        return inner
    return config


def extension(entry: Any) -> tuple[str, dict[str, Any], bool]:
    """(kind, config, is_v2) of a filter, transport socket or logger entry.

    The kind is the message name of its typed_config @type (what Envoy goes by), else the
    kind its name stands for; `config` is typed_config, or v2's `config:` Struct.
    """
    entry = as_map(entry)
    v2 = False
    config: Any = entry.get("typed_config")
    if config is None and isinstance(entry.get("config"), dict):
        config, v2 = entry["config"], True
    config = unwrap(config)
    url = type_url(config)
    name = text(entry.get("name")) or ""
    if url:
        v2 = v2 or is_v2_type(url)
        kind = message_name(url)
        if kind in ("DownstreamTlsContext", "UpstreamTlsContext"):
            kind = "TlsContext"
        return kind, config, v2
    # Without an @type the name is what Envoy goes by (and a v2 name says which v2 filter).
    return KIND_BY_NAME.get(name, name or "unnamed"), config, v2 or name in V2_NAMES


def label(entry: Any) -> str:
    """How a message names a filter: its name, else its @type."""
    entry = as_map(entry)
    return text(entry.get("name")) or type_url(unwrap(entry.get("typed_config"))) or "unnamed"


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake_keys(value: Any) -> Any:
    """protobuf's JSON mapping reads lowerCamelCase field names too (typedConfig,
    directResponse): the readers see the proto names. A name with a dot is a map key (an
    extension's name in typed_extension_protocol_options), never a field: kept as it is.
    Iterative: depth is bounded by the loader, not by Python's stack."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, item = stack.pop()
        if isinstance(item, dict):
            renamed: dict[Any, Any] = {}
            for name, inner in item.items():
                if (
                    isinstance(name, str)
                    and name[:1].islower()
                    and "." not in name
                    and _CAMEL.search(name)
                ):
                    name = _CAMEL.sub(lambda m: "_" + m.group(1).lower(), name)
                renamed.setdefault(name, inner)
            parent[key] = renamed
            stack.extend((renamed, name, inner) for name, inner in renamed.items())
        elif isinstance(item, list):
            copy = list(item)
            parent[key] = copy
            stack.extend((copy, index, inner) for index, inner in enumerate(copy))
    return root[0]
