"""Reads of the portal: what a customer was charged (who a user acts for is
:func:`tollguard.web.customers.selectors.customer_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from tollguard.domain.plan import BillingMode
from tollguard.web.billing.models import LedgerEntry
from tollguard.web.billing.selectors import balance_of
from tollguard.web.cdr.models import Cdr
from tollguard.web.customers.models import Customer

# Amounts shown to four places: calls are priced in fractions of a cent.
_SHOWN = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class MonthCharges:
    """A calendar month (UTC) of one customer's calls, by currency."""

    month: datetime  # first instant of the month
    calls: int
    answered: int
    amounts: tuple[tuple[str, Decimal], ...]  # (currency, sum of sell amounts)


def _month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _previous(month: datetime) -> datetime:
    if month.month == 1:
        return month.replace(year=month.year - 1, month=12)
    return month.replace(month=month.month - 1)


def monthly_charges(customer: Customer, now: datetime) -> list[MonthCharges]:
    """This month so far and last month: calls and the amounts rated to ``customer``.

    Calls count by start time, as the CDR list and the statistics do; each range is an
    index walk of ``(customer, started_at)``.
    """
    this_month = _month_start(now)
    months = [this_month, _previous(this_month)]
    ends = [now, this_month]
    result = []
    for month, end in zip(months, ends, strict=True):
        cdrs = Cdr.objects.filter(customer=customer, started_at__gte=month, started_at__lt=end)
        counts = cdrs.aggregate(calls=Count("id"), answered=Count("answered_at"))
        amounts = tuple(
            (row["sell_currency"], Decimal(row["amount"] or 0).quantize(_SHOWN))
            for row in cdrs.values("sell_currency")
            .annotate(amount=Sum("sell_amount"))
            .order_by("sell_currency")
        )
        result.append(MonthCharges(month, counts["calls"], counts["answered"], amounts))
    return result


@dataclass(frozen=True, slots=True)
class Funds:
    """What the portal shows of a customer's money."""

    balance: Decimal  # the ledger's sum
    credit_limit: Decimal  # 0 unless postpaid
    currency: str

    @property
    def available(self) -> Decimal:
        """What calls may still spend: the balance, plus the credit limit."""
        return self.balance + self.credit_limit


def funds(customer: Customer) -> Funds:
    postpaid = customer.billing_mode == BillingMode.POSTPAID
    return Funds(
        balance=balance_of(customer.pk).quantize(_SHOWN),
        credit_limit=(customer.credit_limit if postpaid else Decimal(0)).quantize(_SHOWN),
        currency=customer.currency,
    )


def ledger_of(customer: Customer) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(customer=customer).order_by("-created_at", "-id")


def entries_before(
    entries: QuerySet[LedgerEntry], created_at: datetime, pk: int
) -> QuerySet[LedgerEntry]:
    """Entries after (``created_at``, ``pk``) in newest-first order: the next keyset page."""
    return entries.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
