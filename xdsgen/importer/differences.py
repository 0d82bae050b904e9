"""What an import reports: differences (the draft behaves otherwise) and notes (it does not).

Each difference names the generated resource it belongs to (its kind and its name in the
draft's render, when the draft has one) and keeps the original config fragment; one about
a field the inventory cannot say also carries the patch that would carry that field over
(`carry`, see xdsgen/importer/carrying.py). Differences that change who can reach what
come first and are marked loudly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Optional

# Topics that change who can reach what: reported first, in capitals.
LOUD_TOPICS = ("access", "auth", "redirect", "tls", "certificate", "ports", "websocket")
QUIET_TOPICS = (
    "routing",
    "upstream",
    "headers",
    "timeouts",
    "health-checks",
    "tuning",
    "tracing",
    "responses",
    "admin",
    "other",
)


# Characters that would break a message's one line, or make a terminal or a YAML comment
# show something else than the file holds (a route prefix may contain anything).
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def printable(text: str) -> str:
    """One visible line: control and invisible characters written as escapes."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@dataclass(frozen=True)
class Resource:
    """A resource of the draft's render: kind (listener, cluster, route_config, vhost,
    route) and its name there (None: the draft has no such resource)."""

    kind: str
    name: Optional[str]


@dataclass
class Difference:
    topic: str
    where: str  # the original: file and resource
    message: str  # one line: what the original does, what the draft does instead
    resource: Optional[Resource] = None
    fragment: Any = field(default=None, repr=False)
    # The original object the difference is about, until resolved into `resource`.
    anchor: Any = field(default=None, repr=False, compare=False)
    carry: Any = field(default=None, repr=False, compare=False)  # a semantics.Carry

    @property
    def loud(self) -> bool:
        return self.topic in LOUD_TOPICS

    def line(self) -> str:
        label = f"DIFFERENCE ({self.topic})" if self.loud else f"difference ({self.topic})"
        return printable(f"{label}: {self.where}: {self.message}")


@dataclass(frozen=True)
class Note:
    where: str
    message: str

    def line(self) -> str:
        text = f"note: {self.where}: {self.message}" if self.where else f"note: {self.message}"
        return printable(text)


class Report:
    """Differences and notes in the order found, each said once."""

    def __init__(self) -> None:
        self.differences: list[Difference] = []
        self.notes: list[Note] = []
        self._seen: set[tuple[str, str, str]] = set()
        # Notes true only while a field is not carried over: note -> (object, extras key).
        self.unless: dict[Note, tuple[Any, tuple[str, str]]] = {}
        # Fields that change nothing alone, offered as patches without a difference.
        self.offers: list[Difference] = []

    def differ(
        self,
        topic: str,
        where: str,
        message: str,
        fragment: Any = None,
        anchor: Any = None,
        resource: Optional[Resource] = None,
        carry: Any = None,
    ) -> None:
        if topic not in LOUD_TOPICS and topic not in QUIET_TOPICS:
            topic = "other"
        key = (topic, where, message)
        if key not in self._seen:
            self._seen.add(key)
            self.differences.append(
                Difference(topic, where, message, resource, fragment, anchor, carry)
            )

    def note(
        self, where: str, message: str, unless: Optional[tuple[Any, tuple[str, str]]] = None
    ) -> None:
        """`unless`: the note is dropped if a patch carries that field of that object."""
        note = Note(where, message)
        if note not in self.notes:
            self.notes.append(note)
            if unless is not None:
                self.unless[note] = unless

    def copy(self) -> Report:
        """What was reported so far, to compare a draft against without changing this."""
        other = Report()
        other.differences = [replace(d) for d in self.differences]
        other.notes = list(self.notes)
        other._seen = set(self._seen)
        other.unless = dict(self.unless)
        other.offers = self.offers
        return other

    def ordered(self) -> list[Difference]:
        """Loud differences first, each group in the order found."""
        return [d for d in self.differences if d.loud] + [d for d in self.differences if not d.loud]
