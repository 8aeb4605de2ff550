"""Errors of the billing app (under :class:`tollguard.web.errors.WebError`)."""

from __future__ import annotations

from tollguard.web.errors import WebError

__all__ = ["BillingError", "DuplicateReference", "LedgerError"]


class BillingError(WebError):
    """Root of the billing app's errors."""


class LedgerError(BillingError):
    """An entry the ledger refuses: a change to history, or an amount that makes no sense."""


class DuplicateReference(LedgerError):
    """The customer's ledger has an entry with this reference already (a retried top-up)."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"an entry with reference {reference!r} exists already")
        self.reference = reference
