from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain.dids import MAX_FORWARDS, DidIndex, index_dids
from tollguard.domain.errors import PlanError
from tollguard.domain.plan import (
    Account,
    Customer,
    Did,
    DidTarget,
    Gateway,
    PlanData,
    Provider,
    Rate,
    RateCard,
    SipAddress,
)
from tollguard.domain.routing import build_plan

ACCOUNTS = {
    1: Account(
        id=1, customer_id=10, username="alice", ha1_md5="m", ha1_sha256="s", extension="201"
    ),
    2: Account(id=2, customer_id=20, username="bob", ha1_md5="m", ha1_sha256="s", extension="201"),
}
CUSTOMERS = (10, 20)


def _did(did_id: int, first: str, last: str = "", **kwargs: object) -> Did:
    kwargs.setdefault("account_id", 1)
    return Did(id=did_id, customer_id=10, first=first, last=last, **kwargs)  # type: ignore[arg-type]


def _index(*dids: Did) -> DidIndex:
    return index_dids(dids, ACCOUNTS, CUSTOMERS)


def test_single_numbers_and_ranges_are_found() -> None:
    index = _index(
        _did(1, "442071234567"),
        _did(2, "442079990000", "442079990999"),
        _did(3, "33140000000", "33140000099"),
    )
    assert index.lookup("442071234567").id == 1  # type: ignore[union-attr]
    assert index.lookup("442079990000").id == 2  # type: ignore[union-attr]
    assert index.lookup("442079990999").id == 2  # type: ignore[union-attr]
    assert index.lookup("442079990500").id == 2  # type: ignore[union-attr]
    assert index.lookup("442079991000") is None
    assert index.lookup("44207999000") is None  # one digit short: another length
    assert index.lookup("33140000042").id == 3  # type: ignore[union-attr]
    assert index.lookup("") is None
    assert len(index) == 3
    assert index.by_id(2).first == "442079990000"  # type: ignore[union-attr]


@given(
    first=st.integers(10**9, 10**10 - 10**5),
    size=st.integers(0, 10**4),
    probe=st.integers(-(10**4), 2 * 10**4),
)
def test_range_membership_matches_arithmetic(first: int, size: int, probe: int) -> None:
    index = _index(_did(1, str(first), str(first + size)))
    number = first + probe
    found = index.lookup(str(number))
    assert (found is not None) == (first <= number <= first + size)


def test_forwards_are_followed_to_the_delivering_did() -> None:
    index = _index(
        _did(1, "441", account_id=None, target=DidTarget.DID, forward_to="442"),
        _did(2, "442", account_id=None, target=DidTarget.DID, forward_to="443"),
        _did(3, "443"),
    )
    assert [d.id for d in index.resolve("441")] == [1, 2, 3]
    assert index.resolve("449") == ()


def test_a_disabled_did_ends_the_chain() -> None:
    index = _index(
        _did(1, "441", account_id=None, target=DidTarget.DID, forward_to="442"),
        _did(2, "442", enabled=False),
    )
    chain = index.resolve("441")
    assert [d.id for d in chain] == [1, 2]
    assert not chain[-1].enabled


