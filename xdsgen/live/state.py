"""What Envoy accepted, kept in DIR/.xdsgen/state.json: the history `rollback` returns to,
the target of every restore, the files xdsgen owns, and a journal of the apply under way.

Format 2 (format 1, without `pending`, reads the same):
  {"format": 2,
   "accepted": [newest entry first, at most HISTORY],
   "pending": null | an entry being applied right now}
An entry: {"files": {name: text}, "certs": {secret: fingerprint}, "confirmed": bool,
"admin": "...", "source": "inventory path", "time": "...Z"}.

The journal is written before the first file is touched. If apply dies (SIGKILL, power
loss) or cannot record its success (disk full), the next apply finds it: when Envoy
runs exactly the pending files they are promoted to accepted, otherwise the directory is
known to hold something Envoy may not have confirmed, and restores go to the last
confirmed entry, never to whatever happens to be on disk.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from xdsgen.conventions import is_config_file
from xdsgen.errors import IOProblem
from xdsgen.files import write_atomic
from xdsgen.live.lock import ensure_state_dir, state_dir

STATE_FILE = "state.json"
STATE_FORMAT = 2
HISTORY = 5  # accepted configs kept


def state_path(config_dir: str) -> str:
    return os.path.join(state_dir(config_dir), STATE_FILE)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(value: Any) -> Optional[dict[str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("files"), dict):
        return None
    files = {
        str(n): t for n, t in value["files"].items() if isinstance(t, str) and is_config_file(n)
    }
    certs = value.get("certs") if isinstance(value.get("certs"), dict) else {}
    return {**value, "files": files, "certs": certs}


@dataclass
class State:
    config_dir: str
    accepted: list[dict[str, Any]] = field(default_factory=list)
    pending: Optional[dict[str, Any]] = None
    readable: bool = True  # False: state.json exists but could not be read

    @classmethod
    def load(cls, config_dir: str) -> State:
        try:
            with open(state_path(config_dir), encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return cls(config_dir)
        except (OSError, ValueError):
            return cls(config_dir, readable=False)
        if not isinstance(data, dict):
            return cls(config_dir, readable=False)
        accepted = [e for e in map(_entry, data.get("accepted") or []) if e is not None]
        return cls(config_dir, accepted, _entry(data.get("pending")))

    # ------------------------------------------------------------------ questions

    @property
    def last(self) -> Optional[dict[str, Any]]:
        return self.accepted[0] if self.accepted else None

    def last_confirmed(self) -> Optional[dict[str, Any]]:
        """The newest config Envoy confirmed: what every restore returns to."""
        return next((e for e in self.accepted if e.get("confirmed")), None)

    def owned(self) -> set[str]:
        """Files xdsgen wrote: only these may ever be removed."""
        names: set[str] = set()
        for entry in [*self.accepted, *([self.pending] if self.pending else [])]:
            names.update(entry["files"])
        return names

    def known_certs(self) -> dict[str, str]:
        return dict(self.last["certs"]) if self.last else {}

    # ------------------------------------------------------------------ changes

    def begin(self, files: dict[str, str], certs: dict[str, str], source: str) -> None:
        """Journal the apply about to start; nothing is written if this fails."""
        self.pending = self._new_entry(files, certs, False, "", source)
        self.save()

    def commit(
        self,
        files: dict[str, str],
        certs: dict[str, str],
        confirmed: bool,
        admin: str,
        source: str,
    ) -> None:
        entry = self._new_entry(files, certs, confirmed, admin, source)
        history = self.accepted
        if history and history[0]["files"] == entry["files"]:
            history = history[1:]  # the same config again (a certificate renewal): one entry
        self.accepted = [entry, *history][:HISTORY]
        self.pending = None
        self.save()

    def abandon(self) -> None:
        """The journalled apply did not happen (restored): forget it."""
        if self.pending is not None:
            self.pending = None
            self.save()

    @staticmethod
    def _new_entry(
        files: dict[str, str], certs: dict[str, str], confirmed: bool, admin: str, source: str
    ) -> dict[str, Any]:
        return {
            "files": dict(sorted(files.items())),
            "certs": dict(sorted(certs.items())),
            "confirmed": confirmed,
            "admin": admin,
            "source": source,
            "time": _now(),
        }

    def save(self) -> None:
        ensure_state_dir(self.config_dir)
        data = {"format": STATE_FORMAT, "accepted": self.accepted, "pending": self.pending}
        try:
            write_atomic(
                state_path(self.config_dir), json.dumps(data, indent=1, sort_keys=True) + "\n"
            )
        except IOProblem as exc:
            raise IOProblem(f"cannot record the apply history: {exc}") from None
