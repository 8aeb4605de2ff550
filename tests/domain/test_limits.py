from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain.limits import (
    Bucket,
    TokenBucket,
    Window,
    money_from_units,
    money_units,
)


def test_bucket_take_refill_and_burst() -> None:
    spec = TokenBucket(rate=4.0, burst=2.0)
    bucket = Bucket.full(spec, 100.0)
    ok1, bucket = bucket.take(spec, 100.0)
    ok2, bucket = bucket.take(spec, 100.0)
    ok3, bucket = bucket.take(spec, 100.0)
    assert (ok1, ok2, ok3) == (True, True, False)
    ok4, bucket = bucket.take(spec, 100.25)  # a quarter second at 4/s: one token
    assert ok4
    assert not bucket.is_full(spec, 100.5)
    assert bucket.is_full(spec, 100.75)


def test_bucket_cost_above_one() -> None:
    spec = TokenBucket(rate=1.0, burst=5.0)
    ok, bucket = Bucket.full(spec, 0.0).take(spec, 0.0, cost=5.0)
    assert ok
    ok, _ = bucket.take(spec, 4.0, cost=5.0)
    assert not ok


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.0, 1.0), (-1.0, 5.0), (1.0, 0.5)], ids=["zero", "negative", "burst"]
)
def test_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate, burst)


@given(st.floats(min_value=0, max_value=1e10, allow_nan=False))
def test_window_slots_cover_exactly_the_window(now: float) -> None:
    window = Window(3600.0, 12)
    assert window.slot(now) - window.oldest_slot(now) == window.slots - 1
    assert window.slot(now) * window.slot_s <= now < (window.slot(now) + 1) * window.slot_s + 1e-6


def test_window_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="window"):
        Window(0)
    with pytest.raises(ValueError, match="window"):
        Window(60, 0)


@pytest.mark.parametrize(
    ("amount", "units"),
    [
        (Decimal("1"), 1_000_000),
        (Decimal("0.000001"), 1),
        (Decimal("0.0000005"), 1),
        (Decimal("0.0000004"), 0),
        (Decimal("-2.5"), -2_500_000),
    ],
)
def test_money_units(amount: Decimal, units: int) -> None:
    assert money_units(amount) == units


@given(st.decimals(min_value=-(10**6), max_value=10**6, places=6, allow_nan=False))
def test_money_round_trip(amount: Decimal) -> None:
    assert money_from_units(money_units(amount)) == amount
