"""The domain ports implemented on the ORM: the switch's plan source, balance source
and CDR sink.

They need Django to be set up (:func:`tollguard.web.bootstrap.setup`). They are
synchronous; the switch calls them from worker threads, off the event loop. No request
cycle recycles those threads' connections, so each call first drops a connection that
an earlier error left unusable or that has outlived ``CONN_MAX_AGE``.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TextIO

from django.db import close_old_connections, connection, transaction

from tollguard.domain.cdr import Cdr
from tollguard.domain.credit import BalanceSnapshot, FundsChange
from tollguard.domain.plan import PlanData
from tollguard.web.billing import selectors as billing
from tollguard.web.billing import services as billing_services
from tollguard.web.carriers import selectors as carriers
from tollguard.web.cdr import selectors as cdr_selectors
from tollguard.web.cdr import services as cdr_services
from tollguard.web.cdr.selectors import ExportFormat
from tollguard.web.core.selectors import config_version
from tollguard.web.customers import selectors as customers
from tollguard.web.errors import WebError
from tollguard.web.fraud import selectors as fraud
from tollguard.web.fraud.stores import DbBanStore, DbFraudEventStore, DbSuspensionStore
from tollguard.web.rating import selectors as rating

__all__ = [
    "BalancesChangedError",
    "DbBalanceSource",
    "DbBanStore",
    "DbCdrSink",
    "DbFraudEventStore",
    "DbPlanSource",
    "DbSuspensionStore",
    "PlanChangedError",
    "export_cdrs",
]

logger = logging.getLogger(__name__)


class PlanChangedError(WebError):
    """The configuration kept changing while a snapshot was being read."""


class BalancesChangedError(WebError):
    """Top-ups and adjustments kept landing while the balances were being read."""


class DbPlanSource:
    """:class:`tollguard.domain.plan.PlanSource` reading the configuration tables."""

    def __init__(self, *, max_attempts: int = 5) -> None:
        self.max_attempts = max_attempts

    def current_version(self) -> int:
        _recycle_connection()
        return config_version()

    def load(self) -> PlanData:
        """Read the whole configuration as one consistent snapshot.

        The version is read before and after the tables: every configuration write
        bumps it in the write's own transaction, so an unchanged version proves that no
        write landed in between; otherwise the read is retried. This holds whatever the
        isolation level (PostgreSQL's READ COMMITTED sees other commits between
        statements). On PostgreSQL the reads also share one transaction. On SQLite they
        do not: transactions there start with BEGIN IMMEDIATE, which would hold the
        write lock for the whole read and stall the admin and the CDR writer.
        """
        _recycle_connection()
        for attempt in range(1, self.max_attempts + 1):
            with _read_transaction():
                version = config_version()
                plan = PlanData(
                    version=version,
                    rate_cards=rating.rate_cards(),
                    providers=carriers.providers(),
                    gateways=carriers.gateways(),
                    customers=customers.customers(),
                    accounts=customers.accounts(),
                    acl=customers.acl(),
                    dids=customers.dids(),
                    fraud=fraud.fraud_plan(),
                )
                if config_version() == version:
                    return plan
            logger.info("configuration changed while loading (attempt %d); reading again", attempt)
        raise PlanChangedError(
            f"the configuration changed during each of {self.max_attempts} reads"
        )


def _recycle_connection() -> None:
    # Inside a caller's transaction the connection is in use by definition.
    if not connection.in_atomic_block:
        close_old_connections()


def _read_transaction() -> AbstractContextManager[object]:
    if connection.vendor == "sqlite":
        return nullcontext()
    return transaction.atomic()


class DbBalanceSource:
    """:class:`tollguard.domain.credit.BalanceSource` reading the ledger.

    The switch loads a snapshot at start and then polls :meth:`changes` about once a
    second, so a top-up reaches it within a second (docs/billing.md).
    """

    def __init__(self, *, max_attempts: int = 5) -> None:
        self.max_attempts = max_attempts

    def snapshot(self) -> BalanceSnapshot:
        """Every balance, read consistently with the funds version (as :meth:`DbPlanSource.load`
        reads the plan: an unchanged version before and after proves no entry the
        switch applies landed in between)."""
        _recycle_connection()
        for attempt in range(1, self.max_attempts + 1):
            with _read_transaction():
                version = billing.funds_version()
                balances = billing.balances()
                if billing.funds_version() == version:
                    return BalanceSnapshot(version, balances)
            logger.info("balances changed while loading (attempt %d); reading again", attempt)
        raise BalancesChangedError(
            f"top-ups or adjustments landed during each of {self.max_attempts} reads"
        )

    def changes(self, after: int, limit: int) -> tuple[FundsChange, ...]:
        _recycle_connection()
        return billing.funds_changes(after, limit)


class DbCdrSink:
    """:class:`tollguard.domain.cdr.CdrSink`: each batch of CDRs and their call charges
    in one transaction, so a CDR and its charge never diverge."""

    def write_batch(self, cdrs: list[Cdr]) -> None:
        _recycle_connection()
        with transaction.atomic():
            written = cdr_services.write_cdrs(cdrs)
            charged = billing_services.post_call_charges(cdrs)
        logger.debug("stored %d CDRs and %d call charges", written, charged)


def export_cdrs(
    fmt: ExportFormat,
    since: datetime | None,
    until: datetime | None,
    out: TextIO,
) -> int:
    """Stream CDRs started in ``[since, until)`` to ``out`` as CSV or JSON; returns the count."""
    return cdr_selectors.export_cdrs(fmt, since, until, out)
