"""Credit control: prices on the increment grid, affordable calls, slices, and the
reservation life of a call. Every expected figure below was worked out by hand; the
comments show the arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tollguard.domain.credit import (
    CREDIT_UNAVAILABLE,
    CURRENCY_MISMATCH,
    NO_FUNDS,
    CallCredit,
    CreditControl,
    CreditPolicy,
    Deadline,
    check_amount,
    grid_ceil,
    largest_affordable,
    longest_call_s,
    price,
    slice_end,
)
from tollguard.domain.errors import CreditError, PlanError, StoreUnavailable
from tollguard.domain.plan import BillingMode, CreditTerms, Customer, Rate, RateCard, Rounding
from tollguard.state.memory import MemoryReservations

T0 = 1_800_000_000.0  # wall-clock seconds; any value does


def _rate(price: str, fee: str = "0", initial: int = 60, following: int = 60) -> Rate:
    return Rate(
        prefix="49",
        destination="Germany",
        price_per_minute=Decimal(price),
        connect_fee=Decimal(fee),
        initial_increment=initial,
        next_increment=following,
    )


CARD = RateCard(id=1, name="retail")  # EUR, half up, four places
CARD2_UP = RateCard(id=2, name="up", decimals=2, rounding=Rounding.UP)
CARD2_DOWN = RateCard(id=3, name="down", decimals=2, rounding=Rounding.DOWN)
CARD2_HALF_UP = RateCard(id=4, name="half", decimals=2, rounding=Rounding.HALF_UP)

# 1.20 a minute is 0.02 a second; 0.10 to connect; billed 30 s then every 6 s.
MOBILE = _rate("1.20", fee="0.10", initial=30, following=6)
# 0.60 a minute, billed by the minute.
LANDLINE = _rate("0.60")
# A cent a minute, billed by the second.
CHEAP = _rate("0.01", initial=1, following=1)


def _customer(
    mode: BillingMode = BillingMode.PREPAID,
    limit: str = "0",
    currency: str = "EUR",
    max_call_s: int = 7200,
) -> Customer:
    return Customer(
        id=7,
        name="acme",
        max_call_duration_s=max_call_s,
        credit=CreditTerms(mode=mode, credit_limit=Decimal(limit), currency=currency),
    )


@pytest.mark.parametrize(
    ("seconds", "rate", "expected"),
    [
        (1, LANDLINE, 60),
        (60, LANDLINE, 60),
        (61, LANDLINE, 120),
        (1, MOBILE, 30),
        (31, MOBILE, 36),  # 30 + one 6-s step
        (61, MOBILE, 66),  # 30 + ceil(31/6)=6 steps = 66
        (17, CHEAP, 17),
    ],
    ids=["1s-per-minute", "60s", "61s", "mobile-1s", "mobile-31s", "mobile-61s", "per-second"],
)
def test_grid_ceil(seconds: int, rate: Rate, expected: int) -> None:
    assert grid_ceil(seconds, rate) == expected


def test_grid_ceil_refuses_an_empty_call() -> None:
    with pytest.raises(CreditError, match="at least one second"):
        grid_ceil(0, LANDLINE)


@pytest.mark.parametrize(
    ("billed_s", "rate", "card", "expected"),
    [
        (60, LANDLINE, CARD, "0.6000"),
        (120, LANDLINE, CARD, "1.2000"),
        (30, MOBILE, CARD, "0.7000"),  # 0.10 + 30 x 0.02
        (90, MOBILE, CARD, "1.9000"),  # 0.10 + 90 x 0.02
        (0, MOBILE, CARD, "0.0000"),  # nothing billed, no connect fee
        (29, CHEAP, CARD2_HALF_UP, "0.00"),  # 0.004833 rounds down
        (30, CHEAP, CARD2_HALF_UP, "0.01"),  # 0.005 rounds half up
        (61, CHEAP, CARD2_UP, "0.02"),  # 0.010166 rounds up
    ],
    ids=["1min", "2min", "mobile-30", "mobile-90", "none", "half-up-29", "half-up-30", "up-61"],
)
def test_price_is_the_rated_charge(
    billed_s: int, rate: Rate, card: RateCard, expected: str
) -> None:
    assert price(billed_s, rate, card) == Decimal(expected)


@pytest.mark.parametrize(
    ("funds", "rate", "card", "cap_s", "expected"),
    [
        ("1.00", LANDLINE, CARD, 7200, 60),  # 0.60 fits, 1.20 does not
        ("1.20", LANDLINE, CARD, 7200, 120),  # exactly two minutes
        ("0.59", LANDLINE, CARD, 7200, 0),  # not even the first minute
        ("100", LANDLINE, CARD, 300, 300),  # the cap, not the funds
        ("100", LANDLINE, CARD, 90, 90),  # a cap inside a billing minute
        ("1.00", MOBILE, CARD, 7200, 42),  # 0.10 + 0.02 s <= 1.00: s <= 45, grid 42
        ("0.70", MOBILE, CARD, 7200, 30),  # exactly the first 30 s
        ("0.69", MOBILE, CARD, 7200, 0),
        ("2.00", MOBILE, CARD, 7200, 90),  # s <= 95, grid 90
        # The closed form says 60 s for a cent; rounding decides otherwise.
        ("0.01", CHEAP, CARD2_HALF_UP, 7200, 89),  # 90 s is 0.015, rounds to 0.02
        ("0.01", CHEAP, CARD2_DOWN, 7200, 119),  # 120 s is 0.02
        ("0.01", CHEAP, CARD2_UP, 7200, 60),  # 61 s is 0.0101, rounds up to 0.02
        ("0", CHEAP, CARD2_HALF_UP, 7200, 29),  # the first 29 s round to nothing
        ("0", _rate("0"), CARD, 3600, 3600),  # free: the cap
        ("0.04", _rate("0", fee="0.05"), CARD, 3600, 0),  # the connect fee alone
        ("0.05", _rate("0", fee="0.05"), CARD, 3600, 3600),
        ("-1", LANDLINE, CARD, 7200, 0),
    ],
    ids=[
        "minute",
        "two-minutes",
        "short",
        "capped",
        "capped-mid-minute",
        "mobile-42",
        "mobile-first-increment",
        "mobile-short",
        "mobile-90",
        "rounding-half-up",
        "rounding-down",
        "rounding-up",
        "rounding-free-start",
        "free",
        "fee-short",
        "fee-only",
        "in-debt",
    ],
)
def test_longest_call(funds: str, rate: Rate, card: RateCard, cap_s: int, expected: int) -> None:
    assert longest_call_s(Decimal(funds), rate, card, cap_s) == expected


@pytest.mark.parametrize(
    ("funds", "low", "high", "expected"),
    [
        ("2.00", 66, 120, 90),
        ("2.00", 96, 150, 0),  # 96 s costs 2.02
        ("9.99", 30, 60, 60),  # the whole range fits
        ("1.06", 48, 48, 48),  # a range of one point that fits
    ],
    ids=["partial", "none", "all", "single"],
)
def test_largest_affordable_between(funds: str, low: int, high: int, expected: int) -> None:
    assert largest_affordable(Decimal(funds), MOBILE, CARD, low=low, high=high) == expected


@pytest.mark.parametrize(
    ("low", "high"), [(31, 60), (30, 61), (60, 30)], ids=["low", "high", "empty"]
)
def test_largest_affordable_wants_grid_points(low: int, high: int) -> None:
    with pytest.raises(CreditError):
        largest_affordable(Decimal(10), MOBILE, CARD, low=low, high=high)


@pytest.mark.parametrize(
    ("covered", "rate", "slice_s", "cap_s", "expected"),
    [
        (0, LANDLINE, 60, 7200, 60),
        (60, LANDLINE, 60, 7200, 120),
        (0, MOBILE, 60, 7200, 60),  # 30 + 5 x 6
        (0, _rate("1", initial=45, following=10), 60, 7200, 65),  # 45 + 2 x 10
        (0, _rate("1", initial=45, following=10), 60, 50, 55),  # the cap's grid point
        (120, LANDLINE, 60, 100, 120),  # at the cap: nothing further
        (0, LANDLINE, 60, 0, 60),  # no cap
    ],
    ids=["first", "second", "mobile", "odd-grid", "capped", "at-cap", "no-cap"],
)
def test_slice_end(covered: int, rate: Rate, slice_s: int, cap_s: int, expected: int) -> None:
    assert slice_end(covered, rate, slice_s, cap_s) == expected


@pytest.mark.parametrize(
    ("amount", "signed", "ok"),
    [
        ("1.234567", False, True),
        ("1.2345670000", False, True),  # trailing zeros are not places
        ("1.2345671", False, False),
        ("-1", False, False),
        ("-1", True, True),
        ("NaN", True, False),
        ("Infinity", False, False),
        ("1E+40", False, False),
    ],
    ids=[
        "six-places",
        "trailing-zeros",
        "seven-places",
        "negative",
        "signed",
        "nan",
        "inf",
        "too-large",
    ],
)
def test_check_amount(amount: str, signed: bool, ok: bool) -> None:
    if ok:
        assert check_amount(Decimal(amount), signed=signed) == Decimal(amount)
    else:
        with pytest.raises(CreditError):
            check_amount(Decimal(amount), signed=signed)


def test_terms_floor() -> None:
    assert CreditTerms().floor == 0
    assert CreditTerms(mode=BillingMode.PREPAID, credit_limit=Decimal(50)).floor == 0
    assert CreditTerms(mode=BillingMode.POSTPAID, credit_limit=Decimal(50)).floor == -50


def test_terms_refuse_a_negative_limit() -> None:
    with pytest.raises(PlanError, match="credit limit"):
        CreditTerms(credit_limit=Decimal(-1))


@pytest.mark.parametrize(
    "values",
    [{"slice_s": 0}, {"extend_before_s": 60}, {"extend_before_s": -1}, {"retry_s": 0}],
    ids=["no-slice", "extend-after-slice", "negative-lead", "no-retry"],
)
def test_policy_refuses_nonsense(values: dict[str, int]) -> None:
    with pytest.raises(CreditError):
        CreditPolicy(**values)


# -- a call's reservation, step by step --------------------------------------------------


def _control(balance: str, policy: CreditPolicy | None = None) -> CreditControl:
    store = MemoryReservations()
    store.open(7, Decimal(balance), 1)
    return CreditControl(store, policy)


def _admitted(control: CreditControl, customer: Customer, rate: Rate, key: str) -> CallCredit:
    granted = control.admit(key, customer, rate, CARD, T0)
    assert isinstance(granted, CallCredit), granted
    return granted


def test_a_call_until_the_money_runs_out() -> None:
    """Balance 2.00 at MOBILE: 0.10 to connect, 0.02 a second, billed 30/6."""
    control = _control("2.00")
    store = control.store
    call = _admitted(control, _customer(), MOBILE, "call-1")
    # The first slice: 60 s for 0.10 + 1.20.
    assert (call.covered_s, call.reserved) == (60, Decimal("1.3000"))
    assert store.available(7) == Decimal("0.7000")
    # Answered: extend 10 s before the 60 reserved seconds run out.
    assert control.answered(call, T0 + 5) == Deadline(50_000)
    # 120 s would cost 2.50; the funds (0.70 + 1.30) pay for 90 s (1.90).
    assert control.extend(call, 50_000, T0 + 55) == Deadline(80_000)
    assert (call.covered_s, call.reserved) == (90, Decimal("1.9000"))
    assert store.available(7) == Decimal("0.1000")
    # 96 s would cost 2.02: no more. Try again every second until the 90 s are over.
    assert control.extend(call, 80_000, T0 + 85) == Deadline(81_000)
    assert control.extend(call, 89_500, T0 + 94.5) == Deadline(90_000)
    assert control.extend(call, 90_000, T0 + 95) == Deadline(90_000, hang_up=True)
    # The BYE went out 450 ms late: those are not charged.
    charge = control.settle(call, 90_450, T0 + 95.45)
    assert (charge.billed_s, charge.amount) == (90, Decimal("1.9000"))
    assert store.balance(7) == store.available(7) == Decimal("0.1000")
    # What is left is less than one more 6-s increment (0.12).
    assert store.available(7) < price(96, MOBILE, CARD) - price(90, MOBILE, CARD)


def test_a_top_up_during_the_call_keeps_it_going() -> None:
    control = _control("2.00")
    call = _admitted(control, _customer(), MOBILE, "call-1")
    control.answered(call, T0)
    control.extend(call, 50_000, T0 + 50)  # to 90 s; 0.10 left
    assert control.extend(call, 80_000, T0 + 80) == Deadline(81_000)
    control.store.adjust(7, Decimal("5"), 2)
    # A full slice again: 150 s for 3.10.
    assert control.extend(call, 81_000, T0 + 81) == Deadline(140_000)
    assert (call.covered_s, call.reserved) == (150, Decimal("3.1000"))


def test_a_call_that_ends_early_pays_what_it_used() -> None:
    control = _control("10")
    call = _admitted(control, _customer(), MOBILE, "call-1")
    control.answered(call, T0)
    charge = control.settle(call, 31_200, T0 + 31.2)  # billed 36 s: 0.10 + 0.72
    assert (charge.billed_s, charge.amount) == (36, Decimal("0.8200"))
    assert control.store.balance(7) == control.store.available(7) == Decimal("9.1800")


def test_an_unanswered_call_releases_everything() -> None:
    control = _control("10")
    call = _admitted(control, _customer(), MOBILE, "call-1")
    assert control.store.available(7) == Decimal("8.7000")
    control.release(call, T0 + 3)
    assert control.store.available(7) == Decimal(10)
    assert call.settled


def test_settling_twice_is_a_bug() -> None:
    control = _control("10")
    call = _admitted(control, _customer(), MOBILE, "call-1")
    control.release(call, T0)
    with pytest.raises(CreditError, match="settled already"):
        control.settle(call, 1000, T0)
    with pytest.raises(CreditError, match="settled already"):
        control.extend(call, 1000, T0)


def test_no_funds_for_the_first_increment_refuses_the_call() -> None:
    control = _control("0.69")  # MOBILE's first 30 s cost 0.70
    assert control.admit("call-1", _customer(), MOBILE, CARD, T0) is NO_FUNDS
    assert NO_FUNDS.status == 402 and NO_FUNDS.q850_cause == 21
    assert control.store.available(7) == Decimal("0.69")


def test_a_short_first_slice_when_funds_are_low() -> None:
    control = _control("0.90")  # 30 s cost 0.70, 36 s 0.82, 42 s 0.94
    call = _admitted(control, _customer(), MOBILE, "call-1")
    assert (call.covered_s, call.reserved) == (36, Decimal("0.8200"))
    # The first deadline is already due: 36 - 10 = 26 s.
    assert control.answered(call, T0) == Deadline(26_000)


def test_postpaid_calls_down_to_minus_the_limit() -> None:
    control = _control("0")
    customer = _customer(BillingMode.POSTPAID, limit="1.00")
    call = _admitted(control, customer, LANDLINE, "call-1")  # 60 s for 0.60
    assert control.store.available(7) == Decimal("-0.6000")
    # Only 0.40 of credit is left: a second call cannot pay for its first minute.
    assert control.admit("call-2", customer, LANDLINE, CARD, T0) is NO_FUNDS
    control.settle(call, 60_000, T0 + 60)
    assert control.store.balance(7) == Decimal("-0.6000")


def test_a_prepaid_customer_in_debt_still_reaches_free_numbers() -> None:
    control = _control("-1")
    call = _admitted(control, _customer(), _rate("0"), "emergency")
    assert call.reserved == 0
    assert control.admit("paid", _customer(), LANDLINE, CARD, T0) is NO_FUNDS


def test_the_sell_card_must_price_in_the_customer_currency() -> None:
    control = _control("100")
    usd = RateCard(id=9, name="usd", currency="USD")
    assert (
        control.admit("call-1", _customer(currency="EUR"), LANDLINE, usd, T0) is CURRENCY_MISMATCH
    )
    assert CURRENCY_MISMATCH.status == 503
    assert control.store.available(7) == Decimal(100)


def test_the_maximum_duration_caps_the_reservation() -> None:
    control = _control("100")
    call = _admitted(control, _customer(max_call_s=100), LANDLINE, "call-1")
    assert control.answered(call, T0) == Deadline(50_000)
    # 120 s is the grid point of the 100-s cap: reserved, and nothing after it.
    assert control.extend(call, 50_000, T0 + 50) is None
    assert (call.covered_s, call.reserved) == (120, Decimal("1.2000"))
    # The switch's maximum-duration timer ends the call at 100 s, billed 120 s.
    assert control.settle(call, 100_020, T0 + 100).amount == Decimal("1.2000")


def test_a_cap_within_the_first_slice_needs_no_deadline() -> None:
    control = _control("100")
    call = _admitted(control, _customer(max_call_s=45), LANDLINE, "call-1")
    assert call.covered_s == 60
    assert control.answered(call, T0) is None


def test_calls_of_one_customer_share_the_balance() -> None:
    control = _control("2.00")
    first = _admitted(control, _customer(), MOBILE, "call-1")  # 1.30
    second = _admitted(control, _customer(), MOBILE, "call-2")  # 0.70 left: 30 s
    assert (second.covered_s, second.reserved) == (30, Decimal("0.7000"))
    assert control.admit("call-3", _customer(), MOBILE, CARD, T0) is NO_FUNDS
    control.settle(first, 59_000, T0 + 59)  # billed 60 s: 1.30
    control.settle(second, 30_000, T0 + 30)  # 0.70
    assert control.store.balance(7) == 0


def test_a_lapsed_reservation_is_reported_and_ends_the_call() -> None:
    policy = CreditPolicy(setup_allowance_s=10, grace_s=5)
    control = _control("10", policy)
    call = _admitted(control, _customer(), LANDLINE, "call-1")
    # Admitted at T0 for 60 s: the lease ends at T0 + 10 + 60 + 5.
    assert control.housekeeping(T0 + 74) == ()
    (lapsed,) = control.housekeeping(T0 + 75)
    assert (lapsed.customer_id, lapsed.key, lapsed.amount) == (7, "call-1", Decimal("0.6000"))
    assert control.store.available(7) == Decimal(10)
    assert control.answered(call, T0 + 80) == Deadline(0, hang_up=True)


class _Unreachable(MemoryReservations):
    """A store whose network is down while ``down`` is set."""

    down = False

    def reserve(self, *args: object, **kwargs: object) -> bool:  # type: ignore[override]
        if self.down:
            raise StoreUnavailable("timed out")
        return super().reserve(*args, **kwargs)  # type: ignore[arg-type]

    def extend(self, *args: object, **kwargs: object) -> bool:  # type: ignore[override]
        if self.down:
            raise StoreUnavailable("timed out")
        return super().extend(*args, **kwargs)  # type: ignore[arg-type]

    def commit(self, *args: object, **kwargs: object) -> bool:  # type: ignore[override]
        if self.down:
            raise StoreUnavailable("timed out")
        return super().commit(*args, **kwargs)  # type: ignore[arg-type]


def test_an_unreachable_store_fails_closed_and_commits_later() -> None:
    store = _Unreachable()
    store.open(7, Decimal(10), 1)
    control = CreditControl(store)
    call = _admitted(control, _customer(), LANDLINE, "call-1")
    control.answered(call, T0)
    store.down = True
    assert control.admit("call-2", _customer(), LANDLINE, CARD, T0) is CREDIT_UNAVAILABLE
    # An extension that cannot reach the store is retried, like one without funds.
    assert control.extend(call, 50_000, T0 + 50) == Deadline(51_000)
    charge = control.settle(call, 42_000, T0 + 42)
    assert charge.amount == Decimal("0.6000")
    assert control.unstored_commits == 1
    control.housekeeping(T0 + 43)
    assert control.unstored_commits == 1  # still down
    store.down = False
    control.housekeeping(T0 + 44)
    assert control.unstored_commits == 0
    assert store.balance(7) == store.available(7) == Decimal("9.4000")
