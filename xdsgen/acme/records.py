"""Per certificate, what xdsgen remembers between runs: DIR/.xdsgen/acme/certs/NAME.json.

- the last issuance (which CA directory, which serial): a certificate still from another
  CA (staging before production) is renewed;
- the back-off after failures: cron runs apply every few minutes, and a CA must not be
  asked again and again while a challenge keeps failing. The wait doubles with every
  failure (10 minutes, 20, 40, ... at most a day), at least an hour after a rate limit or
  until the time the CA named; a success clears it, and `--force` ignores it.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

from xdsgen.files import write_atomic
from xdsgen.live.lock import state_dir

BACKOFF_FIRST = 600.0
BACKOFF_MAX = 86400.0
BACKOFF_RATE_LIMITED = 3600.0
# Let's Encrypt: "... retry after 2024-08-13 12:34:56 UTC: see https://..."
_RETRY_AFTER_RE = re.compile(
    r"retry after (\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.\d+)?\s*(?:UTC|Z|\+00:00)", re.I
)


@dataclass(frozen=True)
class Record:
    issued_by: str = ""  # the directory URL of the CA that issued the current files
    issued_serial: str = ""
    failures: int = 0  # failures in a row
    last_failure: float = 0.0  # Unix time
    reason: str = ""
    next_attempt: float = 0.0  # Unix time; 0: no back-off


def record_path(config_dir: str, name: str) -> str:
    return os.path.join(state_dir(config_dir), "acme", "certs", f"{name}.json")


def load(config_dir: str, name: str) -> Record:
    """The record, or an empty one when there is none or it is unreadable."""
    try:
        with open(record_path(config_dir, name), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return Record()
    if not isinstance(data, dict):
        return Record()
    defaults = asdict(Record())
    known: dict[str, Any] = {}
    for key, default in defaults.items():
        value = data.get(key)
        if isinstance(default, str) and isinstance(value, str):
            known[key] = value
        elif not isinstance(default, str) and isinstance(value, (int, float)):
            known[key] = type(default)(value)  # bool is an int too: harmless here
    return Record(**known)


def save(config_dir: str, name: str, record: Record) -> None:
    path = record_path(config_dir, name)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    write_atomic(path, json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")


def retry_after(reason: str) -> Optional[float]:
    """The Unix time a CA's message says to retry after, if it names one."""
    match = _RETRY_AFTER_RE.search(reason)
    if not match:
        return None
    when = datetime.datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}+00:00")
    return when.timestamp()


def failed(record: Record, reason: str, now: float, rate_limited: bool = False) -> Record:
    failures = record.failures + 1
    wait = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures - 1, 20))
    next_attempt = now + wait
    if rate_limited:
        next_attempt = max(next_attempt, now + BACKOFF_RATE_LIMITED, retry_after(reason) or 0.0)
    return replace(
        record, failures=failures, last_failure=now, reason=reason, next_attempt=next_attempt
    )


def succeeded(record: Record, directory: str, serial: str) -> Record:
    return Record(issued_by=directory, issued_serial=serial)


def waiting_until(record: Record, now: float) -> Optional[float]:
    """When the back-off ends, if it has not yet."""
    return record.next_attempt if record.next_attempt > now else None
