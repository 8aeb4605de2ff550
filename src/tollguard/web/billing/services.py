"""Writes to the ledger: entries posted by staff and API clients, and call charges.

Every write locks the customer's :class:`Balance` row, appends the entries with the
running balance, moves the cached balance, and queues any low-balance alert, all in one
transaction. Entries the running switch must apply (all but call charges, which the
switch applied itself when it settled the call) also take the next funds version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from tollguard.domain.cdr import Cdr as DomainCdr
from tollguard.domain.credit import check_amount
from tollguard.domain.errors import CreditError
from tollguard.web.billing import alerts
from tollguard.web.billing.errors import DuplicateReference, LedgerError
from tollguard.web.billing.models import (
    FUNDS_VERSION_PK,
    POSTED_BY_HAND,
    Balance,
    EntryKind,
    FundsVersion,
    LedgerEntry,
)
from tollguard.web.core.bulk import row_insert
from tollguard.web.customers.models import Customer

__all__ = ["post_call_charges", "post_entry", "record", "reference_taken", "validate"]

logger = logging.getLogger(__name__)

# A hand-posted entry without a reason is refused for these kinds.
_NEEDS_REASON = frozenset({EntryKind.REFUND, EntryKind.ADJUSTMENT})


def post_entry(
    customer: Customer,
    kind: str,
    amount: Decimal,
    *,
    reason: str = "",
    reference: str = "",
    actor: Any = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Post a top-up, refund or adjustment; raises :class:`LedgerError` when refused."""
    entry = LedgerEntry(
        customer=customer,
        kind=kind,
        amount=amount,
        reason=reason,
        reference=reference,
        created_at=now or timezone.now(),
    )
    return record(entry, actor=actor)


def record(entry: LedgerEntry, *, actor: Any = None) -> LedgerEntry:
    """Post ``entry`` (unsaved; the admin's form builds one) and return it saved.

    Fills in the running balance, the funds version and who posted it.
    """
    validate(entry)
    if actor is not None and getattr(actor, "pk", None) is not None:
        entry.created_by_id = actor.pk
        entry.created_by_name = str(actor.get_username())[:150]
    try:
        with transaction.atomic():
            if entry.reference and reference_taken(entry.customer_id, entry.reference):
                raise DuplicateReference(entry.reference)
            locked = _lock_balances([entry.customer_id])[entry.customer_id]
            before = locked.amount
            entry.balance_after = before + entry.amount
            entry.funds_version = _next_funds_version()
            entry.save()
            Balance.objects.filter(pk=entry.customer_id).update(
                amount=entry.balance_after, updated_at=entry.created_at
            )
            alerts.queue_crossings(
                {entry.customer_id: (before, entry.balance_after)}, entry.created_at
            )
    except IntegrityError as exc:
        # Two requests with one reference at once: the unique constraint decides.
        if entry.reference and reference_taken(entry.customer_id, entry.reference):
            raise DuplicateReference(entry.reference) from exc
        raise
    logger.info(
        "ledger: %s of %s posted for customer %s by %s (entry %s)",
        entry.kind,
        entry.amount,
        entry.customer_id,
        entry.created_by_name or "-",
        entry.pk,
    )
    return entry


def validate(entry: LedgerEntry) -> None:
    """Refuse (:class:`LedgerError`) an entry that may not be posted by hand."""
    if entry.pk is not None:
        raise LedgerError("ledger entries are never updated; post a correcting entry")
    if entry.kind not in POSTED_BY_HAND:
        raise LedgerError(f"{entry.kind!r} entries are not posted by hand")
    try:
        check_amount(entry.amount, signed=True)
    except CreditError as exc:
        raise LedgerError(str(exc)) from exc
    if entry.kind in (EntryKind.TOP_UP, EntryKind.REFUND) and entry.amount <= 0:
        raise LedgerError(f"a {EntryKind(entry.kind).label} credits the customer: amount > 0")
    if entry.kind == EntryKind.ADJUSTMENT and entry.amount == 0:
        raise LedgerError("an adjustment of 0 changes nothing")
    if entry.kind in _NEEDS_REASON and not entry.reason.strip():
        raise LedgerError(f"a {EntryKind(entry.kind).label} needs a reason")


