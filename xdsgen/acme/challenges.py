"""The seams between the ACME engine and whoever makes the CA's checks pass.

A publisher gets every challenge of an order at once: `publish` must return only when each
one can be seen by the CA (for HTTP-01: Envoy serves the token on port 80 of every domain;
for DNS-01: the TXT record is published), and `withdraw` removes them again, whether the
order succeeded or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

HTTP01_PREFIX = "/.well-known/acme-challenge/"


@dataclass(frozen=True)
class Http01Challenge:
    domain: str
    token: str
    key_authorization: str  # the body to answer GET <path> with, as text/plain

    @property
    def path(self) -> str:
        return HTTP01_PREFIX + self.token


@dataclass(frozen=True)
class Dns01Challenge:
    domain: str  # the name validated (a wildcard's base name: *.example.com -> example.com)
    fqdn: str  # _acme-challenge.<domain>, without the final dot
    value: str  # the TXT record's value


class Http01Publisher(Protocol):
    def publish(self, challenges: list[Http01Challenge]) -> None:
        """Serve every token on port 80 of its domain; return only once they are served."""

    def withdraw(self, challenges: list[Http01Challenge]) -> None:
        """Stop serving the tokens (after success or failure)."""


class Dns01Publisher(Protocol):
    def publish(self, challenges: list[Dns01Challenge]) -> None:
        """Publish every TXT record; return only once the CA can see them."""

    def withdraw(self, challenges: list[Dns01Challenge]) -> None:
        """Remove the records (after success or failure)."""
