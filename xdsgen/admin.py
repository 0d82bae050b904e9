"""The one client for Envoy's admin interface (/stats, /config_dump, /certs, /server_info).

The admin listens on a Unix socket by default (no cluster can dial it), or on HOST:PORT.
Every read has a deadline for the whole answer, not per packet (an endless trickle must
not hold the lock), is retried until that deadline (a small router's Envoy can be slow
to answer while it loads a big config), never goes through an HTTP proxy from the
environment, and parses the answer defensively: anything that is not the HTTP and JSON
Envoy sends becomes AdminUnreachable with a message, never a traceback.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import time
import urllib.parse
from typing import Any, Optional

from xdsgen.conventions import APPLY_STATS_FILTER
from xdsgen.errors import IOProblem
from xdsgen.model import AdminAddress

DEFAULT_TIMEOUT = 10.0
RETRY_PAUSE = 0.1
# A config dump of 10 000 vhosts is tens of MB; far beyond this, something else answers.
MAX_ANSWER_BYTES = 512 * 1024 * 1024
_UPTIME_RE = re.compile(r'"uptime_current_epoch":\s*"(\d+(?:\.\d+)?)s"')


class AdminUnreachable(IOProblem):
    """Envoy's admin interface did not answer, or answered something that is not Envoy's."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def parse_address(text: str) -> AdminAddress:
    """`unix:/path`, `/path` or HOST:PORT with an IP address; ValueError says what is wrong."""
    from xdsgen.model import parse_admin

    return parse_admin(text)


