"""What a load did, per kind of object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["KINDS", "Counts", "LoadReport", "Outcome"]

KINDS = (
    "rate_cards",
    "rates",
    "providers",
    "gateways",
    "customers",
    "accounts",
    "acl",
    "fraud",
    "alerts",
    "dids",
)
Outcome = Literal["created", "updated", "unchanged"]


@dataclass(slots=True)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load did (or, with ``dry_run``, would have done) per kind of object."""

    path: Path
    dry_run: bool
    pruned: bool
    config_version: int  # after the load (unchanged for a dry run)
    counts: Mapping[str, Counts] = field(default_factory=dict)
    # What the loaded configuration will not do as one might expect (no change refused).
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated or c.deleted for c in self.counts.values())

    def summary(self) -> str:
        """A few human lines: one per kind of object that was declared or deleted."""
        lines = [f"{self.path}: dry run, nothing was changed" if self.dry_run else f"{self.path}:"]
        for kind, c in self.counts.items():
            if c.created or c.updated or c.unchanged or c.deleted:
                lines.append(
                    f"  {kind:<11} {c.created} created, {c.updated} updated, "
                    f"{c.unchanged} unchanged, {c.deleted} deleted"
                )
        if not self.changed:
            lines.append("  no change")
        elif not self.dry_run:
            lines.append(f"  configuration version is now {self.config_version}")
        lines.extend(f"  warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)
