"""Find the templates and the schema, installed (package data) or in a source checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def directory(kind: str) -> Path:
    """`kind` is "templates" or "schemas": inside the wheel they live in the package, in a
    checkout (and an editable install) at the top of the repository."""
    for candidate in (_PACKAGE_DIR / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"xdsgen is installed without its {kind}/ directory")


def read_text(kind: str, name: str) -> str:
    return (directory(kind) / name).read_text(encoding="utf-8")
