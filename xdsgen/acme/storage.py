"""Certificate files: what a chain says (issuer, not-after, names), and installing a new pair.

Installing never leaves a chain beside a key it does not belong to. Both files are first
written complete beside their targets (`.NAME.xdsgen-new`, by temp file and rename), then
the key is renamed into place, then the chain. A run killed between the two renames leaves
the new chain staged: `recover` (run before anything reads the pair) finishes the job.

Ownership: a renewed file keeps the owner, group and mode of the one it replaces (a key
once given to Envoy's uid 101 in Docker stays readable by it; a key is never made readable
by others); a new file gets the owner of its directory. Keys are 0600, chains 0644.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from xdsgen.errors import IOProblem
from xdsgen.files import TEMP_PREFIX, fsync_dir, sweep_temp_files

KEY_MODE = 0o600
CHAIN_MODE = 0o644
STAGED_SUFFIX = ".xdsgen-new"


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    not_before: datetime.datetime  # aware, UTC
    not_after: datetime.datetime
    serial: str  # lower-case hex
    domains: tuple[str, ...]  # the DNS names of subjectAltName, lower case, sorted
    public_key: bytes  # SubjectPublicKeyInfo, DER: compared with the private key's


@dataclass(frozen=True)
class PairState:
    """What is on disk for one certificate: its chain (or why not) and whether the key fits."""

    info: Optional[CertInfo]
    problem: Optional[str]  # "missing", or why the chain cannot be read
    key_matches: bool


def _x509() -> Any:
    try:
        from cryptography import x509
    except ImportError:
        raise IOProblem(
            "reading certificates needs the cryptography package: pip install 'xdsgen[acme]'"
        ) from None
    return x509


def _name(name: Any) -> str:
    x509 = _x509()
    common = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(common[0].value) if common else name.rfc4514_string()


def parse_chain(pem: bytes) -> CertInfo:
    """The first certificate of a PEM chain; ValueError if there is none."""
    x509 = _x509()
    from cryptography.hazmat.primitives import serialization

    certificate = x509.load_pem_x509_certificates(pem)[0]
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    return CertInfo(
        subject=_name(certificate.subject),
        issuer=_name(certificate.issuer),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        serial=f"{certificate.serial_number:x}",
        domains=tuple(sorted({n.lower() for n in names})),
        public_key=certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def public_key_of(key_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a PEM private key; ValueError if it is not one."""
    _x509()
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def read_certificate(path: str) -> CertInfo:
    """Raises OSError or ValueError."""
    return parse_chain(_read(path))


def pair_matches(info: CertInfo, key_path: str) -> bool:
    try:
        return public_key_of(_read(key_path)) == info.public_key
    except (OSError, ValueError, TypeError):
        return False


def inspect(cert_path: str, key_path: str) -> PairState:
    try:
        info = read_certificate(cert_path)
    except FileNotFoundError:
        return PairState(None, "missing", False)
    except OSError as exc:
        return PairState(None, f"cannot read {cert_path}: {exc.strerror}", False)
    except (ValueError, IndexError):
        return PairState(None, f"{cert_path} holds no PEM certificate", False)
    return PairState(info, None, pair_matches(info, key_path))


# --------------------------------------------------------------------------- install


def staged_path(target: str) -> str:
    directory, base = os.path.split(os.path.abspath(target))
    return os.path.join(directory, f".{base}{STAGED_SUFFIX}")


def _ensure_directory(directory: str) -> None:
    """Create missing directories, each owned like its parent (Docker: chown certs/ once)."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            continue
        except OSError as exc:
            raise IOProblem(f"cannot create {path}: {exc.strerror}") from None
        parent = os.stat(os.path.dirname(path))
        with contextlib.suppress(OSError):
            os.chown(path, parent.st_uid, parent.st_gid)


def _ownership(target: str, default_mode: int, is_key: bool) -> tuple[int, int, int]:
    """(uid, gid, mode) for the file that replaces `target`."""
    try:
        info = os.stat(target)
    except OSError:
        parent = os.stat(os.path.dirname(os.path.abspath(target)))
        return parent.st_uid, parent.st_gid, default_mode
    mode = stat.S_IMODE(info.st_mode)
    if is_key:
        mode = (mode & 0o640) | 0o600  # keep group read if it was given; never others
    return info.st_uid, info.st_gid, mode


def _stage(target: str, data: bytes, default_mode: int, is_key: bool) -> str:
    """Write `data` complete as the staged file beside `target`; return its path."""
    directory = os.path.dirname(os.path.abspath(target))
    uid, gid, mode = _ownership(target, default_mode, is_key)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".pem", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # before the data: a key is never readable by others
            with contextlib.suppress(OSError):  # only root may give a file away
                os.fchown(handle.fileno(), uid, gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        staged = staged_path(target)
        os.replace(temp, staged)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return staged


def install(cert_path: str, key_path: str, key_pem: bytes, chain_pem: bytes) -> None:
    """Put a new key and chain in place: the key first, then the chain, each by rename."""
    if parse_chain(chain_pem).public_key != public_key_of(key_pem):
        raise ValueError("the chain does not belong to the key")  # a bug: never installed
    for path in (key_path, cert_path):
        _ensure_directory(os.path.dirname(os.path.abspath(path)))
    staged: list[str] = []
    try:
        staged.append(_stage(key_path, key_pem, KEY_MODE, is_key=True))
        staged.append(_stage(cert_path, chain_pem, CHAIN_MODE, is_key=False))
    except OSError as exc:
        for path in staged:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise IOProblem(f"cannot write the new certificate files: {exc.strerror}") from None
    try:
        os.replace(staged[0], key_path)
        fsync_dir(os.path.dirname(os.path.abspath(key_path)))
        os.replace(staged[1], cert_path)
        fsync_dir(os.path.dirname(os.path.abspath(cert_path)))
    except OSError as exc:
        raise IOProblem(
            f"cannot move the new certificate into place ({exc.strerror}); the next run "
            "finishes or undoes it"
        ) from None


def recover(cert_path: str, key_path: str) -> Optional[str]:
    """Finish (or undo) an installation a killed run left half done; say what was done."""
    for path in {os.path.dirname(os.path.abspath(p)) for p in (cert_path, key_path)}:
        sweep_temp_files(path)
    staged_key, staged_chain = staged_path(key_path), staged_path(cert_path)
    has_key, has_chain = os.path.exists(staged_key), os.path.exists(staged_chain)
    if not has_key and not has_chain:
        return None
    try:
        if has_chain:
            chain = _read(staged_chain)
            key_source = staged_key if has_key else key_path
            if public_key_of(_read(key_source)) == parse_chain(chain).public_key:
                if has_key:
                    os.replace(staged_key, key_path)
                os.replace(staged_chain, cert_path)
                for path in (key_path, cert_path):
                    fsync_dir(os.path.dirname(os.path.abspath(path)))
                return (
                    f"finished installing {cert_path} and {key_path} (an earlier run was stopped)"
                )
        for path in (staged_key, staged_chain):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    except (ValueError, IndexError, TypeError):
        for path in (staged_key, staged_chain):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    except OSError as exc:
        raise IOProblem(f"cannot finish an interrupted installation: {exc.strerror}") from None
    return f"removed unfinished files beside {cert_path} (an earlier run was stopped)"
