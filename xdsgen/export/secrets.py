"""Certificates as kubernetes.io/tls Secrets, read from the inventory's files at export time.

A certificate whose files cannot be read (exporting on a workstation, keys on the router)
is left out and listed as a difference with the kubectl command that creates it; the
objects that refer to it keep the reference, so they start working once it exists. No
placeholder key is ever written. Keys go only into Secrets, never into a ConfigMap.
"""

from __future__ import annotations

import base64
from typing import Any, Optional

from xdsgen.export.differences import Report
from xdsgen.export.manifests import metadata
from xdsgen.export.source import Certificate

# A Secret's data, like a ConfigMap's, may hold at most 1 MiB (the API server refuses more).
MAX_OBJECT_DATA = 1024 * 1024


def read_pem(path: str, what: str) -> tuple[Optional[str], str]:
    """(text, "") or (None, why not). PEM is ASCII: anything else is not a PEM file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_OBJECT_DATA + 1)
    except FileNotFoundError:
        return None, f"{what} {path} does not exist"
    except OSError as exc:
        return None, f"{what} {path}: {exc.strerror}"
    if len(raw) > MAX_OBJECT_DATA:
        return None, f"{what} {path} is larger than 1 MiB"
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None, f"{what} {path} is not a PEM file"
    if "-----BEGIN " not in text:
        return None, f"{what} {path} is not a PEM file"
    return text, ""


def tls_secret(
    certificate: Certificate,
    name: str,
    namespace: Optional[str],
    labels: dict[str, str],
    report: Report,
    used_by: str,
) -> Optional[dict[str, Any]]:
    """The Secret, or None (and a difference) when a file cannot be read."""
    cert, cert_problem = read_pem(certificate.cert, "certificate")
    key, key_problem = read_pem(certificate.key, "private key")
    if cert is None or key is None:
        report.access(
            certificate.path,
            f"{cert_problem or key_problem}: Secret {name} is not in the output, and "
            f"{used_by} cannot start or serve TLS for it until it exists",
            f"kubectl create secret tls {name} --cert=FULLCHAIN --key=PRIVKEY"
            + (f" -n {namespace}" if namespace else ""),
            resource=f"Secret/{name}",
        )
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace, labels),
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert.encode("ascii")).decode("ascii"),
            "tls.key": base64.b64encode(key.encode("ascii")).decode("ascii"),
        },
    }
