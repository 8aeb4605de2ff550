"""Errors of the web layer, all under one root::

WebError
├── ProvisioningError          a plan file could not be loaded; nothing changed
│   ├── PlanFileError          unreadable, not YAML, or invalid (every problem listed)
│   └── PlanApplyError         the database refused a change validation let through
├── PlanChangedError           the configuration kept changing during a snapshot read
└── BillingError               (tollguard.web.billing.errors)
    └── LedgerError            an entry the ledger refuses (history never changes)
        └── DuplicateReference a second entry with a customer's reference
"""

from __future__ import annotations

__all__ = ["WebError"]


class WebError(Exception):
    """Root of the errors raised by :mod:`tollguard.web`."""
