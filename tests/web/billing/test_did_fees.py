"""DIDs' monthly fees: once per DID and month, re-runs and races charge nothing twice,
and the running switch's balance follows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError

from tollguard.domain.credit import catch_up, load_balances
from tollguard.state.memory import MemoryReservations
from tollguard.web.adapters import DbBalanceSource
from tollguard.web.billing import did_fees
from tollguard.web.billing.did_fees import DidFeeCharger, charge_month, month_of, parse_month
from tollguard.web.billing.models import DidFee, LedgerEntry
from tollguard.web.billing.selectors import balance_of

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

DEC_5 = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
DEC = date(2026, 12, 1)


def _world() -> tuple[object, object]:
    acme = factories.customer("acme")
    alice = factories.account(acme)
    return acme, alice


def test_each_did_is_charged_once_a_month_and_a_rerun_changes_nothing() -> None:
    acme, alice = _world()
    single = factories.did(acme, "4420", account=alice, monthly_price="2.50")
    trunk = factories.did(
        acme, "4430", last="4439", target="trunk", trunk_host="h", monthly_price="40"
    )
    factories.did(acme, "4450", account=alice)  # no monthly price: nothing to post
    factories.did(acme, "4460", account=alice, monthly_price="9", enabled=False)
    assert charge_month(DEC, DEC_5) == 2
    assert balance_of(acme.pk) == Decimal("-42.5")  # type: ignore[attr-defined]
    entries = LedgerEntry.objects.filter(customer=acme).order_by("amount")
    assert [(e.amount, e.reason, e.reference) for e in entries] == [
        (Decimal(-40), "monthly fee of DID 4430-4439 for 2026-12", f"did-fee:{trunk.pk}:2026-12"),
        (Decimal("-2.5"), "monthly fee of DID 4420 for 2026-12", f"did-fee:{single.pk}:2026-12"),
    ]
    assert charge_month(DEC, DEC_5) == 0
    assert LedgerEntry.objects.count() == 2
    # The next month charges them again.
    assert charge_month(date(2027, 1, 1), datetime(2027, 1, 1, tzinfo=UTC)) == 2
    assert balance_of(acme.pk) == Decimal(-85)  # type: ignore[attr-defined]


def test_a_did_disabled_or_deleted_mid_month_keeps_its_charge_and_is_not_charged_again() -> None:
    acme, alice = _world()
    kept = factories.did(acme, "4420", account=alice, monthly_price="3")
    gone = factories.did(acme, "4421", account=alice, monthly_price="4")
    assert charge_month(DEC, DEC_5) == 2
    kept.enabled = False
    kept.save()
    gone.delete()
    assert charge_month(DEC, DEC_5) == 0
    assert balance_of(acme.pk) == Decimal(-7)  # type: ignore[attr-defined]
    assert DidFee.objects.filter(number="4421", month=DEC).exists()  # the record outlives it
    # In January the disabled one and the deleted one cost nothing.
    assert charge_month(date(2027, 1, 1), datetime(2027, 1, 2, tzinfo=UTC)) == 0


def test_a_did_added_mid_month_is_charged_at_the_next_run() -> None:
    acme, alice = _world()
    assert charge_month(DEC, DEC_5) == 0
    factories.did(acme, "4420", account=alice, monthly_price="3")
    assert charge_month(DEC, DEC_5) == 1


def test_a_race_lost_to_another_process_rolls_its_entry_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes both saw the DID unpaid: the second's entry is refused by a unique
    key (the ledger's reference, then the (DID, month) key) and rolled back, so the
    balance is charged once."""
    acme, alice = _world()
    did = factories.did(acme, "4420", account=alice, monthly_price="3")
    assert charge_month(DEC, DEC_5) == 1
    # The other process's view: the fee row is not there yet when it selects.
    monkeypatch.setattr(did_fees.DidFee.objects, "filter", lambda **_: DidFee.objects.none())
    create = DidFee.objects.create

    def lose(**values: object) -> DidFee:
        raise IntegrityError("UNIQUE constraint failed: billing_didfee.did_id, month")

    monkeypatch.setattr(DidFee.objects, "create", lose)
    # The ledger's own (customer, reference) key refuses the entry first here.
    assert charge_month(DEC, DEC_5) == 0
    monkeypatch.setattr(DidFee.objects, "create", create)
    assert LedgerEntry.objects.count() == 1
    assert balance_of(acme.pk) == Decimal(-3)  # type: ignore[attr-defined]
    assert did.pk is not None


def test_a_future_month_is_refused_and_months_parse() -> None:
    with pytest.raises(ValueError, match="has not begun"):
        charge_month(date(2027, 1, 1), DEC_5)
    assert parse_month("2026-02") == date(2026, 2, 1)
    with pytest.raises(ValueError, match="not a month"):
        parse_month("2026-13")
    assert month_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == DEC


def test_the_fee_reaches_the_running_switch() -> None:
    acme, alice = _world()
    source, store = DbBalanceSource(), MemoryReservations()
    version = load_balances(source, store)
    factories.did(acme, "4420", account=alice, monthly_price="2.50")
    assert DidFeeCharger(clock=lambda: DEC_5).run_once() == 1
    catch_up(source, store, version)
    assert store.balance(acme.pk) == balance_of(acme.pk) == Decimal("-2.5")  # type: ignore[attr-defined]


def test_the_management_command() -> None:
    acme, alice = _world()
    factories.did(acme, "4420", account=alice, monthly_price="1")
    out = StringIO()
    call_command("charge_dids", "--month", "2020-01", stdout=out)
    assert out.getvalue() == "2020-01: 1 DID fee(s) charged\n"
    call_command("charge_dids", "--month", "2020-01", stdout=out)
    assert out.getvalue().endswith("2020-01: 0 DID fee(s) charged\n")
    with pytest.raises(CommandError, match="not a month"):
        call_command("charge_dids", "--month", "November")
