"""The switch's balances from the ledger: a snapshot at start, then the changes.

The switch's live store is the embedded one (``state.memory``); the ledger is the real
database. A top-up posted in the web app reaches the store at the next poll; charges
the switch committed itself are never applied twice.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tollguard.domain.credit import (
    NO_FUNDS,
    BalanceSnapshot,
    BalanceSource,
    CallCredit,
    CreditControl,
    FundsChange,
    catch_up,
    load_balances,
)
from tollguard.domain.plan import CreditTerms, Customer, Rate, RateCard
from tollguard.state.memory import MemoryReservations
from tollguard.web import adapters
from tollguard.web.adapters import BalancesChangedError, DbBalanceSource, DbCdrSink
from tollguard.web.billing import services
from tollguard.web.billing.models import EntryKind
from tollguard.web.billing.selectors import balance_of
from tollguard.web.customers import models

from .. import factories
from .test_ledger import make_cdr

pytestmark = pytest.mark.usefixtures("db")

NOW = 1_800_000_000.0


def _customer(name: str) -> models.Customer:
    return factories.customer(name, sell_card=factories.rate_card(f"{name}-card"))


def test_the_source_satisfies_the_port() -> None:
    source: BalanceSource = DbBalanceSource()
    assert isinstance(source.snapshot(), BalanceSnapshot)


def test_the_snapshot_holds_every_balance_and_its_version() -> None:
    a, b = _customer("a"), _customer("b")
    services.post_entry(a, EntryKind.TOP_UP, Decimal("12.5"))
    services.post_entry(b, EntryKind.TOP_UP, Decimal(3))
    DbCdrSink().write_batch([make_cdr(1, b.pk, "0.5")])
    snapshot = DbBalanceSource().snapshot()
    assert dict(snapshot.balances) == {a.pk: Decimal("12.5"), b.pk: Decimal("2.5")}
    assert snapshot.version == 2


def test_changes_are_hand_posted_entries_in_version_order() -> None:
    a, b = _customer("a"), _customer("b")
    services.post_entry(a, EntryKind.TOP_UP, Decimal(10))
    DbCdrSink().write_batch([make_cdr(1, a.pk, "0.5")])  # applied by the switch already
    services.post_entry(b, EntryKind.TOP_UP, Decimal(4))
    services.post_entry(a, EntryKind.ADJUSTMENT, Decimal(-1), reason="fee")
    source = DbBalanceSource()
    assert source.changes(0, 10) == (
        FundsChange(1, a.pk, Decimal(10)),
        FundsChange(2, b.pk, Decimal(4)),
        FundsChange(3, a.pk, Decimal(-1)),
    )
    assert source.changes(1, 1) == (FundsChange(2, b.pk, Decimal(4)),)
    assert source.changes(3, 10) == ()


def test_the_snapshot_is_read_again_while_top_ups_land(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = iter([1, 2, 2, 2])
    monkeypatch.setattr(adapters.billing, "funds_version", lambda: next(versions))
    assert DbBalanceSource().snapshot().version == 2


def test_a_snapshot_that_never_settles_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = iter(range(100))
    monkeypatch.setattr(adapters.billing, "funds_version", lambda: next(counter))
    with pytest.raises(BalancesChangedError, match="during each of 3 reads"):
        DbBalanceSource(max_attempts=3).snapshot()


def test_a_top_up_reaches_the_running_switch() -> None:
    """Start, calls, a top-up, the next poll: the store agrees with the ledger."""
    row = _customer("acme")
    services.post_entry(row, EntryKind.TOP_UP, Decimal("1.00"))
    source, store = DbBalanceSource(), MemoryReservations()
    version = load_balances(source, store)
    assert store.balance(row.pk) == Decimal(1)

    # A call of 60 s at 0.60 a minute, settled by the switch and written by its writer.
    control = CreditControl(store)
    customer = Customer(row.pk, "acme", credit=CreditTerms())
    rate = Rate("49", "Germany", Decimal("0.60"))
    call = control.admit("call-1", customer, rate, RateCard(1, "card"), NOW)
    assert isinstance(call, CallCredit)
    charge = control.settle(call, 45_000, NOW + 45)
    DbCdrSink().write_batch([make_cdr(1, row.pk, str(charge.amount))])
    assert store.balance(row.pk) == balance_of(row.pk) == Decimal("0.4")

    # Not enough for another minute; a top-up arrives in the web app.
    assert control.admit("call-2", customer, rate, RateCard(1, "card"), NOW) is NO_FUNDS
    services.post_entry(row, EntryKind.TOP_UP, Decimal(5), reference="pay-7")
    version = catch_up(source, store, version)
    assert store.balance(row.pk) == balance_of(row.pk) == Decimal("5.4")
    assert isinstance(control.admit("call-2", customer, rate, RateCard(1, "card"), NOW), CallCredit)


def test_catching_up_twice_applies_nothing_twice() -> None:
    row = _customer("acme")
    source, store = DbBalanceSource(), MemoryReservations()
    version = load_balances(source, store)
    services.post_entry(row, EntryKind.TOP_UP, Decimal(7))
    assert catch_up(source, store, version) == version + 1
    # A second node sharing the store, behind by one change, applies it again: no effect.
    assert catch_up(source, store, version) == version + 1
    assert store.balance(row.pk) == Decimal(7)


def test_catching_up_pages_through_many_changes() -> None:
    rows = [_customer(f"c{n}") for n in range(5)]
    source, store = DbBalanceSource(), MemoryReservations()
    version = load_balances(source, store)
    for n in range(3):
        for row in rows:
            services.post_entry(row, EntryKind.TOP_UP, Decimal(n + 1))
    assert catch_up(source, store, version, page=4) == version + 15
    assert {store.balance(row.pk) for row in rows} == {Decimal(6)}
