"""Reads of the ledger: balances, the changes the switch applies, and the checks."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import (
    BigIntegerField,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Round

from tollguard.domain.credit import MONEY_PLACES, FundsChange
from tollguard.web.billing.models import FUNDS_VERSION_PK, Balance, FundsVersion, LedgerEntry
from tollguard.web.customers.models import Customer

__all__ = [
    "balance_mismatches",
    "balance_of",
    "balances",
    "currency_mismatches",
    "funds_changes",
    "funds_version",
]

_ZERO = Decimal(0)
_MICROS_PER_UNIT = 10**MONEY_PLACES


def funds_version() -> int:
    """The version of the last entry the switch applies (0 before the first); one query."""
    version = (
        FundsVersion.objects.filter(pk=FUNDS_VERSION_PK).values_list("version", flat=True).first()
    )
    return version or 0


def balances() -> tuple[tuple[int, Decimal], ...]:
    """Every customer's ledger balance (customers without entries have none)."""
    return tuple(Balance.objects.order_by("customer_id").values_list("customer_id", "amount"))


def balance_of(customer_id: int) -> Decimal:
    amount = Balance.objects.filter(pk=customer_id).values_list("amount", flat=True).first()
    return amount if amount is not None else _ZERO


def funds_changes(after: int, limit: int) -> tuple[FundsChange, ...]:
    """The entries the switch applies with a funds version above ``after``, in order."""
    rows = (
        LedgerEntry.objects.filter(funds_version__gt=after)
        .order_by("funds_version")
        .values_list("funds_version", "customer_id", "amount")[:limit]
    )
    return tuple(
        FundsChange(version, customer, amount)
        for version, customer, amount in rows
        if version is not None  # the filter excludes None; the type does not know it
    )


def _micros(field: str) -> Cast:
    """The amount in ``field`` as a whole number of micro-units, in SQL.

    SQLite keeps a decimal column as a double: its SUM of many entries drifts (0.905
    less 90 charges of 0.01 sums to 0.0049999999999994), and a comparison with the
    cached balance would report a difference that is not there. Each amount rounded to
    a whole number of micro-units first is exact, and so is the sum of those; PostgreSQL's
    ``numeric`` gives the same numbers.
    """
    scaled = ExpressionWrapper(
        F(field) * Value(_MICROS_PER_UNIT),
        output_field=DecimalField(max_digits=30, decimal_places=MONEY_PLACES),
    )
    return Cast(Round(scaled), BigIntegerField())


def _from_micros(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-MONEY_PLACES)


def balance_mismatches(limit: int = 10) -> list[tuple[str, Decimal, Decimal]]:
    """Customers whose cached balance is not the sum of their ledger: (name, cached, sum).

    Compared to the micro-unit (:func:`_micros`), exactly on every database.
    """
    ledger_sum = (
        LedgerEntry.objects.filter(customer_id=OuterRef("pk"))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum(_micros("amount")))
        .values("total")
    )
    micros = BigIntegerField()
    rows = (
        Customer.objects.annotate(
            cached=Coalesce(_micros("balance__amount"), Value(0), output_field=micros),
            total=Coalesce(Subquery(ledger_sum), Value(0), output_field=micros),
        )
        .exclude(cached=F("total"))
        .order_by("name")
        .values_list("name", "cached", "total")[:limit]
    )
    return [(name, _from_micros(cached), _from_micros(total)) for name, cached, total in rows]


def currency_mismatches(limit: int = 10) -> list[tuple[str, str, str]]:
    """Customers paying in another currency than their sell card: (name, pays, card)."""
    rows = (
        Customer.objects.filter(sell_card__isnull=False)
        .exclude(Q(currency=F("sell_card__currency")))
        .order_by("name")
        .values_list("name", "currency", "sell_card__currency")[:limit]
    )
    return list(rows)
