"""The pure rules of inbound calls: the called number, which failures move on, the
DID's price as a rate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tollguard.domain.plan import (
    Customer,
    Did,
    PlanData,
    RateCard,
    Rounding,
)
from tollguard.domain.rating import rate_call
from tollguard.domain.routing import build_plan
from tollguard.switch.call import Delivery
from tollguard.switch.inbound import did_charge, normalise_did_number
from tollguard.switch.wire import Peer


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("+442071234567", "442071234567"),
        ("442071234567", "442071234567"),
        ("+44-20-7123.4567", "442071234567"),
        ("(020)71234567", "02071234567"),
        ("", ""),
        ("+", ""),
        ("alice", ""),
        ("4420712345*67", ""),
        ("++442071234567", ""),
        ("\uff14\uff14\uff12\uff10", ""),  # fullwidth digits are not ASCII digits
        ("1" * 21, ""),
    ],
)
def test_the_called_number_is_normalised(raw: str, number: str) -> None:
    assert normalise_did_number(raw) == number


def test_contacts_move_on_unless_6xx_and_trunks_only_on_408_and_5xx() -> None:
    peer = Peer(("127.0.0.1", 5062), "udp")
    contact = Delivery(peer, "sip:bob@10.0.0.1", contact=True)
    trunk = Delivery(peer, "sip:44@127.0.0.1", contact=False)
    assert [contact.moves_on(s) for s in (302, 404, 486, 503, 603, 200)] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]
    assert [trunk.moves_on(s) for s in (404, 408, 486, 500, 503, 603)] == [
        False,
        True,
        False,
        True,
        True,
        False,
    ]


def _plan(card: RateCard) -> PlanData:
    return PlanData(version=1, customers=(Customer(1, "acme", sell_card_id=1),), rate_cards=(card,))


def test_the_did_price_is_billed_per_started_minute_rounded_as_the_sell_card() -> None:
    sell = RateCard(1, "retail", rounding=Rounding.UP, decimals=2)
    plan = build_plan(_plan(sell))
    customer = plan.customer(1)
    assert customer is not None
    did = Did(1, 1, "442071234567", account_id=None, price_per_minute=Decimal("0.0101"))
    charge = did_charge(plan, customer, did)
    assert charge is not None
    rate, card = charge
    assert (rate.initial_increment, rate.next_increment, rate.connect_fee) == (60, 60, 0)
    assert (card.currency, card.rounding, card.decimals) == ("EUR", Rounding.UP, 2)
    # 61 s: two started minutes, 0.0202, rounded up to cents.
    assert rate_call(61_000, rate, card).amount == Decimal("0.03")
    # A free DID has no charge; a DID in another currency keeps the default rounding.
    assert did_charge(plan, customer, Did(2, 1, "4420", price_per_minute=Decimal(0))) is None
    other = did_charge(
        plan, customer, Did(3, 1, "4421", price_per_minute=Decimal(1), currency="USD")
    )
    assert other is not None
    assert (other[1].currency, other[1].decimals) == ("USD", RateCard(0, "x").decimals)