def reference_taken(customer_id: int, reference: str) -> bool:
    return LedgerEntry.objects.filter(customer_id=customer_id, reference=reference).exists()


def _lock_balances(customer_ids: Iterable[int]) -> dict[int, Balance]:
    """The balance rows of ``customer_ids``, created at 0 when missing and locked until
    the transaction ends (in id order, so that two writers never deadlock)."""
    ids = sorted(set(customer_ids))
    Balance.objects.bulk_create([Balance(customer_id=pk) for pk in ids], ignore_conflicts=True)
    rows = Balance.objects.select_for_update().filter(customer_id__in=ids).order_by("customer_id")
    return {row.customer_id: row for row in rows}


def _next_funds_version() -> int:
    """Bump the funds version; the row stays locked until the transaction commits."""
    row = FundsVersion.objects.filter(pk=FUNDS_VERSION_PK)
    if not row.update(version=F("version") + 1):
        FundsVersion.objects.get_or_create(pk=FUNDS_VERSION_PK, defaults={"version": 0})
        row.update(version=F("version") + 1)
    version: int = row.values_list("version", flat=True).get()
    return version


@dataclass(frozen=True, slots=True)
class _Charge:
    customer_id: int
    amount: Decimal
    call_id: str


def post_call_charges(cdrs: Sequence[DomainCdr], now: datetime | None = None) -> int:
    """Post the sell amount of each CDR as a call charge; the number of entries posted.

    Called by the CDR writer inside the transaction that stores the CDRs, so that a CDR
    and its charge are written together or not at all. A CDR of a customer deleted
    since, or priced in another currency than its customer pays in, keeps its amount
    and posts nothing: an error line names it.
    """
    now = now or timezone.now()
    wanted = [cdr for cdr in cdrs if cdr.customer_id is not None and cdr.sell_amount]
    if not wanted:
        return 0
    currencies = dict(
        Customer.objects.filter(pk__in={cdr.customer_id for cdr in wanted}).values_list(
            "pk", "currency"
        )
    )
    charges: list[_Charge] = []
    for cdr in wanted:
        assert cdr.customer_id is not None
        currency = currencies.get(cdr.customer_id)
        if currency is None:
            logger.error(
                "call %s: customer %s no longer exists; charge of %s %s not posted",
                cdr.call_id,
                cdr.customer_id,
                cdr.sell_amount,
                cdr.sell_currency,
            )
        elif currency != cdr.sell_currency:
            logger.error(
                "call %s: priced in %s but customer %s pays in %s; charge of %s not posted",
                cdr.call_id,
                cdr.sell_currency,
                cdr.customer_id,
                currency,
                cdr.sell_amount,
            )
        else:
            charges.append(_Charge(cdr.customer_id, cdr.sell_amount, cdr.call_id))
    if not charges:
        return 0
    with transaction.atomic():
        balances = _lock_balances(charge.customer_id for charge in charges)
        running = {pk: row.amount for pk, row in balances.items()}
        opening = dict(running)
        insert = row_insert(LedgerEntry, transaction.get_connection())
        values = []
        for charge in charges:
            after = running[charge.customer_id] - charge.amount
            running[charge.customer_id] = after
            values.append(
                {
                    "customer_id": charge.customer_id,
                    "created_at": now,
                    "kind": EntryKind.CALL.value,
                    "amount": -charge.amount,
                    "balance_after": after,
                    "reason": "",
                    "reference": "",
                    "call_id": charge.call_id[:255],
                    "created_by_id": None,
                    "created_by_name": "",
                    "funds_version": None,
                }
            )
        rows = insert.rows([entry[name] for name in insert.columns] for entry in values)
        insert.run(transaction.get_connection(), rows)
        for pk, amount in running.items():
            Balance.objects.filter(pk=pk).update(amount=amount, updated_at=now)
        # Charges only lower a balance: a threshold is crossed at most once per batch.
        alerts.queue_crossings({pk: (opening[pk], running[pk]) for pk in running}, now)
    return len(rows)
