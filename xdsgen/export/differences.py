"""What an export could not carry over: one record per difference, printed one line each.

The exit code follows `import`: 0 when the output means what the inventory means, 7
(EXIT_DIFFERS) when it was written but behaves differently. Differences that change who
can reach what (ports, address families, listen addresses, unreachable upstreams) come
first and are marked loudly; notes are printed too but do not change the exit code: they
describe a platform default that differs only in corner cases the inventory cannot set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

ACCESS = "access"  # who can reach what: listed first, marked loudly
BEHAVIOUR = "behaviour"  # the same clients, a different answer
NOTE = "note"  # a platform default the inventory cannot choose; does not change the exit code

_ORDER = {ACCESS: 0, BEHAVIOUR: 1, NOTE: 2}


@dataclass(frozen=True)
class Difference:
    severity: str  # ACCESS, BEHAVIOUR or NOTE
    path: str  # the inventory key path it is about ("" for the whole inventory)
    message: str
    hint: Optional[str] = None
    # The exported object it concerns ("Gateway/home", "HTTPRoute/home-vhost0..."), if any.
    resource: str = ""

    def sort_key(self) -> tuple[int, str, str, str]:
        return (_ORDER[self.severity], self.path, self.resource, self.message)

    def format(self) -> str:
        head = {
            ACCESS: "DIFFERENCE (access)",
            BEHAVIOUR: "difference",
            NOTE: "note",
        }[self.severity]
        text = f"{head}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


@dataclass
class Report:
    """Collects differences while an exporter runs; the same one is never listed twice."""

    items: list[Difference] = field(default_factory=list)

    def add(
        self,
        severity: str,
        path: str,
        message: str,
        hint: Optional[str] = None,
        resource: str = "",
    ) -> None:
        item = Difference(severity, path, message, hint, resource)
        if item not in self.items:
            self.items.append(item)

    def access(
        self, path: str, message: str, hint: Optional[str] = None, resource: str = ""
    ) -> None:
        self.add(ACCESS, path, message, hint, resource)

    def behaviour(
        self, path: str, message: str, hint: Optional[str] = None, resource: str = ""
    ) -> None:
        self.add(BEHAVIOUR, path, message, hint, resource)

    def note(self, path: str, message: str, hint: Optional[str] = None, resource: str = "") -> None:
        self.add(NOTE, path, message, hint, resource)

    def sorted(self) -> list[Difference]:
        return sorted(self.items, key=Difference.sort_key)

    @property
    def differs(self) -> bool:
        """True when something behaves differently (notes alone do not count)."""
        return any(item.severity != NOTE for item in self.items)

    def lines(self) -> list[str]:
        """One line per difference; the same line for two objects (the http and https
        routes of a vhost) is printed once."""
        return list(dict.fromkeys(item.format() for item in self.sorted()))
