"""DIDs' monthly fees, posted to their owners' ledgers once per DID per calendar month.

:func:`charge_month` charges every DID that is enabled and has a monthly price when it
runs, and has not been charged for that month yet; :class:`DidFeeCharger` runs it for
the current month from a thread of ``tollguard serve``, and ``tollguard manage
charge_dids [--month YYYY-MM]`` by hand or from cron. Each fee is a ledger adjustment
(minus the price, in the customer's currency, with the DID and month as reason and
reference) that takes a funds version like a top-up, so the running switch lowers the
customer's balance within a second. A :class:`DidFee` row with a unique (DID, month)
key is written in the same transaction: a re-run, or a second process, charges nothing
twice. A DID disabled or deleted after its month was charged keeps that charge; one
disabled or deleted before the run is not charged (docs/billing.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ClassVar

from django.db import IntegrityError, transaction
from django.utils import timezone

from tollguard.web.billing.errors import DuplicateReference
from tollguard.web.billing.models import DidFee, EntryKind, LedgerEntry
from tollguard.web.billing.services import record
from tollguard.web.core.periodic import Periodic
from tollguard.web.customers.models import Did

__all__ = ["DidFeeCharger", "charge_month", "month_of", "parse_month"]

logger = logging.getLogger(__name__)


def month_of(moment: datetime) -> date:
    """The first day of ``moment``'s calendar month, in UTC."""
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def parse_month(text: str) -> date:
    """``"2026-12"`` as the first day of that month; ``ValueError`` otherwise."""
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a month such as 2026-12") from exc
    return date(parsed.year, parsed.month, 1)


def charge_month(month: date, now: datetime | None = None) -> int:
    """Charge the monthly fee of every enabled DID not yet charged for ``month``; returns
    how many fees were posted. Safe to run again and from two processes at once."""
    now = now or timezone.now()
    if month > month_of(now):
        raise ValueError(f"{month:%Y-%m} has not begun: fees are charged from its first day")
    charged = DidFee.objects.filter(month=month).values("did_id")
    due = (
        Did.objects.filter(enabled=True, monthly_price__gt=0)
        .exclude(pk__in=charged)
        .select_related("customer")
        .order_by("pk")
    )
    label = f"{month:%Y-%m}"
    posted = 0
    for did in due:
        entry = LedgerEntry(
            customer=did.customer,
            kind=EntryKind.ADJUSTMENT,
            amount=-did.monthly_price,
            reason=f"monthly fee of DID {did} for {label}",
            reference=f"did-fee:{did.pk}:{label}",
            created_at=now,
        )
        try:
            with transaction.atomic():
                record(entry)
                DidFee.objects.create(
                    did_id=did.pk, number=str(did), month=month, customer=did.customer, entry=entry
                )
        except (IntegrityError, DuplicateReference):
            # Another run charged this DID for this month first: its charge stands.
            logger.info("DID %s for %s: already charged by another run", did, label)
            continue
        posted += 1
    if posted:
        logger.info("charged %d DID monthly fee(s) for %s", posted, label)
    return posted


@dataclass
class DidFeeCharger(Periodic):
    """Charges the current month's DID fees at start and every ``interval_s``, from a
    daemon thread of ``tollguard serve``, until :meth:`stop`."""

    interval_s: float = 3600.0
    thread_name: ClassVar[str] = "tollguard-did-fees"
    what: ClassVar[str] = "DID fees"
    run_at_start: ClassVar[bool] = True

    def work(self, now: datetime) -> int:
        return charge_month(month_of(now), now)
