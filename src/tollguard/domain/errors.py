"""Domain errors.

DomainError
 ├── PlanError            an inconsistent configuration snapshot (names the entry)
 ├── NumberError          a number that cannot be normalized
 ├── RatingError          a call that cannot be priced
 └── CreditError          misuse of credit control or of a reservation store
      ├── ReservationExists    a key reserved twice
      ├── ReservationUnknown   extending a key that holds no reservation
      └── StoreUnavailable     the live state cannot be reached (a networked store)
"""

from __future__ import annotations


class DomainError(Exception):
    """Root of every error raised by :mod:`tollguard.domain`."""


class PlanError(DomainError):
    """``entry`` is wrong: ``message`` says how; ``field``, when set, names the field of
    the entry's type the message is about (for a form to show the error beside it)."""

    def __init__(self, entry: str, message: str, *, field: str = "") -> None:
        super().__init__(f"{entry}: {message}")
        self.entry = entry
        self.message = message
        self.field = field


class NumberError(DomainError):
    pass


class RatingError(DomainError):
    pass


class CreditError(DomainError):
    pass


class ReservationExists(CreditError):
    def __init__(self, key: str) -> None:
        super().__init__(f"reservation {key!r} exists already")
        self.key = key


class ReservationUnknown(CreditError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no reservation {key!r}")
        self.key = key


class StoreUnavailable(CreditError):
    """The store could not answer; whether the operation took effect is unknown."""