@pytest.mark.parametrize(
    ("dids", "message"),
    [
        ((_did(1, "44a"),), "digits only"),
        ((_did(1, "+44"),), "digits only"),
        ((_did(1, "4420", "442"),), "as long as"),
        ((_did(1, "4429", "4420"),), "not below"),
        ((_did(1, "441"), _did(1, "442")), "defined twice"),
        ((_did(1, "441"), _did(2, "441")), "another DID"),
        ((_did(1, "4410", "4419"), _did(2, "4415", "4420")), "overlaps"),
        ((_did(1, "4410", "4419"), _did(2, "4413")), "held by range"),
        ((_did(1, "441", account_id=2),), "another customer"),
        ((_did(1, "441", account_id=99),), "unknown account"),
        ((replace(_did(1, "441"), customer_id=99),), "unknown customer"),
        ((_did(1, "441", account_id=None, target=DidTarget.TRUNK),), "one address"),
        (
            (
                _did(
                    1,
                    "441",
                    account_id=None,
                    target=DidTarget.TRUNK,
                    trunk=(SipAddress("a"), SipAddress("b"), SipAddress("c")),
                ),
            ),
            "one address",
        ),
        (
            (_did(1, "441", account_id=None, target=DidTarget.TRUNK, trunk=(SipAddress("a", 0),)),),
            "bad trunk address",
        ),
        ((_did(1, "441", trunk=(SipAddress("a"),)),), "no trunk"),
        ((_did(1, "441", account_id=None, target=DidTarget.DID, forward_to="449"),), "no DID"),
        (
            (
                _did(1, "441", account_id=None, target=DidTarget.DID, forward_to="442"),
                _did(2, "442", account_id=None, target=DidTarget.DID, forward_to="441"),
            ),
            "loop",
        ),
        ((_did(1, "441", price_per_minute=Decimal(-1)),), ">= 0"),
    ],
)
def test_bad_dids_are_refused_by_name(dids: tuple[Did, ...], message: str) -> None:
    with pytest.raises(PlanError, match=message) as raised:
        _index(*dids)
    # Each error names the DID field it is about, for a form to show it there; only a
    # repeated id is about no one field.
    fields = {f.name for f in dataclasses.fields(Did)}
    if message == "defined twice":
        assert raised.value.field == ""
    else:
        assert raised.value.field in fields


def test_forward_chains_are_bounded() -> None:
    chain = [
        _did(i, f"44{i}", account_id=None, target=DidTarget.DID, forward_to=f"44{i + 1}")
        for i in range(1, MAX_FORWARDS + 2)
    ]
    with pytest.raises(PlanError, match="forwards"):
        _index(*chain, _did(99, f"44{MAX_FORWARDS + 2}"))
    assert _index(*chain[1:], _did(99, f"44{MAX_FORWARDS + 2}")).resolve("442")[-1].id == 99


def test_plan_recognises_providers_extensions_and_inbound_rates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    data = PlanData(
        version=1,
        customers=(Customer(id=10, name="acme"), Customer(id=20, name="other")),
        accounts=tuple(ACCOUNTS.values()),
        providers=(Provider(id=1, name="carrier", inbound_card_id=5),),
        gateways=(
            Gateway(id=1, provider_id=1, name="by-ip", host="192.0.2.10"),
            Gateway(id=2, provider_id=1, name="by-name", host="gw.example.net"),
            Gateway(id=3, provider_id=1, name="off", host="192.0.2.11", enabled=False),
        ),
        rate_cards=(RateCard(id=5, name="inbound", rates=(Rate("44", "UK", Decimal("0.002")),)),),
        dids=(_did(1, "442071234567"),),
    )
    plan = build_plan(data)
    assert plan.gateway_from("192.0.2.10").id == 1  # type: ignore[union-attr]
    assert plan.gateway_from("::ffff:192.0.2.10").id == 1  # type: ignore[union-attr]
    assert plan.gateway_from("192.0.2.11") is None
    assert plan.gateway_from("gw.example.net") is None
    assert plan.account_by_extension(10, "201").username == "alice"  # type: ignore[union-attr]
    assert plan.account_by_extension(20, "201").username == "bob"  # type: ignore[union-attr]
    assert plan.account_by_extension(10, "202") is None
    assert plan.account(2).username == "bob"  # type: ignore[union-attr]
    provider = plan.provider(1)
    assert provider is not None
    rate = plan.inbound_rate(provider, "442071234567", now)
    assert rate is not None
    assert rate.price_per_minute == Decimal("0.002")
    assert plan.dids.lookup("442071234567").id == 1  # type: ignore[union-attr]
    with pytest.raises(PlanError, match="inbound rate card"):
        build_plan(replace(data, providers=(Provider(id=1, name="c", inbound_card_id=9),)))
    bad = replace(ACCOUNTS[1], extension="2#1")
    with pytest.raises(PlanError, match="not digits"):
        build_plan(replace(data, accounts=(bad,), dids=()))
