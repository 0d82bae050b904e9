"""Certificates renewed in place, seen by xdsgen and handed to Envoy.

Envoy re-reads a secret's files only when a file is *moved* into their directory;
acme.sh copies over the old files and certbot swaps symlinks, and Envoy notices neither.
apply keeps a fingerprint of every certificate and key it handed to Envoy; when one
changed, it moves a marker file into the certificate's directory and waits until Envoy
serves the new certificate. A renewal may keep its serial number, so "served" means the
same serial *and* the same expiry in Envoy's /certs for that file, never the serial alone.

A few lines of DER reading instead of the cryptography package, which OpenWrt lacks.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen.files import TEMP_PREFIX

RELOAD_MARKER = ".xdsgen-reload"
_BEGIN = "-----BEGIN CERTIFICATE-----"
_END = "-----END CERTIFICATE-----"


@dataclass(frozen=True)
class CertReload:
    """A certificate whose files changed while its sds_ file did not: Envoy must re-read them."""

    secret: str
    cert: str
    key: str
    fingerprint: str
    reason: str = "certificate files changed"


@dataclass(frozen=True)
class Identity:
    """What tells one certificate from its renewal in Envoy's /certs."""

    serial: str  # lower-case hex, no leading zeros
    not_after: str  # as Envoy prints it: 2027-01-31T12:00:00Z

    def __str__(self) -> str:
        return f"serial {self.serial}, expires {self.not_after}"


class CertificateFailure(Exception):
    """The marker file could not be moved into a certificate's directory."""


def fingerprint(cert: str, key: str) -> Optional[str]:
    """A digest of the certificate and key contents (following symlinks), None if unreadable."""
    digest = hashlib.sha256()
    try:
        for path in (cert, key):
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    except OSError:
        return None
    return digest.hexdigest()[:32]


def _first_der(path: str) -> bytes:
    with open(path, encoding="ascii", errors="replace") as handle:
        text = handle.read()
    begin = text.index(_BEGIN) + len(_BEGIN)
    end = text.index(_END, begin)
    return base64.b64decode("".join(text[begin:end].split()))


class _Der:
    def __init__(self, der: bytes):
        self.der = der

    def header(self, pos: int) -> tuple[int, int, int]:
        """(tag, start of the content, its length) of the element at `pos`."""
        der = self.der
        tag, length = der[pos], der[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(der[pos : pos + count], "big")
            pos += count
        if pos + length > len(der):
            raise ValueError("truncated DER")
        return tag, pos, length


def _time(tag: int, raw: bytes) -> str:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: years 50-99 are 19xx (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("not a time")
    parsed = datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate_identity(path: str) -> Optional[Identity]:
    """Serial and expiry of the first certificate in a PEM file, None if unreadable."""
    try:
        der = _Der(_first_der(path))
        tag, pos, _ = der.header(0)  # Certificate
        tag2, pos, _ = der.header(pos)  # TBSCertificate
        tag3, inner, length = der.header(pos)
        if tag3 == 0xA0:  # [0] version
            inner += length
            tag3, inner, length = der.header(inner)
        if (tag, tag2, tag3) != (0x30, 0x30, 0x02):
            return None
        serial = der.der[inner : inner + length].hex().lstrip("0") or "0"
        pos = inner + length
        for _ in range(2):  # signature algorithm, issuer
            _, start, length = der.header(pos)
            pos = start + length
        tag, start, _ = der.header(pos)  # Validity
        if tag != 0x30:
            return None
        _, before, length = der.header(start)  # notBefore
        tag, after, length2 = der.header(before + length)  # notAfter
        return Identity(serial, _time(tag, der.der[after : after + length2]))
    except (OSError, ValueError, IndexError):
        return None


def certificate_serial(path: str) -> Optional[str]:
    identity = certificate_identity(path)
    return identity.serial if identity else None


def reloads_needed(secrets: Any, known: dict[str, str]) -> tuple[CertReload, ...]:
    """Secrets whose files differ from what Envoy was last given (`known` fingerprints)."""
    reloads = []
    for secret in secrets:
        current = fingerprint(secret.cert, secret.key)
        if current is None or known.get(secret.name) == current:
            continue
        reason = (
            "certificate files changed"
            if secret.name in known
            else "certificate files not yet confirmed"
        )
        reloads.append(CertReload(secret.name, secret.cert, secret.key, current, reason))
    return tuple(reloads)


def is_served(reload: CertReload, served: set[tuple[str, str]]) -> bool:
    """Whether Envoy serves this certificate file's certificate (serial and expiry)."""
    identity = certificate_identity(reload.cert)
    return identity is not None and (identity.serial, identity.not_after) in served


def signal_reload(reload: CertReload) -> None:
    """Make Envoy re-read a secret's files: it watches their directory for files moved in."""
    directory = os.path.dirname(os.path.abspath(reload.cert))
    try:
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        os.close(fd)
        os.replace(temp, os.path.join(directory, RELOAD_MARKER))
        os.unlink(os.path.join(directory, RELOAD_MARKER))
    except OSError as exc:
        raise CertificateFailure(
            f"cannot ask Envoy to re-read certificate {reload.secret!r}: moving a marker file "
            f"into {directory} failed ({exc.strerror}); xdsgen needs write access there"
        ) from None


def reloads_to_give(
    secrets: Any, known: dict[str, str], admin: Any
) -> tuple[tuple[CertReload, ...], set[CertReload]]:
    """Certificates whose files changed since Envoy was given them, less those Envoy
    already serves (renewed by a rename it noticed itself: only to be remembered)."""
    from xdsgen.admin import AdminUnreachable

    reloads = reloads_needed(secrets, known)
    if admin is None or not reloads:
        return reloads, set()
    try:
        serving = admin.served_certificates()
    except AdminUnreachable:
        serving = set()
    served = {r for r in reloads if is_served(r, serving)}
    return tuple(r for r in reloads if r not in served), served
