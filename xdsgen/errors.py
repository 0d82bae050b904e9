"""The exception hierarchy and the exit codes; messages are made only at the CLI edge.

Exit codes (the one place they are defined; README's table is checked against this):
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional, Union

EXIT_OK = 0
EXIT_INVALID = 1  # the inventory (or a file it names) is invalid
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_ENVOY = 3  # Envoy refused the config, or did not confirm it in time
EXIT_LOCKED = 4  # another apply holds the config directory's lock
EXIT_CHANGES = 5  # apply --dry-run: the plan is not empty (like terraform's -detailed-exitcode)
EXIT_IO = 6  # a file could not be read or written, or Envoy's admin is unreachable
EXIT_DIFFERS = 7  # import/export wrote its output, but it does not mean the same as the input
EXIT_ACME = 8  # the ACME CA did not issue a certificate (unreachable, refused, rate limited)

EXIT_CODES = {
    EXIT_OK: "success (for apply --dry-run: nothing would change)",
    EXIT_INVALID: "invalid inventory: every problem is listed",
    EXIT_USAGE: "usage error (unknown option, missing argument)",
    EXIT_ENVOY: (
        "Envoy refused the config or did not confirm it in time; the last config Envoy "
        "confirmed is restored"
    ),
    EXIT_LOCKED: "another apply holds the config directory's lock (--lock-timeout ran out)",
    EXIT_CHANGES: "apply --dry-run: changes would be made",
    EXIT_IO: "a file or Envoy's admin interface could not be reached",
    EXIT_DIFFERS: (
        "import/export: the output was written, but it behaves differently from the input; "
        "every difference is listed"
    ),
    EXIT_ACME: (
        "a certificate could not be obtained or renewed from the ACME CA; the running config "
        "and the certificate files are untouched"
    ),
}


# Where in the inventory: ("http", 0, "routes", 2, "upstream").
PathKey = tuple[Union[str, int], ...]
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


def format_path(path: PathKey) -> str:
    """http[0].routes[2].upstream; keys that are not plain words are quoted and escaped
    (upstreams["nas.lan"], upstreams["app\\u202e"]) so a message never carries a raw
    control or bidi character."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_PATH_PART = re.compile(r'\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([A-Za-z0-9_][A-Za-z0-9_-]*)')


def parse_path(text: str) -> Optional[PathKey]:
    """The key path format_path wrote `text` from; None for anything it cannot have written."""
    parts: list[Union[str, int]] = []
    at = 0
    while at < len(text):
        match = _PATH_PART.match(text, at)
        if match is None or (match.group(3) and at > 0 and text[at] != "."):
            return None
        index, quoted, word = match.groups()
        parts.append(int(index) if index else json.loads(quoted) if quoted else word)
        at = match.end()
    return tuple(parts)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an inventory, located as precisely as we can."""

    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: str  # key path such as http[0].routes[2].upstream ("" for the whole file)
    message: str
    hint: Optional[str] = None
    severity: str = "error"  # "error" or "warning"
    source: str = field(default="", compare=False)

    def format(self) -> str:
        where = self.source or "<inventory>"
        if self.line:
            where += f":{self.line}:{self.column}"
        text = f"{where}: {self.severity}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def as_error(self) -> Problem:
        """The same problem as an error (validate --strict)."""
        return Problem(
            self.line, self.column, self.path, self.message, self.hint, "error", self.source
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.source,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


class XdsgenError(Exception):
    """Base of every error xdsgen reports to a person; carries its exit code."""

    exit_code = EXIT_INVALID


class InventoryError(XdsgenError):
    """The inventory is invalid; `problems` lists every error found (sorted by position)."""

    exit_code = EXIT_INVALID

    def __init__(
        self,
        problems: list[Problem],
        warnings: Optional[list[Problem]] = None,
        partial: object = None,
    ):
        self.problems = sorted(problems)
        self.warnings = sorted(warnings or [])
        # The parsed inventory when only its shape is wrong, so that the meaning checks can
        # still run and every problem of the file is reported in one go.
        self.partial = partial
        super().__init__("\n".join(p.format() for p in self.problems))


class RenderError(XdsgenError):
    """The rendered output did not parse back to the model: a bug in xdsgen, never written."""

    exit_code = EXIT_INVALID


class EnvoyRefused(XdsgenError):
    """Envoy (its validate mode, or the running server) refused the config."""

    exit_code = EXIT_ENVOY


class LockTimeout(XdsgenError):
    exit_code = EXIT_LOCKED


class IOProblem(XdsgenError):
    exit_code = EXIT_IO


class ExportError(XdsgenError):
    """The inventory is valid but cannot become the requested manifests (a ConfigMap over
    1 MiB, more listeners than a Gateway holds); the message says what to do instead."""

    exit_code = EXIT_INVALID


class UsageProblem(XdsgenError):
    """A command-line argument xdsgen itself checks (a URL for explain, a format) is wrong."""

    exit_code = EXIT_USAGE


class AcmeError(XdsgenError):
    """The ACME CA did not issue: unreachable, a challenge refused, rate limited, ...

    `domain` is the name the CA complained about (or every name of the certificate when it
    named none), `reason` the CA's own words (its problem document's detail)."""

    exit_code = EXIT_ACME

    def __init__(
        self,
        certificate: str,
        domain: str,
        reason: str,
        ca: str = "",
        rate_limited: bool = False,
    ):
        self.certificate = certificate
        self.domain = domain
        self.reason = reason
        self.ca = ca
        self.rate_limited = rate_limited
        where = f" (ACME CA {ca})" if ca else ""
        super().__init__(f"certificate {certificate!r}, {domain}: {reason}{where}")
