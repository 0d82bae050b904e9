"""The certificates part of the model: every `certificates:` entry, with its ACME settings.

`build` is the one function the model's builder calls. It makes the `Secret`s Envoy is
given (their file paths as Envoy sees them) and the `Certificate`s xdsgen itself reads and,
for `acme:`, obtains and renews (their paths as xdsgen sees them: with Docker these differ
for the default location under the config directory). Nothing here talks to a CA; the ACME
engine (`xdsgen.acme`, and the `acme` library) is imported only by the code that does.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, replace
from typing import Any, Optional, Protocol

from xdsgen.errors import Problem
from xdsgen.inventory import Inventory, PathKey

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
DIRECTORY_WORDS = {"staging": LETSENCRYPT_STAGING}
HTTP01 = "http-01"
DNS01 = "dns-01"
DEFAULT_RENEW_BEFORE = "30d"
CERTS_DIR = "certs"  # <config_dir>/certs/<name>/ when acme: gives no cert/key
CHAIN_FILE = "fullchain.pem"
KEY_FILE = "privkey.pem"
MAX_NAMES = 100  # Let's Encrypt's limit of names in one certificate

_PERIOD_RE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class AcmeSettings:
    email: str
    directory: str  # the URL (the word `staging` resolved)
    ca_bundle: Optional[str]  # CA of the ACME server's own HTTPS certificate; None: system's
    challenge: str  # http-01 or dns-01
    dns_hook: Optional[str]
    dns_propagation: float  # seconds to wait after the hook added the records
    renew_before: float  # seconds before not-after at which a certificate is renewed


@dataclass(frozen=True)
class Certificate:
    """One `certificates:` entry as xdsgen reads (and with acme, writes) it."""

    name: str
    cert: str  # the chain file, as xdsgen sees it
    key: str
    domains: tuple[str, ...]  # every domain of every vhost with `tls: NAME`, sorted
    acme: Optional[AcmeSettings] = None
    default_paths: bool = False  # under <config_dir>/certs/<name>/: moves with --config-dir

    @property
    def source(self) -> str:
        return "acme" if self.acme else "file"


class Checker(Protocol):
    """What `build` needs from the model's builder: where to report, and its file checks."""

    inv: Inventory
    data: dict[str, Any]

    def error(self, path: PathKey, message: str, hint: Optional[str] = None) -> None: ...

    def warn(self, path: PathKey, message: str, hint: Optional[str] = None) -> None: ...

    def require_absolute(self, path: PathKey, file_path: str) -> bool: ...

    def check_file(self, path: PathKey, file_path: str, is_key: bool) -> None: ...


def parse_period(text: str) -> float:
    """Seconds in a duration such as 30d, 12h, 90m, 30s or 1.5s; ValueError if malformed."""
    match = _PERIOD_RE.match(text)
    if not match:
        raise ValueError(text)
    whole, fraction, unit = match.groups()
    return float(f"{whole}.{fraction or 0}") * _UNIT_SECONDS[unit]


def default_paths(config_dir: str, name: str) -> tuple[str, str]:
    directory = posixpath.join(config_dir, CERTS_DIR, name)
    return posixpath.join(directory, CHAIN_FILE), posixpath.join(directory, KEY_FILE)


