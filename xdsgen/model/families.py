"""The IPv4/IPv6 split: which families have listeners, and on which address."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

from xdsgen.errors import PathKey
from xdsgen.model.problems import Problems
from xdsgen.spec import Spec

FAMILY_VERSION = {"ipv4": 4, "ipv6": 6}


@dataclass(frozen=True)
class Family:
    name: str
    address: str  # normalised
    http: Optional[int]
    https: Optional[int]


def build(spec: Spec, problems: Problems) -> dict[str, Family]:
    """The families whose address is usable (sorted); the others are reported."""
    families: dict[str, Family] = {}
    for name, family in spec.listen.items():
        path: PathKey = (*family.path, "address")
        address = family.address
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            problems.error(
                path, f"{address!r} is not an IP address", "0.0.0.0 or :: listen on every address"
            )
            continue
        if "%" in address:
            problems.error(path, f"{address}: IPv6 zone ids (%eth0) are not supported by Envoy")
            continue
        if parsed.version != FAMILY_VERSION[name]:
            problems.error(
                path, f"{address} is an IPv{parsed.version} address in the {name} family"
            )
            continue
        families[name] = Family(name, str(parsed), family.http, family.https)
    return families


def served_on(
    wanted: Optional[tuple[str, ...]],
    path: PathKey,
    spec: Spec,
    families: dict[str, Family],
    problems: Problems,
) -> list[str]:
    """The families an item is served on: its `families`, else every usable one."""
    if wanted is None:
        return sorted(families)
    for index, family in enumerate(wanted):
        if family not in spec.listen_written:
            problems.error(
                (*path, "families", index),
                f"family {family!r} has no entry in listen",
                f"add listen.{family}, or remove it here",
            )
    return sorted(f for f in wanted if f in families)
