"""The fraud engine's rules, with tables, hypothesis and a fake clock (plain numbers)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tollguard.domain.fraud import (
    CAPACITY,
    DEFAULT_DESTINATION_RULES,
    FORBIDDEN,
    Admitted,
    CallAttempt,
    FraudEngine,
    FraudEvent,
    FraudRule,
    Refused,
    caller_in_ranges,
    destination_verdict,
    in_window,
    is_anonymous,
    parse_caller_range,
)
from tollguard.domain.numbers import Destination, NumberKind, destination
from tollguard.domain.plan import (
    Account,
    CallLimits,
    Customer,
    DestinationMatch,
    DestinationRule,
    FraudAction,
    FraudPlan,
    FraudPolicy,
    NumberRules,
    TimeWindow,
    VelocityPolicy,
)
from tollguard.state.memory import MemoryCounters, MemorySuspensions

UK_CUSTOMER = Customer(id=3, name="Northwind", number_rules=NumberRules(country_code="44"))
ACCOUNT = Account(id=7, customer_id=3, username="bob", ha1_md5="", ha1_sha256="")
# 2027-01-15 08:00:00 UTC, a Friday.
T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
UK_FIXED = "442079460000"
FR_FIXED = "33142685300"
UK_PREMIUM = "449098790000"
US_PREMIUM = "19005550100"
LV_PREMIUM = "37190012345"
CUBA = "5321234567"
IRIDIUM = "881612345678"
INMARSAT = "870773123456"


def rule(allow: bool, match: str, value: str, intl: bool = False) -> DestinationRule:
    return DestinationRule(allow, DestinationMatch(match), value, intl)


class Engine:
    def __init__(
        self,
        customer: FraudPolicy | None = None,
        account: FraudPolicy | None = None,
        defaults: tuple[DestinationRule, ...] = DEFAULT_DESTINATION_RULES,
        gateways: dict[int, CallLimits] | None = None,
    ) -> None:
        self.counters = MemoryCounters()
        self.suspensions = MemorySuspensions()
        self.events: list[FraudEvent] = []
        self.engine = FraudEngine(
            FraudPlan(
                defaults=defaults,
                customers={3: customer} if customer else {},
                accounts={7: account} if account else {},
                gateways=gateways or {},
            ),
            self.counters,
            self.suspensions,
            on_event=self.events.append,
        )

    def admit(self, now: float = T0, **kwargs: object) -> Admitted | Refused:
        values: dict[str, object] = {
            "customer": UK_CUSTOMER,
            "account": ACCOUNT,
            "source": "198.51.100.4",
            "callee": UK_FIXED,
            "caller": "442079460001",
        }
        values.update(kwargs)
        return self.engine.admit(CallAttempt(**values), now)  # type: ignore[arg-type]


def refused(result: Admitted | Refused) -> FraudRule | None:
    return result.rule if isinstance(result, Refused) else None


# --- destination classification and policy --------------------------------------------------


@pytest.mark.parametrize(
    ("number", "country", "kind"),
    [
        (UK_FIXED, "GB", NumberKind.FIXED),
        (LV_PREMIUM, "LV", NumberKind.PREMIUM),
        (US_PREMIUM, "US", NumberKind.PREMIUM),
        (CUBA, "CU", NumberKind.FIXED),
        (IRIDIUM, "001", NumberKind.SATELLITE),
        (INMARSAT, "001", NumberKind.SATELLITE),
        ("8821612345678", "001", NumberKind.SATELLITE),  # Thuraya
        ("88213200000", "001", NumberKind.INTERNATIONAL_NETWORK),
        ("4915201234567", "DE", NumberKind.MOBILE),
        ("447700900123", "GB", NumberKind.UNKNOWN),  # Ofcom's drama range: not a real number
    ],
)
def test_destination_from_libphonenumber_metadata(number: str, country: str, kind: str) -> None:
    assert destination(number) == Destination(country, NumberKind(kind))


@pytest.mark.parametrize(
    ("rules", "callee", "international", "expected"),
    [
        ([rule(False, "prefix", "44")], UK_FIXED, False, False),
        ([rule(False, "prefix", "44"), rule(True, "prefix", "4420")], UK_FIXED, False, True),
        ([rule(True, "country", "GB"), rule(False, "prefix", "4420")], UK_FIXED, False, False),
        ([rule(False, "country", "GB"), rule(True, "kind", "fixed")], UK_FIXED, False, False),
        ([rule(True, "prefix", "44"), rule(False, "prefix", "44")], UK_FIXED, False, False),
        ([rule(False, "kind", "premium", intl=True)], UK_PREMIUM, False, None),
        ([rule(False, "kind", "premium", intl=True)], US_PREMIUM, True, False),
        ([rule(False, "country", "cu")], CUBA, True, False),
        ([], UK_FIXED, False, None),
    ],
    ids=[
        "prefix-deny",
        "longer-prefix-allow-wins",
        "prefix-beats-country",
        "country-beats-kind",
        "deny-wins-a-tie",
        "international-only-rule-skips-home",
        "international-only-rule-abroad",
        "country-code-any-case",
        "no-rule",
    ],
)
def test_destination_verdict(
    rules: list[DestinationRule], callee: str, international: bool, expected: bool | None
) -> None:
    found = destination_verdict(tuple(rules), callee, destination(callee), international)
    assert (None if found is None else found.allow) == expected


@pytest.mark.parametrize(
    ("callee", "denied"),
    [
        (UK_FIXED, False),
        (FR_FIXED, False),
        (UK_PREMIUM, False),  # premium at home is the customer's own business
        (US_PREMIUM, True),
        (LV_PREMIUM, True),
        (CUBA, True),
        (IRIDIUM, True),
        (INMARSAT, True),
        ("8821612345678", True),
    ],
)
def test_new_customers_start_with_the_high_risk_defaults(callee: str, denied: bool) -> None:
    result = Engine().admit(callee=callee)
    assert (refused(result) is FraudRule.DESTINATION) is denied


def test_customer_and_account_rules_override_the_defaults() -> None:
    cuba_ok = FraudPolicy(destination_rules=(rule(True, "country", "CU"),))
    assert refused(Engine(customer=cuba_ok).admit(callee=CUBA)) is None
    # The account's own rules come first.
    no_cuba = FraudPolicy(destination_rules=(rule(False, "prefix", "53"),))
    assert refused(Engine(customer=cuba_ok, account=no_cuba).admit(callee=CUBA)) is (
        FraudRule.DESTINATION
    )
    only_uk = FraudPolicy(destination_rules=(rule(False, "prefix", ""), rule(True, "prefix", "44")))
    engine = Engine(account=only_uk)
    assert refused(engine.admit(callee=UK_FIXED)) is None
    assert refused(engine.admit(callee=FR_FIXED)) is FraudRule.DESTINATION


def test_a_refusal_says_nothing_to_the_caller_and_everything_to_the_operator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine()
    caplog.set_level(logging.INFO, logger="tollguard.security")
    result = engine.admit(callee=IRIDIUM)
    assert isinstance(result, Refused)
    assert result.answer == FORBIDDEN
    assert (result.answer.status, result.answer.reason, result.answer.q850_cause) == (
        403,
        "Forbidden",
        21,
    )
    assert "satellite" in result.detail and IRIDIUM in result.detail
    [event] = engine.events
    assert (event.rule, event.action, event.account_id, event.callee) == (
        FraudRule.DESTINATION,
        FraudAction.BLOCK,
        7,
        IRIDIUM,
    )
    assert (
        'fraud block: ip=198.51.100.4 customer=3 account=7 rule=destination-denied callee="'
        + IRIDIUM
        + '"'
    ) in caplog.messages


def test_events_are_coalesced_per_subject_and_rule() -> None:
    engine = Engine()
    for i in range(100):
        engine.admit(T0 + i * 0.1, callee=CUBA)
    assert len(engine.events) == 1
    engine.admit(T0 + 60, callee=CUBA)  # the next minute
    assert len(engine.events) == 2
    engine.admit(T0 + 61, anonymous=True)  # another rule
    assert len(engine.events) == 3


# --- caller ID ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "host", "privacy", "anonymous"),
    [
        ("anonymous", "anonymous.invalid", "", True),
        ("Anonymous", "example.com", "", True),
        ("442079460001", "anonymous.invalid", "", True),
        ("442079460001", "example.com", "id", True),
        ("442079460001", "example.com", "header; user", True),
        ("442079460001", "example.com", "none", False),
        ("442079460001", "example.com", "", False),
    ],
)
def test_is_anonymous(user: str, host: str, privacy: str, anonymous: bool) -> None:
    assert is_anonymous(user, host, privacy) is anonymous


@pytest.mark.parametrize(
    ("caller", "ranges", "inside"),
    [
        ("442079460001", ("44207946",), True),
        ("+442079460001", ("44207946",), True),
        ("442079470001", ("44207946",), False),
        ("442079460050", ("442079460000-442079460099",), True),
        ("442079460100", ("442079460000-442079460099",), False),
        ("4420794600500", ("442079460000-442079460099",), False),  # other length
        ("sipp", ("44",), False),
        ("", ("44",), False),
        ("442079460001", ("33", "+44207"), True),
    ],
)
def test_caller_in_ranges(caller: str, ranges: tuple[str, ...], inside: bool) -> None:
    assert caller_in_ranges(caller, ranges) is inside


@pytest.mark.parametrize("text", ["44a", "", "4420-442", "442079460099-442079460000", "+-1"])
def test_parse_caller_range_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"range|prefix"):
        parse_caller_range(text)


@given(st.integers(10**11, 10**12 - 1), st.integers(0, 10**6))
def test_caller_range_matches_exactly_its_numbers(first: int, span: int) -> None:
    last = min(first + span, 10**12 - 1)
    ranges = (f"{first}-{last}",)
    assert caller_in_ranges(str(first), ranges)
    assert caller_in_ranges(str(last), ranges)
    assert not caller_in_ranges(str(first - 1), ranges)
    assert not caller_in_ranges(str(last + 1), ranges)


def test_caller_id_policy() -> None:
    engine = Engine(account=FraudPolicy(caller_ranges=("44207946",)))
    assert refused(engine.admit()) is None
    assert refused(engine.admit(caller="15551234567")) is FraudRule.CALLER_ID
    assert refused(engine.admit(caller="anonymous", anonymous=True)) is FraudRule.ANONYMOUS
    allowed = Engine(account=FraudPolicy(allow_anonymous=True))
    assert refused(allowed.admit(caller="anonymous", anonymous=True)) is None


def test_anonymous_refused_by_default() -> None:
    assert refused(Engine().admit(caller="", anonymous=True)) is FraudRule.ANONYMOUS


# --- time windows ---------------------------------------------------------------------------

NIGHTS = frozenset(range(7))


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        (TimeWindow(NIGHTS, time(22), time(6)), "2027-01-15T23:00:00+00:00", True),
        (TimeWindow(NIGHTS, time(22), time(6)), "2027-01-15T05:59:59+00:00", True),
        (TimeWindow(NIGHTS, time(22), time(6)), "2027-01-15T06:00:00+00:00", False),
        (TimeWindow(NIGHTS, time(22), time(6)), "2027-01-15T21:59:59+00:00", False),
        # Friday only: the night from Friday to Saturday, not from Thursday to Friday.
        (TimeWindow(frozenset({4}), time(22), time(6)), "2027-01-16T03:00:00+00:00", True),
        (TimeWindow(frozenset({4}), time(22), time(6)), "2027-01-15T03:00:00+00:00", False),
        (TimeWindow(frozenset({4}), time(9), time(17)), "2027-01-15T12:00:00+00:00", True),
        (TimeWindow(frozenset({4}), time(9), time(17)), "2027-01-16T12:00:00+00:00", False),
        # Local time: 23:00 in New York is 04:00 UTC the next day.
        (
            TimeWindow(NIGHTS, time(22), time(6), "America/New_York"),
            "2027-01-16T04:00:00+00:00",
            True,
        ),
        (
            TimeWindow(NIGHTS, time(22), time(6), "America/New_York"),
            "2027-01-15T23:00:00+00:00",
            False,
        ),
        # Summer time: 22:30 in Berlin on 1 July is 20:30 UTC.
        (
            TimeWindow(NIGHTS, time(22), time(6), "Europe/Berlin"),
            "2027-07-01T20:30:00+00:00",
            True,
        ),
        (
            TimeWindow(NIGHTS, time(22), time(6), "Europe/Berlin"),
            "2027-01-01T20:30:00+00:00",
            False,
        ),
    ],
)
def test_in_window(window: TimeWindow, moment: str, inside: bool) -> None:
    assert in_window(window, at(moment)) is inside


@given(st.integers(0, 23), st.integers(0, 23), st.floats(0, 7 * 86400))
def test_a_window_and_its_complement_cover_every_moment(
    start: int, end: int, offset: float
) -> None:
    assume(start != end)
    window = TimeWindow(NIGHTS, time(start), time(end))
    rest = TimeWindow(NIGHTS, time(end), time(start))
    now = T0 + offset
    assert in_window(window, now) != in_window(rest, now)


def test_quiet_hours_refuse_international_calls_only() -> None:
    engine = Engine(account=FraudPolicy(quiet_hours=(TimeWindow(NIGHTS, time(22), time(6)),)))
    night = at("2027-01-15T23:30:00+00:00")
    assert refused(engine.admit(night, callee=FR_FIXED)) is FraudRule.QUIET_HOURS
    assert refused(engine.admit(night, callee=UK_FIXED)) is None
    assert refused(engine.admit(T0, callee=FR_FIXED)) is None


# --- source country -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "ok"), [("GB", True), ("IE", True), ("RU", False), (None, False)]
)
def test_source_country(country: str | None, ok: bool) -> None:
    engine = Engine(account=FraudPolicy(source_countries=("GB", "IE")))
    assert (refused(engine.admit(source_country=country)) is None) is ok


# --- limits ------------------------------------------------------------------------------


def test_concurrent_calls_answer_503_and_come_back_at_release() -> None:
    engine = Engine(customer=FraudPolicy(limits=CallLimits(max_concurrent=2)))
    first, second = engine.admit(), engine.admit()
    assert isinstance(first, Admitted) and isinstance(second, Admitted)
    third = engine.admit()
    assert isinstance(third, Refused)
    assert third.rule is FraudRule.CONCURRENT and third.answer == CAPACITY
    assert third.answer.status == 503 and third.answer.q850_cause == 34
    engine.engine.release(first)
    assert isinstance(engine.admit(), Admitted)


def test_account_limit_refusal_gives_the_customer_channel_back() -> None:
    engine = Engine(
        customer=FraudPolicy(limits=CallLimits(max_concurrent=10)),
        account=FraudPolicy(limits=CallLimits(max_concurrent=1)),
    )
    assert isinstance(engine.admit(), Admitted)
    assert refused(engine.admit()) is FraudRule.CONCURRENT
    assert engine.counters.in_use("calls:customer:3") == 1


def test_a_refused_call_costs_no_limit() -> None:
    engine = Engine(customer=FraudPolicy(limits=CallLimits(max_concurrent=1, calls_per_hour=1)))
    assert refused(engine.admit(callee=CUBA)) is FraudRule.DESTINATION
    assert engine.counters.in_use("calls:customer:3") == 0
    assert isinstance(engine.admit(), Admitted)


def test_calls_per_second_with_a_fake_clock() -> None:
    engine = Engine(account=FraudPolicy(limits=CallLimits(calls_per_second=2, cps_burst=2)))
    results = [refused(engine.admit(T0)) for _ in range(3)]
    assert results == [None, None, FraudRule.CPS]
    assert refused(engine.admit(T0 + 0.5)) is None


@pytest.mark.parametrize(
    ("limits", "rule", "window_s"),
    [
        (CallLimits(calls_per_hour=3), FraudRule.CALLS_PER_HOUR, 3600),
        (CallLimits(calls_per_day=3), FraudRule.CALLS_PER_DAY, 86400),
    ],
)
def test_calls_per_hour_and_day(limits: CallLimits, rule: FraudRule, window_s: int) -> None:
    engine = Engine(account=FraudPolicy(limits=limits))
    assert [refused(engine.admit(T0 + i)) for i in range(4)] == [None, None, None, rule]
    # The refused call was not counted, and the window moves on.
    assert refused(engine.admit(T0 + window_s + 10)) is None


def test_spend_limits_read_what_the_credit_control_feeds() -> None:
    engine = Engine(
        customer=FraudPolicy(
            limits=CallLimits(spend_per_hour=Decimal("10"), spend_per_day=Decimal("15"))
        )
    )
    engine.engine.record_spend(3, 7, Decimal("9.99"), T0)
    assert refused(engine.admit(T0)) is None
    engine.engine.record_spend(3, 7, Decimal("0.01"), T0)
    assert refused(engine.admit(T0)) is FraudRule.SPEND_PER_HOUR
    assert refused(engine.admit(T0 + 3600)) is None  # an hour later
    engine.engine.record_spend(3, None, Decimal("5"), T0 + 3600)
    assert refused(engine.admit(T0 + 3600)) is FraudRule.SPEND_PER_DAY
    # A released reservation is given back.
    engine.engine.record_spend(3, None, Decimal("-1"), T0 + 3600)
    assert refused(engine.admit(T0 + 3600)) is None


def test_highest_price_per_minute() -> None:
    engine = Engine(account=FraudPolicy(limits=CallLimits(max_price_per_minute=Decimal("0.50"))))
    assert refused(engine.admit(price_per_minute=Decimal("0.50"))) is None
    assert refused(engine.admit(price_per_minute=Decimal("0.51"))) is FraudRule.PRICE


def test_gateway_limits() -> None:
    engine = Engine(gateways={9: CallLimits(max_concurrent=1, calls_per_hour=5)})
    assert engine.engine.admit_gateway(9, T0)
    assert not engine.engine.admit_gateway(9, T0)
    engine.engine.release_gateway(9)
    assert engine.engine.admit_gateway(9, T0)
    assert engine.engine.admit_gateway(10, T0)  # no limits


# --- suspensions and velocity ---------------------------------------------------------------


def test_suspension_refuses_until_it_expires() -> None:
    from tollguard.domain.fraud import Suspension

    engine = Engine()
    engine.suspensions.suspend(Suspension("customer:3", "operator", T0, T0 + 60))
    result = engine.admit(T0 + 1)
    assert isinstance(result, Refused) and result.rule is FraudRule.SUSPENDED
    assert result.answer == FORBIDDEN
    assert refused(engine.admit(T0 + 61)) is None


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"4420794{i:05d}" for i in range(start, start + count)]


def test_velocity_spike_in_destinations_suspends_the_account() -> None:
    velocity = VelocityPolicy(
        destinations_factor=5,
        destinations_min=10,
        action=FraudAction.SUSPEND_ACCOUNT,
        suspend_s=3600,
    )
    engine = Engine(account=FraudPolicy(velocity=velocity))
    # A quiet week: 2 destinations an hour, every hour.
    now = T0 - 7 * 86400 + 1
    for hour in range(7 * 24 - 1):
        for number in numbers(2, start=hour * 2 % 90000):
            assert refused(engine.admit(now + hour * 3600, callee=number)) is None
    # Then 10 new destinations within an hour: below 5 times the baseline, and at the minimum.
    results = [refused(engine.admit(T0 + i, callee=n)) for i, n in enumerate(numbers(10, 50000))]
    assert results[:-1] == [None] * 9
    assert results[-1] is FraudRule.VELOCITY_DESTINATIONS
    # The account is suspended for an hour; the customer's other accounts are not.
    assert refused(engine.admit(T0 + 100)) is FraudRule.SUSPENDED
    assert refused(engine.admit(T0 + 100, account=None)) is None
    assert refused(engine.admit(T0 + 3700, callee=UK_FIXED)) is not FraudRule.SUSPENDED
    [event] = [e for e in engine.events if e.suspension is not None]
    assert event.suspension is not None and event.suspension.subject == "account:7"


def test_velocity_new_countries_alert_only() -> None:
    velocity = VelocityPolicy(new_countries=2, action=FraudAction.ALERT, destinations_min=1000)
    engine = Engine(
        account=FraudPolicy(velocity=velocity, destination_rules=(rule(True, "prefix", ""),))
    )
    calls = [UK_FIXED, FR_FIXED, "4915201234567"]
    results = [engine.admit(T0 + i, callee=n) for i, n in enumerate(calls)]
    assert all(isinstance(r, Admitted) for r in results)
    last = results[-1]
    assert isinstance(last, Admitted) and last.alerts == (FraudRule.VELOCITY_COUNTRIES,)
    assert [e.action for e in engine.events] == [FraudAction.ALERT]


def test_velocity_spend_blocks() -> None:
    velocity = VelocityPolicy(spend_factor=3, spend_min=Decimal("5"), destinations_min=1000)
    engine = Engine(account=FraudPolicy(velocity=velocity))
    for day in range(1, 7):
        engine.engine.record_spend(3, 7, Decimal("24"), T0 - day * 86400)  # 1/hour on average
    engine.engine.record_spend(3, 7, Decimal("4"), T0)
    assert refused(engine.admit(T0)) is None
    engine.engine.record_spend(3, 7, Decimal("2"), T0)
    assert refused(engine.admit(T0)) is FraudRule.VELOCITY_SPEND


def test_the_routing_plan_carries_the_fraud_rules_and_ip_lists() -> None:
    import ipaddress

    from tollguard.domain.plan import AclEntry, PlanData
    from tollguard.domain.routing import build_plan

    fraud = FraudPlan(defaults=DEFAULT_DESTINATION_RULES)
    acl = (AclEntry(1, 3, ipaddress.ip_network("198.51.100.0/24")),)
    plan = build_plan(PlanData(version=1, customers=(UK_CUSTOMER,), acl=acl, fraud=fraud))
    assert plan.fraud is fraud
    assert plan.acl == acl
    assert build_plan(PlanData(version=2)).fraud == FraudPlan()