def domains_by_certificate(vhosts: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    found: dict[str, set[str]] = {}
    for vhost in vhosts:
        if isinstance(vhost, dict) and isinstance(vhost.get("tls"), str):
            found.setdefault(vhost["tls"], set()).update(
                d.lower() for d in vhost.get("domains") or [] if isinstance(d, str)
            )
    return {name: tuple(sorted(names)) for name, names in found.items()}


def build(
    checker: Checker, config_dir: str, envoy_dir: str
) -> tuple[dict[str, tuple[str, str]], tuple[Certificate, ...]]:
    """Check `certificates:` and return, per name, the (cert, key) paths Envoy reads, and
    every Certificate (used by a vhost or not) with the paths xdsgen reads."""
    vhosts = checker.data.get("http") or []
    domains = domains_by_certificate(vhosts)
    envoy_paths: dict[str, tuple[str, str]] = {}
    certificates = []
    lowered: dict[str, str] = {}
    for name, spec in (checker.data.get("certificates") or {}).items():
        path: PathKey = ("certificates", name)
        if name.lower() in lowered:
            checker.error(
                path,
                f"certificate {name!r} differs from {lowered[name.lower()]!r} only in case",
                "rename one",
            )
        lowered.setdefault(name.lower(), name)
        acme = _acme_settings(checker, name, spec.get("acme"), domains.get(name, ()), vhosts)
        given = [which for which in ("cert", "key") if which in spec]
        if acme is not None and not given:
            cert, key = default_paths(config_dir, name)
            envoy_paths[name] = default_paths(envoy_dir, name)
            certificates.append(Certificate(name, cert, key, domains.get(name, ()), acme, True))
            continue
        if len(given) < 2:
            missing = "key" if given == ["cert"] else "cert"
            checker.error(
                path,
                f"missing {missing}: a certificate needs both cert and key"
                + (", or neither (acme then keeps them in the config directory)" if acme else ""),
                f"add {missing}: /path/to/"
                + (KEY_FILE if missing == "key" else CHAIN_FILE)
                + ("" if acme else ", or acme: to obtain the certificate from Let's Encrypt"),
            )
            continue
        cert, key = spec["cert"], spec["key"]
        for which, file_path in (("cert", cert), ("key", key)):
            # ACME's own files are missing until the first issuance: the engine's business.
            if checker.require_absolute((*path, which), file_path) and acme is None:
                checker.check_file((*path, which), file_path, is_key=which == "key")
        envoy_paths[name] = (cert, key)
        certificates.append(Certificate(name, cert, key, domains.get(name, ()), acme))
    return envoy_paths, tuple(sorted(certificates, key=lambda c: c.name))


def _acme_settings(
    checker: Checker,
    name: str,
    spec: Optional[dict[str, Any]],
    domains: tuple[str, ...],
    vhosts: list[dict[str, Any]],
) -> Optional[AcmeSettings]:
    if spec is None:
        return None
    path: PathKey = ("certificates", name, "acme")
    challenge = spec.get("challenge", HTTP01)
    if not domains:
        checker.error(
            path,
            f"no vhost uses certificate {name!r}: there is no domain to put in it",
            f"add tls: {name} to a vhost in http, or remove the certificate",
        )
    elif len(domains) > MAX_NAMES:
        checker.error(
            path,
            f"{len(domains)} domains use certificate {name!r}; an ACME CA such as Let's "
            f"Encrypt puts at most {MAX_NAMES} names in one certificate",
            "split the vhosts over two certificates",
        )
    if challenge == HTTP01:
        for index, vhost in enumerate(vhosts):
            if not isinstance(vhost, dict) or vhost.get("tls") != name:
                continue
            for d_index, domain in enumerate(vhost.get("domains") or []):
                if isinstance(domain, str) and domain.startswith("*."):
                    checker.error(
                        ("http", index, "domains", d_index),
                        f"wildcard {domain!r} in certificate {name!r}: a CA validates a "
                        "wildcard only through DNS (dns-01), never http-01",
                        f"set certificates.{name}.acme.challenge: dns-01 with a dns_hook, "
                        "or list the host names",
                    )
        if "dns_hook" in spec:
            checker.warn((*path, "dns_hook"), "dns_hook is used only with challenge: dns-01")
    elif "dns_hook" not in spec:
        checker.error(
            (*path, "challenge"),
            "dns-01 needs dns_hook: the program that adds and removes the TXT records",
            "add dns_hook: /path/to/hook (README shows a 5-line one)",
        )
    for key in ("dns_hook", "ca_bundle"):
        if key in spec:
            checker.require_absolute((*path, key), spec[key])
    renew_before = _period(checker, (*path, "renew_before"), spec, DEFAULT_RENEW_BEFORE)
    propagation = _period(checker, (*path, "dns_propagation"), spec, "0s")
    directory = spec.get("directory", LETSENCRYPT)
    return AcmeSettings(
        email=spec.get("email", ""),
        directory=DIRECTORY_WORDS.get(directory, directory),
        ca_bundle=spec.get("ca_bundle"),
        challenge=challenge,
        dns_hook=spec.get("dns_hook"),
        dns_propagation=propagation,
        renew_before=renew_before,
    )


def _period(checker: Checker, path: PathKey, spec: dict[str, Any], default: str) -> float:
    text = spec.get(str(path[-1]), default)
    try:
        seconds = parse_period(text)
    except ValueError:
        checker.error(path, f"invalid duration {text!r}", "write a number and a unit: 30d, 12h")
        return parse_period(default)
    if path[-1] == "renew_before" and seconds <= 0:
        checker.error(path, "must be more than 0", f"e.g. {DEFAULT_RENEW_BEFORE}")
    return seconds


def relocate(certificates: tuple[Certificate, ...], config_dir: str) -> tuple[Certificate, ...]:
    """The certificates with the default location moved to another config directory."""
    moved = []
    for cert in certificates:
        if cert.default_paths:
            chain, key = default_paths(config_dir, cert.name)
            cert = replace(cert, cert=chain, key=key)
        moved.append(cert)
    return tuple(moved)


def missing_acme_files(
    inventory: Inventory, certificates: tuple[Certificate, ...]
) -> list[Problem]:
    """Errors for ACME certificates not obtained yet, for commands that hand them to Envoy
    (Envoy refuses a listener whose certificate files are missing)."""
    problems = []
    for cert in certificates:
        if cert.acme is None:
            continue
        missing = [p for p in (cert.cert, cert.key) if not os.path.isfile(p)]
        if missing:
            problems.append(
                inventory.problem(
                    ("certificates", cert.name, "acme"),
                    f"certificate {cert.name!r} has not been obtained yet "
                    f"({', '.join(missing)} missing)",
                    f"run: xdsgen certs renew {inventory.source} {cert.name}"
                    if cert.acme.challenge == DNS01
                    else "xdsgen does not answer http-01 through Envoy yet: use challenge: "
                    "dns-01, or give cert and key files obtained elsewhere",
                )
            )
    return problems