class _DeadlineReader(io.RawIOBase):
    """A socket as a file whose reads fail once the whole answer is past its deadline."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("the answer did not end in time")
        self.sock.settimeout(remaining)
        count = self.sock.recv_into(buffer)
        self.total += count
        if self.total > MAX_ANSWER_BYTES:
            raise ValueError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
        return count


class _FileSocket:
    """What http.client.HTTPResponse wants of a socket: makefile()."""

    def __init__(self, reader: io.BufferedReader):
        self.reader = reader

    def makefile(self, _mode: str) -> io.BufferedReader:
        return self.reader


class Admin:
    def __init__(self, address: AdminAddress, timeout: float = DEFAULT_TIMEOUT):
        self.target = address
        self.timeout = timeout

    @classmethod
    def for_model(cls, model: Any, timeout: float = DEFAULT_TIMEOUT) -> Admin:
        return cls(model.envoy.admin, timeout)

    @property
    def address(self) -> str:
        return str(self.target)

    # ------------------------------------------------------------------ transport

    def _connect(self, deadline: float) -> socket.socket:
        remaining = max(deadline - time.monotonic(), 0.001)
        if self.target.is_unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(remaining)
            try:
                sock.connect(self.target.path)
            except BaseException:
                sock.close()
                raise
            return sock
        return socket.create_connection((self.target.host, self.target.port), timeout=remaining)

    def _get_once(self, path: str, deadline: float) -> str:
        sock = self._connect(deadline)
        try:
            host = "localhost" if self.target.is_unix else self.address
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(request.encode("ascii"))
            reader = io.BufferedReader(_DeadlineReader(sock, deadline))
            response = http.client.HTTPResponse(_FileSocket(reader))  # type: ignore[arg-type]
            response.begin()
            body = response.read()
        finally:
            sock.close()
        if response.status != 200:
            raise _Refused(f"HTTP {response.status} for {path}")
        return body.decode("utf-8", errors="replace")

    def get(self, path: str, timeout: Optional[float] = None) -> str:
        """GET `path`, retrying until `timeout` (default: the client's) has passed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                return self._get_once(path, deadline)
            except _Refused as exc:
                raise AdminUnreachable(
                    f"Envoy's admin at {self.address}: {exc}", str(exc)
                ) from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                reason = _describe(exc)
            if time.monotonic() + RETRY_PAUSE >= deadline:
                raise AdminUnreachable(
                    f"Envoy's admin at {self.address} is unreachable: {reason}", reason
                ) from None
            time.sleep(RETRY_PAUSE)

    def get_json(self, path: str, timeout: Optional[float] = None) -> dict[str, Any]:
        return self._json_text(self.get(path, timeout), path)

    def _json_text(self, text: str, path: str) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except ValueError:
            reason = f"{path} did not answer JSON ({_excerpt(text)}); is that Envoy's admin?"
            raise AdminUnreachable(f"Envoy's admin at {self.address}: {reason}", reason) from None
        if not isinstance(data, dict):
            kind = type(data).__name__
            reason = f"{path} answered a JSON {kind}, not an object; is that Envoy's admin?"
            raise AdminUnreachable(f"Envoy's admin at {self.address}: {reason}", reason)
        return data

    # ------------------------------------------------------------------ reads

    def stats(
        self, pattern: Optional[str] = APPLY_STATS_FILTER, timeout: Optional[float] = None
    ) -> dict[str, str]:
        query = "?filter=" + urllib.parse.quote(pattern) if pattern else ""
        return parse_stats(self.get("/stats" + query, timeout))

    # A filtered /stats walks every stat Envoy has, on the thread that also loads the
    # config: ~120 ms per read at 10 000 vhosts (2 500 clusters, a hundred stats each).
    # apply reads two cheap slices instead: the text readouts (a few: each subscription's
    # version_text) and, with `usedonly`, the counters and gauges ever touched (the
    # per-cluster stats never are). ~30 ms together there, <1 ms on a home router's config.
    # A stat never used is left out, which `counter` reads as 0: Envoy's own value.

    def versions(self, timeout: Optional[float] = None) -> dict[str, str]:
        """The text readouts only: every subscription's version_text (a few lines)."""
        return parse_stats(self.get("/stats?type=TextReadouts", timeout))

    def apply_stats(self, timeout: Optional[float] = None) -> dict[str, str]:
        """What apply reads (APPLY_STATS_FILTER) and every version_text, both reads within
        one deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        found = self.versions(timeout=max(deadline - time.monotonic(), 0.001))
        query = "/stats?usedonly&filter=" + urllib.parse.quote(APPLY_STATS_FILTER)
        found.update(parse_stats(self.get(query, max(deadline - time.monotonic(), 0.001))))
        return found

    def uptime(self, timeout: Optional[float] = None) -> float:
        """Seconds the Envoy process has been up. From /server_info, whose cost does not grow
        with the config (a filtered /stats does: see above); its answer is ~100 KB, but the
        uptime is near its start."""
        text = self.get("/server_info", timeout)
        match = _UPTIME_RE.search(text, 0, 4096)
        if match is None:
            value = self._json_text(text, "/server_info").get("uptime_current_epoch")
            match = _UPTIME_RE.search(f'"uptime_current_epoch": "{value}"')
        if match is None:
            reason = "/server_info has no uptime_current_epoch; is that Envoy's admin?"
            raise AdminUnreachable(f"Envoy's admin at {self.address}: {reason}", reason)
        return float(match.group(1))

    def stats_json(self, timeout: Optional[float] = None) -> dict[str, Any]:
        """Counters, gauges and text readouts by name (histograms left out)."""
        doc = self.get_json("/stats?format=json", timeout)
        found: dict[str, Any] = {}
        for item in _list(doc.get("stats")):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                found[item["name"]] = item.get("value", 0)
        return found

    def config_dump(
        self, resource: Optional[str] = None, timeout: Optional[float] = None
    ) -> dict[str, Any]:
        query = f"?resource={urllib.parse.quote(resource)}" if resource else ""
        return self.get_json("/config_dump" + query, timeout)

    def server_info(self, timeout: Optional[float] = None) -> dict[str, Any]:
        return self.get_json("/server_info", timeout)

    def served_certificates(self, timeout: Optional[float] = None) -> set[tuple[str, str]]:
        """(serial, not-after) of every certificate Envoy serves: a renewal may keep the
        serial, so a certificate is told apart by serial and expiry together. (Envoy names
        no file for certificates read through SDS: its /certs says "<inline>".)"""
        data = self.get_json("/certs", timeout)
        served = set()
        for entry in _list(data.get("certificates")):
            if not isinstance(entry, dict):
                continue
            for cert in _list(entry.get("cert_chain")):
                if isinstance(cert, dict):
                    served.add(
                        (
                            normal_serial(str(cert.get("serial_number", ""))),
                            str(cert.get("expiration_time", "")),
                        )
                    )
        return served


class _Refused(Exception):
    """Envoy answered with an HTTP error: retrying will not change it."""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "no complete answer in time"
    if isinstance(exc, (http.client.HTTPException, ValueError)):
        return f"the answer is not HTTP from Envoy ({type(exc).__name__}: {exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def normal_serial(serial: str) -> str:
    return serial.lower().lstrip("0") or "0"


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
                name = node.get("name") or (failed.get("name") if isinstance(failed, dict) else "")
                if not names or name in names:
                    found.append(f"{name}: {state['details']}" if name else str(state["details"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dump)
    return sorted(set(found))


def warming_names(dump: dict[str, Any]) -> set[str]:
    """Names of the clusters and listeners Envoy is still warming, from
    /config_dump?resource=dynamic_warming_clusters or ?resource=dynamic_listeners (each
    entry of `configs` is then one DynamicCluster or DynamicListener)."""
    names: set[str] = set()
    for entry in _list(dump.get("configs")):
        if not isinstance(entry, dict):
            continue
        cluster = entry.get("cluster")
        if isinstance(cluster, dict) and cluster.get("name"):
            names.add(str(cluster["name"]))
        elif entry.get("warming_state") and entry.get("name"):
            names.add(str(entry["name"]))
    return names
