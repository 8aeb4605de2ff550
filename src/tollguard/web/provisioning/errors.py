"""The errors of ``tollguard load``; each carries every problem found, one line each."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tollguard.web.errors import WebError

__all__ = ["PlanApplyError", "PlanFileError", "ProvisioningError"]


class ProvisioningError(WebError):
    """A plan file that could not be loaded; nothing was changed.

    ``errors`` holds one line per problem, each starting with the path of the entry.
    """

    def __init__(self, path: Path, errors: Iterable[str]) -> None:
        self.path = path
        self.errors = tuple(errors)
        super().__init__(f"{path}: {len(self.errors)} error(s)\n" + "\n".join(self.errors))


class PlanFileError(ProvisioningError):
    """The file is unreadable, not YAML, or fails validation."""


class PlanApplyError(ProvisioningError):
    """The database refused a change that validation let through (e.g. a concurrent edit)."""
