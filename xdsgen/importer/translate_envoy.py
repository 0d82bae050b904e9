"""The draft's envoy: section (issue 11): the config directory, the admin address and the
one access log, from what the original's listeners and bootstrap say."""

from __future__ import annotations

import ipaddress
import os
from collections import Counter
from typing import Any, Optional, Union

from xdsgen.importer.differences import Report
from xdsgen.importer.semantics import Config

DEFAULT_ADMIN_PORT = 15001


def envoy_section(
    config: Config,
    report: Report,
    paths: list[str],
    admin: Any,
    referenced_dirs: list[str],
    access_logs: list[Any],
) -> dict[str, Any]:
    """The draft's envoy: section: where the files go, the admin, the access log."""
    base = os.path.dirname(os.path.abspath(paths[0]))
    envoy: dict[str, Any] = {"config_dir": base}
    others = [d for d in referenced_dirs if d and os.path.isabs(d)]
    if len(set(others)) == 1 and others[0] != base:
        envoy["container_config_dir"] = others[0]
    envoy["admin"] = admin_address(config, admin)
    if envoy["admin"] == f"127.0.0.1:{DEFAULT_ADMIN_PORT}":
        del envoy["admin"]
    log, log_format = access_log(report, access_logs)
    if log != "/dev/stdout":
        envoy["access_log"] = log
    if log_format is not None:
        envoy["access_log_format"] = log_format
    return envoy


def admin_address(config: Config, admin: Any) -> str:
    used = {listener.port for listener in config.listeners}
    for cluster in config.clusters.values():
        used.update(int(e.rsplit(":", 1)[1]) for e in cluster.endpoints)
    wanted = None
    if admin is not None:
        host, number = admin
        try:
            if ipaddress.ip_address(host).is_loopback and number not in used:
                wanted = f"[{host}]:{number}" if ":" in host else f"{host}:{number}"
        except ValueError:
            pass
    number = DEFAULT_ADMIN_PORT
    while number in used:
        number += 1
    return wanted or f"127.0.0.1:{number}"


def access_log(
    report: Report, sites: list[tuple[str, Optional[str], Union[bool, str]]]
) -> tuple[str, Optional[str]]:
    """The draft's one access log: the file most chains log to (else off), and its
    line format when every logging chain uses the same one xdsgen can say."""
    paths = Counter(path for _, path, _ in sites if path and path.startswith("/"))
    chosen = paths.most_common(1)[0][0] if paths else "off"
    kinds = {custom for _, path, custom in sites if path}
    said = kinds.pop() if len(kinds) == 1 else None
    log_format = said if isinstance(said, str) else None
    for where, path, custom in sites:
        if path and not path.startswith("/"):
            report.note(
                where,
                f"logs to {path}, relative to Envoy's working directory; the draft "
                + (f"logs to {chosen}" if chosen != "off" else "does not log")
                + " (set envoy.access_log to an absolute path)",
            )
        elif (path or "off") != chosen:
            report.note(
                where,
                (f"logs to {path}" if path else "does not log")
                + f"; the draft logs every HTTP and TCP listener to {chosen}",
            )
        elif custom and custom != log_format:
            report.note(
                where,
                "a custom log format: the draft logs "
                + (f"the {log_format} format" if log_format else "Envoy's default"),
            )
    return chosen, log_format
