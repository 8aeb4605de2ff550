"""The ledger: entries posted by hand, call charges from the CDR writer, append-only
storage, and the cached balance that must equal the sum."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum

from tollguard.domain.cdr import Cdr, HangupSide
from tollguard.web.adapters import DbCdrSink
from tollguard.web.billing import services
from tollguard.web.billing.errors import DuplicateReference, LedgerError
from tollguard.web.billing.models import Balance, EntryKind, FundsVersion, LedgerEntry
from tollguard.web.billing.selectors import balance_mismatches, balance_of, funds_version
from tollguard.web.cdr import models as cdr_models
from tollguard.web.customers.models import Customer

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _customer(name: str = "acme", currency: str = "EUR") -> Customer:
    return factories.customer(
        name, sell_card=factories.rate_card(f"{name}-card", currency=currency), currency=currency
    )


def _sum(customer: Customer) -> Decimal:
    total = LedgerEntry.objects.filter(customer=customer).aggregate(total=Sum("amount"))["total"]
    return total or Decimal(0)


def test_a_top_up_credits_the_balance() -> None:
    acme = _customer()
    entry = services.post_entry(acme, EntryKind.TOP_UP, Decimal("25.50"), reference="pay-1")
    assert (entry.amount, entry.balance_after) == (Decimal("25.50"), Decimal("25.50"))
    assert balance_of(acme.pk) == Decimal("25.50") == _sum(acme)


def test_entries_keep_a_running_balance() -> None:
    acme = _customer()
    services.post_entry(acme, EntryKind.TOP_UP, Decimal(10))
    services.post_entry(acme, EntryKind.ADJUSTMENT, Decimal("-2.25"), reason="goodwill reversed")
    services.post_entry(acme, EntryKind.REFUND, Decimal("0.75"), reason="dropped call")
    entries = LedgerEntry.objects.filter(customer=acme).order_by("id")
    assert [e.balance_after for e in entries] == [Decimal(10), Decimal("7.75"), Decimal("8.5")]
    assert balance_of(acme.pk) == _sum(acme) == Decimal("8.5")


def test_every_hand_posted_entry_takes_the_next_funds_version() -> None:
    acme, other = _customer(), _customer("other")
    start = funds_version()
    first = services.post_entry(acme, EntryKind.TOP_UP, Decimal(1))
    second = services.post_entry(other, EntryKind.TOP_UP, Decimal(1))
    assert (first.funds_version, second.funds_version) == (start + 1, start + 2)
    assert funds_version() == start + 2


def test_the_actor_is_recorded() -> None:
    from tests.web.api import people

    clerk = people.user("clerk")
    entry = services.post_entry(_customer(), EntryKind.TOP_UP, Decimal(5), actor=clerk)
    assert (entry.created_by_id, entry.created_by_name) == (clerk.pk, "clerk")


@pytest.mark.parametrize(
    ("kind", "amount", "reason", "message"),
    [
        (EntryKind.TOP_UP, "0", "", "amount > 0"),
        (EntryKind.TOP_UP, "-5", "", "amount > 0"),
        (EntryKind.REFUND, "5", "", "needs a reason"),
        (EntryKind.REFUND, "-5", "x", "amount > 0"),
        (EntryKind.ADJUSTMENT, "0", "x", "changes nothing"),
        (EntryKind.ADJUSTMENT, "5", "  ", "needs a reason"),
        (EntryKind.CALL, "-1", "", "not posted by hand"),
        (EntryKind.TOP_UP, "1.0000001", "", "decimal places"),
    ],
    ids=[
        "zero-top-up",
        "negative-top-up",
        "refund-without-reason",
        "negative-refund",
        "zero-adjustment",
        "blank-reason",
        "call-by-hand",
        "seven-places",
    ],
)
def test_refused_entries_change_nothing(kind: str, amount: str, reason: str, message: str) -> None:
    acme = _customer()
    version = funds_version()
    with pytest.raises(LedgerError, match=message):
        services.post_entry(acme, kind, Decimal(amount), reason=reason)
    assert not LedgerEntry.objects.exists()
    assert balance_of(acme.pk) == 0
    assert funds_version() == version


def test_a_reference_is_booked_once_per_customer() -> None:
    acme, other = _customer(), _customer("other")
    services.post_entry(acme, EntryKind.TOP_UP, Decimal(10), reference="stripe-pi_1")
    with pytest.raises(DuplicateReference):
        services.post_entry(acme, EntryKind.TOP_UP, Decimal(10), reference="stripe-pi_1")
    services.post_entry(other, EntryKind.TOP_UP, Decimal(10), reference="stripe-pi_1")
    assert balance_of(acme.pk) == Decimal(10)


def test_the_database_refuses_a_second_reference_too() -> None:
    acme = _customer()
    services.post_entry(acme, EntryKind.TOP_UP, Decimal(10), reference="r-1")
    # What a racing second request meets: the unique constraint, not the pre-check.
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.create(
            customer=acme,
            kind=EntryKind.TOP_UP,
            amount=Decimal(1),
            balance_after=0,
            reference="r-1",
        )


# -- append-only -------------------------------------------------------------------------


def _entry() -> LedgerEntry:
    return services.post_entry(_customer(), EntryKind.TOP_UP, Decimal(10), reference="r")


def test_an_entry_cannot_be_saved_again() -> None:
    entry = _entry()
    entry.amount = Decimal(1000)
    with pytest.raises(LedgerError, match="never updated"):
        entry.save()


def test_an_entry_cannot_be_deleted() -> None:
    with pytest.raises(LedgerError, match="never deleted"):
        _entry().delete()


def test_the_queryset_refuses_bulk_changes() -> None:
    _entry()
    with pytest.raises(LedgerError):
        LedgerEntry.objects.update(amount=Decimal(1000))
    with pytest.raises(LedgerError):
        LedgerEntry.objects.all().delete()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE billing_ledgerentry SET amount = 1000",
        "DELETE FROM billing_ledgerentry",
    ],
    ids=["update", "delete"],
)
def test_the_database_refuses_changes_made_around_django(statement: str) -> None:
    entry = _entry()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():  # noqa: SIM117
        with connection.cursor() as cursor:
            cursor.execute(statement)
    stored = LedgerEntry.objects.get(pk=entry.pk)
    assert stored.amount == Decimal(10)


def test_a_customer_with_a_ledger_cannot_be_deleted() -> None:
    from django.db.models import ProtectedError

    entry = _entry()
    with pytest.raises(ProtectedError):
        entry.customer.delete()


def test_the_balance_check_finds_a_tampered_balance() -> None:
    entry = _entry()
    assert balance_mismatches() == []
    Balance.objects.filter(pk=entry.customer_id).update(amount=Decimal(999))
    assert balance_mismatches() == [("acme", Decimal(999), Decimal(10))]


def test_the_balance_check_finds_a_missing_balance_row() -> None:
    entry = _entry()
    Balance.objects.filter(pk=entry.customer_id).delete()
    assert balance_mismatches() == [("acme", Decimal(0), Decimal(10))]


# -- call charges --------------------------------------------------------------------------


def make_cdr(n: int, customer_id: int | None, amount: str, **values: Any) -> Cdr:
    fields: dict[str, Any] = {
        "call_id": f"call-{n}@192.0.2.1",
        "started_at": T0 + timedelta(minutes=n),
        "ended_at": T0 + timedelta(minutes=n, seconds=75),
        "answered_at": T0 + timedelta(minutes=n, seconds=5),
        "duration_ms": 70_000,
        "billed_s": 120,
        "customer_id": customer_id,
        "account_id": None,
        "source_ip": "192.0.2.1",
        "source_port": 5070,
        "caller": "alice",
        "callee_raw": "4930123",
        "callee": "4930123",
        "destination": "Berlin",
        "sip_code": 200,
        "sip_reason": "OK",
        "q850_cause": 16,
        "hangup_side": HangupSide.CALLER,
        "sell_rate": Decimal("0.02"),
        "sell_amount": Decimal(amount),
        "sell_currency": "EUR",
    }
    fields.update(values)
    return Cdr(**fields)


def test_the_cdr_writer_posts_each_charge_with_its_cdr() -> None:
    acme, other = _customer(), _customer("other")
    services.post_entry(acme, EntryKind.TOP_UP, Decimal(10))
    DbCdrSink().write_batch(
        [
            make_cdr(1, acme.pk, "0.040000"),
            make_cdr(2, other.pk, "1.5"),
            make_cdr(3, acme.pk, "0.25"),
            make_cdr(4, acme.pk, "0", answered_at=None, duration_ms=0, billed_s=0),
            make_cdr(5, None, "0"),
        ]
    )
    assert cdr_models.Cdr.objects.count() == 5
    charges = LedgerEntry.objects.filter(kind=EntryKind.CALL).order_by("id")
    assert [(c.customer_id, c.amount, c.balance_after, c.call_id) for c in charges] == [
        (acme.pk, Decimal("-0.04"), Decimal("9.96"), "call-1@192.0.2.1"),
        (other.pk, Decimal("-1.5"), Decimal("-1.5"), "call-2@192.0.2.1"),
        (acme.pk, Decimal("-0.25"), Decimal("9.71"), "call-3@192.0.2.1"),
    ]
    # The switch applied these itself when it settled the calls: no funds version.
    assert all(charge.funds_version is None for charge in charges)
    assert balance_of(acme.pk) == _sum(acme) == Decimal("9.71")
    assert balance_of(other.pk) == _sum(other) == Decimal("-1.5")
    assert balance_mismatches() == []


def test_a_failure_rolls_back_the_cdrs_and_their_charges(monkeypatch: pytest.MonkeyPatch) -> None:
    acme = _customer()

    def broken(*args: object) -> int:
        raise DatabaseError("disk full")

    monkeypatch.setattr(services.alerts, "queue_crossings", broken)
    with pytest.raises(DatabaseError, match="disk full"):
        DbCdrSink().write_batch([make_cdr(1, acme.pk, "0.5"), make_cdr(2, acme.pk, "0.5")])
    assert not cdr_models.Cdr.objects.exists()
    assert not LedgerEntry.objects.exists()
    assert balance_of(acme.pk) == 0
    # The writer keeps the batch and tries again: this time both land.
    monkeypatch.undo()
    DbCdrSink().write_batch([make_cdr(1, acme.pk, "0.5"), make_cdr(2, acme.pk, "0.5")])
    assert cdr_models.Cdr.objects.count() == 2
    assert balance_of(acme.pk) == _sum(acme) == Decimal(-1)


def test_a_charge_failure_rolls_back_the_cdrs() -> None:
    acme = _customer()
    # The ledger's own insert fails: a charge that would credit the customer breaks the
    # database's sign rule for call charges.
    with pytest.raises(DatabaseError):
        DbCdrSink().write_batch([make_cdr(1, acme.pk, "1"), make_cdr(2, acme.pk, "-1")])
    assert not cdr_models.Cdr.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_charges_of_unknown_customers_or_other_currencies_are_named_not_posted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme = _customer()
    with caplog.at_level(logging.ERROR, logger="tollguard.web.billing.services"):
        DbCdrSink().write_batch(
            [
                make_cdr(1, 99_999, "0.5"),
                make_cdr(2, acme.pk, "0.5", sell_currency="USD"),
                make_cdr(3, acme.pk, "0.25"),
            ]
        )
    assert cdr_models.Cdr.objects.count() == 3
    assert list(LedgerEntry.objects.values_list("call_id", flat=True)) == ["call-3@192.0.2.1"]
    messages = [record.getMessage() for record in caplog.records]
    assert any("call-1@192.0.2.1" in m and "no longer exists" in m for m in messages)
    assert any("call-2@192.0.2.1" in m and "pays in EUR" in m for m in messages)


def test_the_funds_version_row_is_made_on_first_use() -> None:
    FundsVersion.objects.all().delete()
    services.post_entry(_customer(), EntryKind.TOP_UP, Decimal(1))
    assert FundsVersion.objects.get().version == 1
