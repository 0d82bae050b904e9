"""A small client for Envoy's admin interface: /stats, /config_dump, /certs.

urllib only (OpenWrt has no requests). Every failure to reach Envoy is an
AdminUnreachable, which the caller turns into "nothing was confirmed" or exit 6.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from xdsgen.errors import IOProblem

# Only the stats apply reads: keeps each poll to a few hundred lines on a big Envoy.
STATS_FILTER = r"^(cluster_manager\.|listener_manager\.|http\.[^.]+\.rds\.|sds\.)"


class AdminUnreachable(IOProblem):
    """Envoy's admin interface did not answer."""


class Admin:
    def __init__(self, host: str, port: int, timeout: float = 2.0):
        self.host = host
        self.port = port
        self.timeout = timeout

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def get(self, path: str) -> str:
        url = f"http://{self.address}{path}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return str(response.read().decode("utf-8", errors="replace"))
        except urllib.error.HTTPError as exc:
            raise AdminUnreachable(f"Envoy admin {url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminUnreachable(
                f"Envoy admin at {self.address} is unreachable: {reason}"
            ) from None

    def reachable(self) -> bool:
        try:
            self.get("/ready")
        except AdminUnreachable:
            return False
        return True

    def stats(self, pattern: Optional[str] = STATS_FILTER) -> dict[str, str]:
        query = "?filter=" + urllib.parse.quote(pattern) if pattern else ""
        return parse_stats(self.get("/stats" + query))

    def config_dump(self, resource: Optional[str] = None) -> dict[str, Any]:
        query = f"?resource={urllib.parse.quote(resource)}" if resource else ""
        try:
            return dict(json.loads(self.get("/config_dump" + query)))
        except ValueError:
            return {}

    def certificate_serials(self) -> set[str]:
        """Serial numbers (lower-case hex) of every certificate Envoy serves or trusts."""
        try:
            data = json.loads(self.get("/certs"))
        except ValueError:
            return set()
        serials = set()
        for entry in data.get("certificates", []):
            for cert in entry.get("cert_chain", []) + entry.get("ca_cert", []):
                serial = cert.get("serial_number")
                if serial:
                    serials.add(serial.lower().lstrip("0") or "0")
        return serials


def parse_stats(text: str) -> dict[str, str]:
    """`name: value` lines; text readouts such as version_text keep their quotes stripped."""
    stats = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        stats[name.strip()] = value
    return stats


def counter(stats: dict[str, str], name: str) -> int:
    try:
        return int(stats.get(name, "0"))
    except ValueError:
        return 0


def error_details(dump: dict[str, Any], names: set[str]) -> list[str]:
    """Envoy's reasons for refusing resources (config_dump error_state), for the named ones."""
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            state = node.get("error_state")
            if isinstance(state, dict) and state.get("details"):
                failed = state.get("failed_configuration") or {}
                name = node.get("name") or failed.get("name") or ""
                if not names or name in names:
                    found.append(f"{name}: {state['details']}" if name else str(state["details"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dump)
    return sorted(set(found))
