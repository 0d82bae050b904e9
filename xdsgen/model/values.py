"""Parsing and judging single values: endpoints, domains, durations, addresses."""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import threading
import time
from typing import Optional, Union

from xdsgen.errors import PathKey
from xdsgen.hints import endpoint_mistake
from xdsgen.model.ir import AdminAddress, Endpoint
from xdsgen.model.problems import Problems

_HOST_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME_RE = re.compile(rf"^{_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
_ENDPOINT_RE = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})$")
_DURATION_RE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?(ms|s|m|h)$")
_PATH_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


@functools.lru_cache(maxsize=1024)  # a few distinct texts, tens of thousands of calls at scale
def format_duration(text: str) -> str:
    """Turn an inventory duration (250ms, 2s, 5m, 1h) into protobuf's seconds form."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(text)
    whole, fraction, unit = match.groups()
    # Decimal arithmetic in nanoseconds keeps 0.1s exact.
    nanos = int(whole) * 10**9 + int((fraction or "0").ljust(9, "0")[:9])
    nanos *= {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[unit]
    nanos //= 1000
    seconds, rest = divmod(nanos, 10**9)
    if rest == 0:
        return f"{seconds}s"
    return f"{seconds}.{rest:09d}".rstrip("0") + "s"


def duration(text: str, path: PathKey, problems: Problems) -> Optional[str]:
    """format_duration, reporting a malformed duration instead of raising (the schema
    reports it too when the shape check runs first; the same problem is said once)."""
    try:
        return format_duration(text)
    except ValueError:
        problems.error(path, f"invalid duration {text!r}", "write a number and a unit: 250ms, 5s")
        return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_endpoint(text: str) -> Union[Endpoint, str]:
    """Endpoint, or a message saying what is wrong with the host:port text."""
    mistake = endpoint_mistake(text)  # a URL, a path, a port out of range: xdsgen/hints.py
    if mistake:
        return mistake
    match = _ENDPOINT_RE.match(text)
    if not match:
        if text.count(":") > 1 and not text.startswith("["):
            host, port_text = text.rsplit(":", 1)
            return f"IPv6 address must be in brackets: [{host}]:{port_text}"
        return f"malformed host:port {text!r}"
    port = int(match.group("port"))
    if not 1 <= port <= 65535:
        return f"port {port} is outside 1-65535"
    if match.group("v6") is not None:
        if "%" in match.group("v6"):
            return f"[{match.group('v6')}]: IPv6 zone ids (%eth0) are not supported by Envoy"
        try:
            address = ipaddress.IPv6Address(match.group("v6"))
        except ValueError:
            return f"{match.group('v6')!r} in brackets is not an IPv6 address"
        return Endpoint(str(address), port)
    host = match.group("host")
    if is_ip(host):
        return Endpoint(str(ipaddress.ip_address(host)), port)
    if re.fullmatch(r"[0-9.]+", host):
        return f"{host!r} is not a valid IPv4 address"
    if not _HOSTNAME_RE.match(host) or len(host) > 253:
        return f"{host!r} is not a valid host name"
    return Endpoint(host.rstrip(".").lower(), port)


def parse_admin(text: str) -> AdminAddress:
    """`unix:/path`, `/path` or HOST:PORT with an IP address; ValueError says what is wrong."""
    if text.startswith("unix:"):
        text = text[len("unix:") :]
        if not text.startswith("/"):
            raise ValueError("a Unix socket needs an absolute path: unix:/run/envoy/admin.sock")
    if text.startswith("/"):
        return AdminAddress(path=text)
    endpoint = parse_endpoint(text)
    if isinstance(endpoint, str):
        raise ValueError(endpoint)
    if not is_ip(endpoint.host):
        raise ValueError("the admin address must be an IP address or a Unix socket path")
    return AdminAddress(host=endpoint.host, port=endpoint.port)


def domain_problem(domain: str) -> Optional[str]:
    if domain == "*":
        return None
    body = domain[2:] if domain.startswith("*.") else domain
    if "*" in body:
        return f'{domain!r}: a wildcard must be "*" alone or lead as "*.example.com"'
    if body.endswith(".") and _HOSTNAME_RE.match(body):
        return f"{domain!r} ends with a dot: write it without the trailing dot"
    if not body.isascii():
        return (
            f"{domain!r} is not a valid host name: write international names in "
            "their xn-- (punycode) form"
        )
    if not _HOSTNAME_RE.match(body) or body.endswith("."):
        return f"{domain!r} is not a valid host name (letters, digits, - and dots)"
    return None


def path_problem(key: str, value: str) -> Optional[tuple[str, Optional[str]]]:
    """(message, hint) when a route's prefix, path or rewrite is not a usable URL path."""
    if not value.startswith("/"):
        return f"{key} must start with '/'", f"write /{value}"
    if _PATH_UNSAFE.search(value):
        return f"{key} contains spaces or control characters", None
    return None


def resolve_quickly(hosts: set[str], timeout: float = 2.0) -> dict[str, set[str]]:
    """The addresses each host name resolves to here, within `timeout` in all; a name that
    does not resolve in time is left out (a slow resolver must not hang validate)."""
    found: dict[str, set[str]] = {}

    def resolve(host: str) -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        found[host] = {str(info[4][0]).split("%")[0] for info in infos}

    threads = [threading.Thread(target=resolve, args=(h,), daemon=True) for h in sorted(hosts)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return dict(found)
