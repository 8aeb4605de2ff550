"""Domain errors.

DomainError
 ├── PlanError            an inconsistent configuration snapshot (names the entry)
 ├── NumberError          a number that cannot be normalized
 └── RatingError          a call that cannot be priced
"""

from __future__ import annotations


class DomainError(Exception):
    """Root of every error raised by :mod:`tollguard.domain`."""


class PlanError(DomainError):
    def __init__(self, entry: str, message: str) -> None:
        super().__init__(f"{entry}: {message}")
        self.entry = entry
        self.message = message


class NumberError(DomainError):
    pass


class RatingError(DomainError):
    pass
