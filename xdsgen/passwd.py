"""`xdsgen passwd FILE USER`: add a user to an htpasswd file, or change their password, in
the {SHA} form Envoy's basic_auth filter reads (it reads no other: not bcrypt, MD5 or
crypt, which `htpasswd` writes by default).

The file is replaced atomically, keeping its mode, owner and group (Envoy's user or group
must go on reading it); a new file is 0640. Nothing else in it changes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from typing import Optional

from xdsgen.errors import IOProblem, UsageProblem

NEW_FILE_MODE = 0o640  # Envoy's group may read it; others never see the hashes
_USER_FORBIDDEN = set(":#") | {chr(c) for c in range(33)} | {"\x7f"}


def sha_entry(user: str, password: str) -> str:
    """One htpasswd line: USER:{SHA}base64(sha1(password)), as `htpasswd -s` writes it."""
    digest = hashlib.sha1(password.encode("utf-8")).digest()
    return f"{user}:{{SHA}}{base64.b64encode(digest).decode('ascii')}"


def check_user(user: str) -> None:
    if not user:
        raise UsageProblem("USER is empty")
    bad = sorted({c for c in user if c in _USER_FORBIDDEN})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise UsageProblem(f"USER {user!r} contains {shown}: use letters, digits, . _ - @")


def check_password(password: str) -> None:
    if not password:
        raise UsageProblem("the password is empty")
    if "\n" in password or "\r" in password:
        raise UsageProblem("the password contains a line break")


def set_password(path: str, user: str, password: str) -> str:
    """Write USER's entry into the file at `path`; return "added" or "changed"."""
    check_user(user)
    check_password(password)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        info: Optional[os.stat_result] = os.stat(path)
    except FileNotFoundError:
        lines, info = [], None
    except UnicodeDecodeError:
        raise IOProblem(f"{path} is not a text file: is it an htpasswd file?") from None
    except OSError as exc:
        raise IOProblem(f"cannot read {path}: {exc.strerror}") from None
    if lines and lines[-1] == "":
        lines.pop()
    entry = sha_entry(user, password)
    found = False
    for index, line in enumerate(lines):
        if not line.startswith("#") and line.partition(":")[0] == user:
            lines[index] = entry
            found = True
    if not found:
        lines.append(entry)
    _replace(path, "\n".join(lines) + "\n", info)
    return "changed" if found else "added"


def _replace(path: str, text: str, info: Optional[os.stat_result]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temp = tempfile.mkstemp(prefix=".xdsgen-passwd-", dir=directory)
    except OSError as exc:
        raise IOProblem(f"cannot write in {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if info is not None:
                with contextlib.suppress(PermissionError):  # only root may give files away
                    os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            os.fchmod(handle.fileno(), info.st_mode & 0o7777 if info else NEW_FILE_MODE)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise IOProblem(f"cannot write {path}: {exc.strerror}") from None
