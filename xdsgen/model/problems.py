"""The problems one build finds: every model part reports here, with a key path."""

from __future__ import annotations

from typing import Optional

from xdsgen.errors import InventoryError, PathKey, Problem
from xdsgen.inventory import Inventory


class Problems:
    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, path: PathKey, message: str, hint: Optional[str] = None) -> None:
        problem = self.inventory.problem(path, message, hint)
        if problem not in self.errors:  # one clash found from two sides is said once
            self.errors.append(problem)

    def warn(self, path: PathKey, message: str, hint: Optional[str] = None) -> None:
        problem = self.inventory.problem(path, message, hint, severity="warning")
        if problem not in self.warnings:
            self.warnings.append(problem)

    def line(self, path: PathKey) -> int:
        return self.inventory.locate(path)[0]

    def require_absolute(self, path: PathKey, file_path: str) -> bool:
        # Envoy resolves a relative path from its own working directory, which is not ours.
        if file_path.startswith("/"):
            return True
        self.error(
            path,
            f"{file_path!r} is not an absolute path",
            "Envoy reads it from its own working directory; write /full/path",
        )
        return False

    def raise_errors(self) -> None:
        if self.errors:
            raise InventoryError(self.errors, self.warnings)
