"""Certificates: every `certificates:` entry, with its ACME settings.

`build` makes the `Secret`s Envoy is given (their file paths as Envoy sees them) and the
`Certificate`s xdsgen itself reads and, for `acme:`, obtains and renews (their paths as
xdsgen sees them: with Docker these differ for the default location under the config
directory). Nothing here talks to a CA; the ACME engine (`xdsgen.acme`, and the `acme`
library) is imported only by the code that does.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Optional

from xdsgen.conventions import ACME_CHAIN_FILE as CHAIN_FILE
from xdsgen.conventions import ACME_KEY_FILE as KEY_FILE
from xdsgen.conventions import acme_paths as default_paths
from xdsgen.errors import PathKey
from xdsgen.model.ir import AcmeSettings, Certificate, Secret
from xdsgen.model.problems import Problems
from xdsgen.spec import DEFAULTS, AcmeSpec, Spec

LETSENCRYPT = DEFAULTS["certificates.*.acme.directory"]
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
DIRECTORY_WORDS = {"staging": LETSENCRYPT_STAGING}
HTTP01 = "http-01"
DNS01 = "dns-01"
DEFAULT_RENEW_BEFORE = DEFAULTS["certificates.*.acme.renew_before"]
MAX_NAMES = 100  # Let's Encrypt's limit of names in one certificate

_PERIOD_RE = re.compile(r"^([0-9]+)(?:\.([0-9]+))?(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_period(text: str) -> float:
    """Seconds in a duration such as 30d, 12h, 90m, 30s or 1.5s; ValueError if malformed."""
    match = _PERIOD_RE.match(text)
    if not match:
        raise ValueError(text)
    whole, fraction, unit = match.groups()
    return float(f"{whole}.{fraction or 0}") * _UNIT_SECONDS[unit]


def domains_by_certificate(spec: Spec) -> dict[str, tuple[str, ...]]:
    found: dict[str, set[str]] = {}
    for vhost in spec.http:
        if vhost.tls is not None:
            found.setdefault(vhost.tls, set()).update(d.lower() for d in vhost.domains)
    return {name: tuple(sorted(names)) for name, names in found.items()}


def build(
    spec: Spec, config_dir: str, envoy_dir: str, problems: Problems, check_files: bool
) -> tuple[dict[str, Secret], tuple[Certificate, ...]]:
    """Check `certificates:` and return, per name, the Secret (the paths Envoy reads), and
    every Certificate (used by a vhost or not) with the paths xdsgen reads."""
    domains = domains_by_certificate(spec)
    secrets: dict[str, Secret] = {}
    certificates = []
    lowered: dict[str, str] = {}
    for name, entry in spec.certificates.items():
        path = entry.path
        if name.lower() in lowered:
            problems.error(
                path,
                f"certificate {name!r} differs from {lowered[name.lower()]!r} only in case",
                "rename one",
            )
        lowered.setdefault(name.lower(), name)
        acme = _acme_settings(spec, name, entry.acme, domains.get(name, ()), problems)
        given = [which for which in ("cert", "key") if getattr(entry, which) is not None]
        if acme is not None and not given:
            cert, key = default_paths(config_dir, name)
            secrets[name] = Secret(name, *default_paths(envoy_dir, name))
            certificates.append(Certificate(name, cert, key, domains.get(name, ()), acme, True))
            continue
        if len(given) < 2:
            missing = "key" if given == ["cert"] else "cert"
            problems.error(
                path,
                f"missing {missing}: a certificate needs both cert and key"
                + (", or neither (acme then keeps them in the config directory)" if acme else ""),
                f"add {missing}: /path/to/"
                + (KEY_FILE if missing == "key" else CHAIN_FILE)
                + ("" if acme else ", or acme: to obtain the certificate from Let's Encrypt"),
            )
            continue
        cert, key = str(entry.cert), str(entry.key)
        for which, file_path in (("cert", cert), ("key", key)):
            # ACME's own files are missing until the first issuance: the engine's business.
            if problems.require_absolute((*path, which), file_path) and acme is None:
                check_file(problems, (*path, which), file_path, which == "key", check_files)
        secrets[name] = Secret(name, cert, key)
        certificates.append(Certificate(name, cert, key, domains.get(name, ()), acme))
    return secrets, tuple(sorted(certificates, key=lambda c: c.name))


def check_file(
    problems: Problems, path: PathKey, file_path: str, is_key: bool, check_files: bool
) -> None:
    """Missing files are errors for apply (Envoy would refuse the listener) and warnings
    otherwise (rendering for another machine is normal)."""
    problem = None
    try:
        info = os.stat(file_path)
        if not stat.S_ISREG(info.st_mode):
            problem = f"{file_path} is not a regular file"
        elif not os.access(file_path, os.R_OK):
            problem = f"{file_path} is not readable"
    except FileNotFoundError:
        problem = f"{file_path} does not exist"
    except OSError as exc:
        problem = f"{file_path}: {exc.strerror}"
    except ValueError:  # a NUL in the path (the loader reports the character itself)
        return
    if problem:
        if check_files:
            problems.error(path, problem, "Envoy would refuse the listener; fix the path")
        else:
            problems.warn(path, problem, "fine if you render for another machine")
        return
    if is_key and info.st_mode & stat.S_IROTH:
        problems.warn(path, f"private key {file_path} is readable by every user", "chmod o-r it")


def _acme_settings(
    spec: Spec,
    name: str,
    acme: Optional[AcmeSpec],
    domains: tuple[str, ...],
    problems: Problems,
) -> Optional[AcmeSettings]:
    if acme is None:
        return None
    path = acme.path
    if not domains:
        problems.error(
            path,
            f"no vhost uses certificate {name!r}: there is no domain to put in it",
            f"add tls: {name} to a vhost in http, or remove the certificate",
        )
    elif len(domains) > MAX_NAMES:
        problems.error(
            path,
            f"{len(domains)} domains use certificate {name!r}; an ACME CA such as Let's "
            f"Encrypt puts at most {MAX_NAMES} names in one certificate",
            "split the vhosts over two certificates",
        )
    if acme.challenge == HTTP01:
        for vhost in spec.http:
            if vhost.tls != name:
                continue
            for d_index, domain in enumerate(vhost.domains):
                if domain.startswith("*."):
                    problems.error(
                        (*vhost.path, "domains", d_index),
                        f"wildcard {domain!r} in certificate {name!r}: a CA validates a "
                        "wildcard only through DNS (dns-01), never http-01",
                        f"set certificates.{name}.acme.challenge: dns-01 with a dns_hook, "
                        "or list the host names",
                    )
        if acme.dns_hook is not None:
            problems.warn((*path, "dns_hook"), "dns_hook is used only with challenge: dns-01")
    elif acme.dns_hook is None:
        problems.error(
            (*path, "challenge"),
            "dns-01 needs dns_hook: the program that adds and removes the TXT records",
            "add dns_hook: /path/to/hook (README shows a 5-line one)",
        )
    for key in ("dns_hook", "ca_bundle"):
        value = getattr(acme, key)
        if value is not None:
            problems.require_absolute((*path, key), value)
    return AcmeSettings(
        email=acme.email,
        directory=DIRECTORY_WORDS.get(acme.directory, acme.directory),
        ca_bundle=acme.ca_bundle,
        challenge=acme.challenge,
        dns_hook=acme.dns_hook,
        dns_propagation=_period((*path, "dns_propagation"), acme.dns_propagation, "0s", problems),
        renew_before=_period(
            (*path, "renew_before"), acme.renew_before, DEFAULT_RENEW_BEFORE, problems
        ),
    )


def _period(path: PathKey, text: str, default: str, problems: Problems) -> float:
    try:
        seconds = parse_period(text)
    except ValueError:
        problems.error(path, f"invalid duration {text!r}", "write a number and a unit: 30d, 12h")
        return parse_period(default)
    if path[-1] == "renew_before" and seconds <= 0:
        problems.error(path, "must be more than 0", f"e.g. {DEFAULT_RENEW_BEFORE}")
    return seconds
