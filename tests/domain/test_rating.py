from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain.errors import RatingError
from tollguard.domain.plan import Rate, RateCard, Rounding
from tollguard.domain.rating import Charge, billed_seconds, margin, rate_call


def _rate(price: str, fee: str = "0", initial: int = 60, following: int = 60) -> Rate:
    return Rate(
        prefix="44",
        destination="United Kingdom",
        price_per_minute=Decimal(price),
        connect_fee=Decimal(fee),
        initial_increment=initial,
        next_increment=following,
    )


CARD = RateCard(id=1, name="retail")


@pytest.mark.parametrize(
    ("duration_ms", "rate", "card", "expected"),
    [
        (1_000, _rate("0.0120"), CARD, Charge(60, Decimal("0.0120"))),
        (1, _rate("0.0120"), CARD, Charge(60, Decimal("0.0120"))),
        (60_000, _rate("0.0120"), CARD, Charge(60, Decimal("0.0120"))),
        (60_001, _rate("0.0120"), CARD, Charge(120, Decimal("0.0240"))),
        (61_000, _rate("0.0120", initial=30, following=6), CARD, Charge(66, Decimal("0.0132"))),
        (29_000, _rate("0.0120", initial=30, following=6), CARD, Charge(30, Decimal("0.0060"))),
        (0, _rate("0.0120", fee="0.05"), CARD, Charge(0, Decimal("0.0000"))),
        (1_500, _rate("0.06", initial=1, following=1), CARD, Charge(2, Decimal("0.0020"))),
        (7_000, _rate("0.06", initial=1, following=1), CARD, Charge(7, Decimal("0.0070"))),
        (5_000, _rate("0", fee="0.10"), CARD, Charge(60, Decimal("0.1000"))),
        (90_000, _rate("0.0120", fee="0.01"), CARD, Charge(120, Decimal("0.0340"))),
        (
            1_000,
            _rate("0.00005", initial=1, following=1),
            RateCard(id=2, name="c", decimals=5, rounding=Rounding.HALF_UP),
            Charge(1, Decimal("0.00000")),
        ),
        (
            10_000,
            _rate("0.00015", initial=1, following=1),
            RateCard(id=2, name="c", decimals=5, rounding=Rounding.HALF_UP),
            Charge(10, Decimal("0.00003")),
        ),
        (
            10_000,
            _rate("0.00015", initial=1, following=1),
            RateCard(id=2, name="c", decimals=5, rounding=Rounding.HALF_EVEN),
            Charge(10, Decimal("0.00002")),
        ),
        (
            1_000,
            _rate("0.01", initial=1, following=1),
            RateCard(id=3, name="c", decimals=4, rounding=Rounding.UP),
            Charge(1, Decimal("0.0002")),
        ),
        (
            1_000,
            _rate("0.01", initial=1, following=1),
            RateCard(id=3, name="c", decimals=4, rounding=Rounding.CEILING),
            Charge(1, Decimal("0.0002")),
        ),
        (
            1_000,
            _rate("0.01", initial=1, following=1),
            RateCard(id=3, name="c", decimals=4, rounding=Rounding.DOWN),
            Charge(1, Decimal("0.0001")),
        ),
        (
            100_000,
            _rate("0.5"),
            RateCard(id=4, name="whole", decimals=0),
            Charge(120, Decimal("1")),
        ),
    ],
    ids=[
        "1s-at-60-60",
        "1ms-at-60-60",
        "exactly-60s",
        "60s-and-1ms",
        "61s-at-30-6",
        "29s-at-30-6",
        "unanswered-no-connect-fee",
        "1.5s-at-1-1",
        "7s-at-1-1",
        "connect-fee-only",
        "fee-plus-two-minutes",
        "half-up-tie-rounds-down-below-half",
        "half-up-tie",
        "half-even-tie",
        "up",
        "ceiling",
        "down",
        "zero-decimals",
    ],
)
def test_rate_call(duration_ms: int, rate: Rate, card: RateCard, expected: Charge) -> None:
    charge = rate_call(duration_ms, rate, card)
    assert charge == expected
    assert charge.amount.as_tuple().exponent == -card.decimals


@pytest.mark.parametrize(
    ("duration_ms", "rate", "card", "message"),
    [
        (-1, _rate("0.01"), CARD, "negative duration -1 ms"),
        (1_000, _rate("0.01", initial=0), CARD, "increments 0/60 must be positive"),
        (1_000, _rate("0.01", following=0), CARD, "increments 60/0 must be positive"),
        (1_000, _rate("0.01"), RateCard(id=5, name="x", decimals=-1), "not -1"),
        (1_000, _rate("0.01"), RateCard(id=5, name="x", decimals=13), "not 13"),
    ],
    ids=[
        "negative-duration",
        "zero-initial",
        "zero-next",
        "negative-decimals",
        "too-many-decimals",
    ],
)
def test_rate_call_rejects(duration_ms: int, rate: Rate, card: RateCard, message: str) -> None:
    with pytest.raises(RatingError, match=message):
        rate_call(duration_ms, rate, card)


_increment = st.integers(min_value=1, max_value=120)
_price = st.decimals(min_value=0, max_value=10, places=5, allow_nan=False, allow_infinity=False)
_rounding = st.sampled_from(Rounding)


@given(
    st.integers(min_value=0, max_value=10_000_000),
    st.integers(min_value=0, max_value=10_000_000),
    _increment,
    _increment,
    _price,
    _price,
    _rounding,
)
def test_charge_is_monotonic_in_duration(
    a: int,
    b: int,
    initial: int,
    following: int,
    price: Decimal,
    fee: Decimal,
    rounding: Rounding,
) -> None:
    shorter, longer = sorted((a, b))
    rate = Rate("1", "x", price, fee, initial, following)
    card = RateCard(id=1, name="c", rounding=rounding)
    first, second = rate_call(shorter, rate, card), rate_call(longer, rate, card)
    assert first.billed_s <= second.billed_s
    assert first.amount <= second.amount


@given(st.integers(min_value=1, max_value=10_000_000), _increment, _increment)
def test_billed_covers_duration_in_whole_increments(
    duration_ms: int, initial: int, following: int
) -> None:
    billed = billed_seconds(duration_ms, initial, following)
    assert billed * 1000 >= duration_ms
    assert billed >= initial
    assert (billed - initial) % following == 0
    # Never a whole increment more than needed.
    assert billed == initial or (billed - following) * 1000 < duration_ms


def test_margin() -> None:
    assert margin(Decimal("0.0340"), Decimal("0.0210")) == Decimal("0.0130")
    assert margin(Decimal("0.01"), Decimal("0.02")) == Decimal("-0.01")
