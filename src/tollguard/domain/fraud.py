"""The fraud engine: whether a routed call may go ahead, and what happens when not.

:meth:`FraudEngine.admit` runs once per new call, after routing (it needs the sell
price) and before the first gateway is tried. The rules run cheapest first, and those
that change counters last, so that a call refused by policy costs no limit:

1. suspension of the customer or the account (velocity, an operator);
2. source country of the account (GeoIP, ``source_countries``);
3. caller ID: anonymous calls unless allowed, callers outside ``caller_ranges``;
4. quiet hours (``TimeWindow``: local time, across midnight);
5. destination policy: the account's rules, then the customer's, then the shipped
   high-risk defaults (prefix, country, kind of number from libphonenumber);
6. the highest price per minute;
7. limits of the account and the customer: concurrent calls, calls per second, per
   hour, per day, spend per hour and per day;
8. velocity against the account's own last week.

A refused call gets an answer that tells the caller nothing: ``403 Forbidden`` with
Q.850 cause 21 (call rejected), except the capacity limits (concurrent calls, calls per
second), which answer ``503 Service Unavailable`` with cause 34 (no circuit available),
what a trunk expects when it should try elsewhere. The refusal carries the rule and a
detail for the CDR and the operator. Every refusal, alert and suspension is a
:class:`FraudEvent` handed to ``on_event`` and a line on the ``tollguard.security``
logger (at most one per subject and rule a minute, so a blocked flood does not become a
flood of events).

:meth:`FraudEngine.release` gives the call's channels back at its end;
:meth:`FraudEngine.record_spend` adds money to the spend counters (the credit control
calls it with reservations and charges). Gateways have their own limits
(:meth:`FraudEngine.admit_gateway`, :meth:`FraudEngine.release_gateway`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from tollguard.domain.events import Text, log_event, utc_stamp
from tollguard.domain.limits import DAY, HOUR, Counters, TokenBucket, Window, money_units
from tollguard.domain.numbers import Destination, NumberKind, destination
from tollguard.domain.plan import (
    Account,
    Customer,
    DestinationMatch,
    DestinationRule,
    FraudAction,
    FraudPlan,
    FraudPolicy,
    TimeWindow,
    VelocityPolicy,
)

__all__ = [
    "CAPACITY",
    "DEFAULT_DESTINATION_RULES",
    "FORBIDDEN",
    "HIGH_RISK_COUNTRIES",
    "Admitted",
    "CallAttempt",
    "FraudEngine",
    "FraudEvent",
    "FraudEventStore",
    "FraudRule",
    "Refused",
    "SourceCountries",
    "Suspension",
    "SuspensionStore",
    "Suspensions",
    "caller_in_ranges",
    "destination_verdict",
    "in_window",
    "is_anonymous",
    "parse_caller_range",
]

# --- suspensions (a port: live state like bans) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Suspension:
    """``subject`` (``customer:3``, ``account:7``, ``sip-user:bob``) refuses calls until
    ``expires`` (``None``: until an operator releases it)."""

    subject: str
    reason: str
    created: float
    expires: float | None = None

    def active(self, now: float) -> bool:
        return self.expires is None or now < self.expires


class Suspensions(Protocol):
    """Port: suspended customers and accounts, and locked SIP user names."""

    def suspend(self, suspension: Suspension) -> None:
        """Hold ``suspension`` (it replaces one of the same subject)."""
        ...

    def release(self, subject: str) -> Suspension | None: ...

    def get(self, subject: str, now: float) -> Suspension | None:
        """The active suspension of ``subject``, or ``None``."""
        ...

    def all(self) -> list[Suspension]: ...

    def replace(self, suspensions: Iterable[Suspension]) -> None: ...


class SuspensionStore(Protocol):
    """Port: where suspensions and account locks persist and where operators lift them
    (the database; implemented by the web layer)."""

    def version(self) -> int:
        """A number that changes whenever an operator changes a suspension (cheap)."""
        ...

    def load(self) -> list[Suspension]:
        """Every suspension not released by an operator (expired ones may be included)."""
        ...

    def save(self, suspensions: list[Suspension]) -> None: ...


class SourceCountries(Protocol):
    """Port: the country of a source address (GeoIP), for ``source_countries``."""

    def country(self, address: str) -> str | None:
        """ISO 3166-1 alpha-2, upper case; ``None`` when unknown."""
        ...


class FraudEventStore(Protocol):
    """Port: the record of fraud events shown in the admin."""

    def save_events(self, events: list[FraudEvent]) -> None: ...


# --- the shipped high-risk list --------------------------------------------------------------

# Countries whose numbers are resold most for international revenue share fraud (IRSF):
# small, remote or high-termination-rate networks, after the CFCA's and carriers'
# published "top IRSF destinations" lists. Shipped as deny rules an operator can edit.
HIGH_RISK_COUNTRIES: tuple[tuple[str, str], ...] = (
    ("CU", "Cuba"),
    ("LV", "Latvia (premium ranges resold)"),
    ("LT", "Lithuania"),
    ("SO", "Somalia"),
    ("SL", "Sierra Leone"),
    ("GN", "Guinea"),
    ("GW", "Guinea-Bissau"),
    ("LR", "Liberia"),
    ("TD", "Chad"),
    ("ST", "Sao Tome and Principe"),
    ("KM", "Comoros"),
    ("IO", "Diego Garcia"),
    ("SH", "Saint Helena"),
    ("FK", "Falkland Islands"),
    ("PG", "Papua New Guinea"),
    ("NR", "Nauru"),
    ("TV", "Tuvalu"),
    ("TK", "Tokelau"),
    ("CK", "Cook Islands"),
    ("NU", "Niue"),
    ("SB", "Solomon Islands"),
    ("VU", "Vanuatu"),
    ("KI", "Kiribati"),
    ("WF", "Wallis and Futuna"),
    ("MH", "Marshall Islands"),
    ("FM", "Micronesia"),
    ("PW", "Palau"),
    ("MV", "Maldives"),
    ("TN", "Tunisia"),
)

DEFAULT_DESTINATION_RULES: tuple[DestinationRule, ...] = (
    DestinationRule(False, DestinationMatch.KIND, NumberKind.PREMIUM, True, "premium rate abroad"),
    DestinationRule(False, DestinationMatch.KIND, NumberKind.SATELLITE, False, "satellite"),
    DestinationRule(
        False, DestinationMatch.KIND, NumberKind.INTERNATIONAL_NETWORK, False, "882/883 networks"
    ),
    DestinationRule(
        False, DestinationMatch.KIND, NumberKind.SHARED_COST, True, "shared cost abroad"
    ),
    DestinationRule(False, DestinationMatch.KIND, NumberKind.PERSONAL, True, "personal abroad"),
    *(
        DestinationRule(False, DestinationMatch.COUNTRY, code, False, f"high risk: {name}")
        for code, name in HIGH_RISK_COUNTRIES
    ),
)


# --- verdicts ---------------------------------------------------------------------------------


class FraudRule(StrEnum):
    SUSPENDED = "suspended"
    SOURCE_COUNTRY = "source-country"
    ANONYMOUS = "anonymous"
    CALLER_ID = "caller-id"
    QUIET_HOURS = "quiet-hours"
    DESTINATION = "destination-denied"
    PRICE = "price-per-minute"
    CONCURRENT = "concurrent-calls"
    CPS = "calls-per-second"
    CALLS_PER_HOUR = "calls-per-hour"
    CALLS_PER_DAY = "calls-per-day"
    SPEND_PER_HOUR = "spend-per-hour"
    SPEND_PER_DAY = "spend-per-day"
    VELOCITY_DESTINATIONS = "velocity-destinations"
    VELOCITY_COUNTRIES = "velocity-countries"
    VELOCITY_SPEND = "velocity-spend"


_CAPACITY_RULES = frozenset({FraudRule.CONCURRENT, FraudRule.CPS})


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    q850_cause: int


# RFC 3398 §7.2.4.1 maps cause 21 (call rejected) to 403, cause 34 (no circuit) to 503.
FORBIDDEN = Answer(403, "Forbidden", 21)
CAPACITY = Answer(503, "Service Unavailable", 34)


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """What the fraud engine needs to know about a new call.

    ``callee`` is the normalized E.164 number; ``caller`` the caller ID as sent (From
    or P-Asserted-Identity user part); ``price_per_minute`` the customer's sell price.
    """

    customer: Customer
    account: Account | None
    source: str
    callee: str
    caller: str = ""
    anonymous: bool = False
    source_country: str | None = None
    price_per_minute: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Admitted:
    """The call may go ahead; hand this back to :meth:`FraudEngine.release`."""

    channels: tuple[str, ...] = ()
    alerts: tuple[FraudRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Refused:
    rule: FraudRule
    detail: str  # for the CDR and the operator, never for the caller
    answer: Answer


@dataclass(frozen=True, slots=True)
class FraudEvent:
    at: float
    rule: FraudRule
    action: FraudAction
    customer_id: int
    account_id: int | None
    source: str
    callee: str
    detail: str
    suspension: Suspension | None = None


# --- pure rules ------------------------------------------------------------------------------


def is_anonymous(from_user: str, from_host: str, privacy: str = "") -> bool:
    """RFC 3323 §4.1.1: an anonymous From is ``"Anonymous" <sip:anonymous@anonymous.invalid>``;
    ``Privacy: id`` or ``user`` also withholds the caller's identity (RFC 3325 §9.3)."""
    if from_user.lower() == "anonymous" or from_host.lower() == "anonymous.invalid":
        return True
    values = {part.strip().lower() for part in privacy.split(";")}
    return bool(values & {"id", "user"})


def parse_caller_range(text: str) -> tuple[str, str]:
    """``"4420794600"`` (a prefix) or ``"442079460000-442079460099"`` (inclusive range
    of numbers of the same length) as ``(first, last)``. Raises ``ValueError``."""
    value = text.strip().removeprefix("+")
    first, dash, last = value.partition("-")
    first, last = first.strip().removeprefix("+"), last.strip().removeprefix("+")
    if not dash:
        last = first
    if not (first.isascii() and first.isdigit() and last.isascii() and last.isdigit()):
        raise ValueError(f"{text!r} is not a number prefix or a range 'first-last' of numbers")
    if dash and (len(first) != len(last) or first > last):
        raise ValueError(f"{text!r}: a range needs two numbers of one length, lowest first")
    return first, last


def caller_in_ranges(caller: str, ranges: tuple[str, ...]) -> bool:
    """Whether ``caller`` (digits, ``+`` allowed) is in one of ``ranges``; any
    non-digit caller is outside."""
    number = caller.removeprefix("+")
    if not (number.isascii() and number.isdigit()):
        return False
    for text in ranges:
        first, last = _caller_range(text)
        if first == last:
            if number.startswith(first):
                return True
        elif len(number) == len(first) and first <= number <= last:
            return True
    return False


@lru_cache(maxsize=1024)
def _caller_range(text: str) -> tuple[str, str]:
    return parse_caller_range(text)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def in_window(window: TimeWindow, now: float) -> bool:
    """Whether the epoch time ``now`` falls in ``window`` (local time of its zone).

    A window whose end is not after its start runs past midnight: its days are the
    days it starts on, and the early hours of the next day belong to it.
    """
    local = datetime.fromtimestamp(now, _zone(window.timezone))
    clock, weekday = local.time().replace(tzinfo=None), local.weekday()
    if window.start < window.end:
        return weekday in window.days and window.start <= clock < window.end
    if clock >= window.start:
        return weekday in window.days
    return clock < window.end and (weekday - 1) % 7 in window.days


def is_international(callee: str, customer: Customer) -> bool:
    home = customer.number_rules.country_code
    return not home or not callee.startswith(home)


def destination_verdict(
    rules: tuple[DestinationRule, ...], callee: str, place: Destination, international: bool
) -> DestinationRule | None:
    """The rule deciding ``callee`` among ``rules`` (one scope), or ``None``.

    The most specific rule wins: the longest matching prefix, then a country, then a
    kind of number; a deny wins a tie.
    """
    return _compile(rules).decide(callee, place, international)


class _RuleSet:
    """One scope's destination rules, indexed: prefixes longest first, countries and
    kinds by value; deny before allow everywhere."""

    __slots__ = ("countries", "kinds", "prefixes")

    def __init__(self, rules: tuple[DestinationRule, ...]) -> None:
        deny_first = sorted(rules, key=lambda r: r.allow)
        self.prefixes = tuple(
            sorted(
                (r for r in deny_first if r.match is DestinationMatch.PREFIX),
                key=lambda r: -len(r.value),
            )
        )
        self.countries: dict[str, tuple[DestinationRule, ...]] = {}
        self.kinds: dict[str, tuple[DestinationRule, ...]] = {}
        for rule in deny_first:
            if rule.match is DestinationMatch.COUNTRY:
                key = rule.value.upper()
                self.countries[key] = (*self.countries.get(key, ()), rule)
            elif rule.match is DestinationMatch.KIND:
                self.kinds[rule.value] = (*self.kinds.get(rule.value, ()), rule)

    def decide(
        self, callee: str, place: Destination, international: bool
    ) -> DestinationRule | None:
        for rule in self.prefixes:
            if callee.startswith(rule.value) and (international or not rule.international_only):
                return rule
        for table, key in ((self.countries, place.country), (self.kinds, place.kind)):
            for rule in table.get(key, ()):
                if international or not rule.international_only:
                    return rule
        return None


@lru_cache(maxsize=4096)
def _compile(rules: tuple[DestinationRule, ...]) -> _RuleSet:
    return _RuleSet(rules)


def _describe(rule: DestinationRule) -> str:
    scope = " abroad" if rule.international_only else ""
    return f"{rule.match.value} {rule.value}{scope}" + (f" ({rule.note})" if rule.note else "")


# --- the engine ------------------------------------------------------------------------------

WEEK = Window(7 * 86400.0, 7)
# The week before the current hour, in hours: the baseline's denominator.
_WEEK_HOURS_BEFORE = WEEK.length_s / 3600 - 1
_COUNTRY_MEMORY_S = 30 * 86400.0
# One event per subject and rule in each minute.
_EVENT_MINUTE = Window(60.0, 1)


class _Scope:
    """One customer's, account's or gateway's policy with its counter keys and limits
    worked out once (the engine keeps one per subject for the plan's life)."""

    __slots__ = (
        "calls_day",
        "calls_hour",
        "channels",
        "cps",
        "cps_key",
        "limits",
        "name",
        "policy",
        "rules",
        "spend_day",
        "spend_day_cap",
        "spend_hour",
        "spend_hour_cap",
        "spend_week",
    )

    def __init__(self, name: str, policy: FraudPolicy) -> None:
        self.name = name
        self.policy = policy
        self.limits = limits = policy.limits
        self.rules = _RuleSet(policy.destination_rules)
        self.channels = "calls:" + name
        self.cps_key = "cps:" + name
        self.cps = (
            TokenBucket(
                limits.calls_per_second,
                float(limits.cps_burst or max(1.0, limits.calls_per_second)),
            )
            if limits.calls_per_second
            else None
        )
        self.calls_hour = "calls-h:" + name
        self.calls_day = "calls-d:" + name
        self.spend_hour = "spend-h:" + name
        self.spend_day = "spend-d:" + name
        self.spend_week = "spend-w:" + name
        self.spend_hour_cap = _units_or_none(limits.spend_per_hour)
        self.spend_day_cap = _units_or_none(limits.spend_per_day)


def _units_or_none(amount: Decimal | None) -> int | None:
    return None if amount is None else money_units(amount)


class FraudEngine:
    """The fraud rules of one plan over the live-state ports; rebuilt at each plan swap
    (cheap: it only indexes the plan's fraud section)."""

    __slots__ = ("_counters", "_defaults", "_on_event", "_scopes", "_suspensions", "plan")

    def __init__(
        self,
        plan: FraudPlan,
        counters: Counters,
        suspensions: Suspensions,
        *,
        on_event: Callable[[FraudEvent], None] | None = None,
    ) -> None:
        self.plan = plan
        self._counters = counters
        self._suspensions = suspensions
        self._on_event = on_event
        self._defaults = _RuleSet(plan.defaults)
        self._scopes: dict[str, _Scope] = {}

    def _scope(self, name: str, policy: FraudPolicy | None) -> _Scope:
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = _Scope(name, policy or _NONE)
        return scope

    # --- admission --------------------------------------------------------------------------

    def admit(self, call: CallAttempt, now: float) -> Admitted | Refused:
        customer, account = call.customer, call.account
        scopes = [self._scope(f"customer:{customer.id}", self.plan.customers.get(customer.id))]
        if account is not None:
            scopes.append(self._scope(f"account:{account.id}", self.plan.accounts.get(account.id)))
        refusal = self._policy(call, scopes, now)
        if refusal is not None:
            return self._refuse(call, refusal, now)
        channels: list[str] = []
        for scope in scopes:
            refusal = self._limits(scope, channels, now)
            if refusal is not None:
                self._give_back(channels)
                return self._refuse(call, refusal, now)
        alerts: list[FraudRule] = []
        if account is not None:
            velocity = scopes[-1].policy.velocity
            if velocity is not None:
                hit = self._velocity(call, scopes[-1], velocity, now)
                if hit is not None:
                    rule, detail = hit
                    if velocity.action is FraudAction.ALERT:
                        self._emit(call, rule, FraudAction.ALERT, detail, now)
                        alerts.append(rule)
                    else:
                        self._give_back(channels)
                        return self._refuse(
                            call, (rule, detail), now, velocity.action, velocity.suspend_s
                        )
        return Admitted(tuple(channels), tuple(alerts))

    def release(self, admitted: Admitted) -> None:
        """The call has ended: give its channels back."""
        self._give_back(list(admitted.channels))

    def record_spend(
        self, customer_id: int, account_id: int | None, amount: Decimal, now: float
    ) -> None:
        """Count ``amount`` (a reservation or a charge; negative to give one back)."""
        units = money_units(amount)
        if not units:
            return
        scopes = [self._scope(f"customer:{customer_id}", self.plan.customers.get(customer_id))]
        if account_id is not None:
            scopes.append(self._scope(f"account:{account_id}", self.plan.accounts.get(account_id)))
        add = self._counters.add
        for scope in scopes:
            add(scope.spend_hour, units, HOUR, now)
            add(scope.spend_day, units, DAY, now)
            add(scope.spend_week, units, WEEK, now)

    def admit_gateway(self, gateway_id: int, now: float) -> bool:
        """Whether a call may be sent to the gateway now; on ``True`` call
        :meth:`release_gateway` when that leg ends."""
        limits = self.plan.gateways.get(gateway_id)
        if limits is None:
            return True
        channels: list[str] = []
        scope = self._scopes.get(f"gateway:{gateway_id}")
        if scope is None:
            scope = self._scope(f"gateway:{gateway_id}", FraudPolicy(limits=limits))
        refusal = self._limits(scope, channels, now)
        if refusal is not None:
            self._give_back(channels)
            return False
        return True

    def release_gateway(self, gateway_id: int) -> None:
        limits = self.plan.gateways.get(gateway_id)
        if limits is not None and limits.max_concurrent:
            self._counters.release(f"calls:gateway:{gateway_id}")

    # --- rules ------------------------------------------------------------------------------

    def _policy(
        self, call: CallAttempt, scopes: list[_Scope], now: float
    ) -> tuple[FraudRule, str] | None:
        for scope in scopes:
            suspension = self._suspensions.get(scope.name, now)
            if suspension is not None:
                return FraudRule.SUSPENDED, f"{scope.name} suspended: {suspension.reason}"
        international = is_international(call.callee, call.customer)
        for scope in scopes:
            policy = scope.policy
            if policy.source_countries and call.source_country not in policy.source_countries:
                return (
                    FraudRule.SOURCE_COUNTRY,
                    f"{scope.name} may not call from {call.source_country or 'an unknown country'}",
                )
            if call.anonymous:
                if not policy.allow_anonymous and scope is scopes[-1]:
                    return FraudRule.ANONYMOUS, f"{scope.name} may not call anonymously"
            elif policy.caller_ranges and not caller_in_ranges(call.caller, policy.caller_ranges):
                return FraudRule.CALLER_ID, f"caller {call.caller!r} outside {scope.name}'s ranges"
            for window in policy.quiet_hours:
                if (international or not window.international_only) and in_window(window, now):
                    return (
                        FraudRule.QUIET_HOURS,
                        f"{scope.name}: no {'international ' if window.international_only else ''}"
                        f"calls {window.start:%H:%M}-{window.end:%H:%M} {window.timezone}",
                    )
        place = destination(call.callee)
        for rules in (*(s.rules for s in reversed(scopes)), self._defaults):
            rule = rules.decide(call.callee, place, international)
            if rule is not None:
                if rule.allow:
                    break
                return FraudRule.DESTINATION, f"{call.callee} denied: {_describe(rule)}"
        if call.price_per_minute is not None:
            for scope in scopes:
                ceiling = scope.policy.limits.max_price_per_minute
                if ceiling is not None and call.price_per_minute > ceiling:
                    return (
                        FraudRule.PRICE,
                        f"{call.price_per_minute}/min above {scope.name}'s {ceiling}/min",
                    )
        return None

    def _limits(
        self, scope: _Scope, channels: list[str], now: float
    ) -> tuple[FraudRule, str] | None:
        limits, counters, name = scope.limits, self._counters, scope.name
        if limits.max_concurrent:
            if not counters.acquire(scope.channels, limits.max_concurrent):
                return FraudRule.CONCURRENT, f"{name} at {limits.max_concurrent} calls"
            channels.append(scope.channels)
        if scope.cps is not None and not counters.take(scope.cps_key, scope.cps, now):
            return FraudRule.CPS, f"{name} over {limits.calls_per_second:g} calls/s"
        if (
            limits.calls_per_hour
            and counters.add(scope.calls_hour, 1, HOUR, now) > limits.calls_per_hour
        ):
            counters.add(scope.calls_hour, -1, HOUR, now)
            return FraudRule.CALLS_PER_HOUR, f"{name} over {limits.calls_per_hour} calls/h"
        if (
            limits.calls_per_day
            and counters.add(scope.calls_day, 1, DAY, now) > limits.calls_per_day
        ):
            counters.add(scope.calls_day, -1, DAY, now)
            return FraudRule.CALLS_PER_DAY, f"{name} over {limits.calls_per_day} calls/day"
        if (
            scope.spend_hour_cap is not None
            and counters.total(scope.spend_hour, HOUR, now) >= scope.spend_hour_cap
        ):
            return FraudRule.SPEND_PER_HOUR, f"{name} spent {limits.spend_per_hour} in an hour"
        if (
            scope.spend_day_cap is not None
            and counters.total(scope.spend_day, DAY, now) >= scope.spend_day_cap
        ):
            return FraudRule.SPEND_PER_DAY, f"{name} spent {limits.spend_per_day} in a day"
        return None

    def _velocity(
        self, call: CallAttempt, scope: _Scope, policy: VelocityPolicy, now: float
    ) -> tuple[FraudRule, str] | None:
        counters, subject = self._counters, scope.name
        if counters.remember("vel-dst:" + subject, call.callee, HOUR.length_s, now):
            counters.add("vel-dst-w:" + subject, 1, WEEK, now)
        distinct = counters.members("vel-dst:" + subject, now)
        if distinct >= policy.destinations_min:
            week = counters.total("vel-dst-w:" + subject, WEEK, now)
            baseline = max(week - distinct, 0) / _WEEK_HOURS_BEFORE
            if distinct > policy.destinations_factor * baseline:
                return (
                    FraudRule.VELOCITY_DESTINATIONS,
                    f"{distinct} destinations in an hour against {baseline:.1f} an hour last week",
                )
        country = destination(call.callee).country or "?"
        if counters.remember("vel-cc:" + subject, country, _COUNTRY_MEMORY_S, now):
            new = counters.add("vel-cc-new:" + subject, 1, DAY, now)
            if new > policy.new_countries:
                return FraudRule.VELOCITY_COUNTRIES, f"{new} new countries in a day ({country})"
        spent = counters.total(scope.spend_hour, HOUR, now)
        if spent < money_units(policy.spend_min):
            return None
        spent_week = counters.total(scope.spend_week, WEEK, now)
        hourly = max(spent_week - spent, 0) / _WEEK_HOURS_BEFORE
        if spent > policy.spend_factor * hourly:
            return (
                FraudRule.VELOCITY_SPEND,
                f"spend {spent / 1e6:.2f} in an hour against {hourly / 1e6:.2f} an hour last week",
            )
        return None

    # --- outcomes ---------------------------------------------------------------------------

    def _refuse(
        self,
        call: CallAttempt,
        refusal: tuple[FraudRule, str],
        now: float,
        action: FraudAction = FraudAction.BLOCK,
        suspend_s: int = 0,
    ) -> Refused:
        rule, detail = refusal
        self._emit(call, rule, action, detail, now, suspend_s=suspend_s)
        return Refused(rule, detail, CAPACITY if rule in _CAPACITY_RULES else FORBIDDEN)

    def _emit(
        self,
        call: CallAttempt,
        rule: FraudRule,
        action: FraudAction,
        detail: str,
        now: float,
        *,
        suspend_s: int = 0,
    ) -> None:
        suspension = None
        if action in (FraudAction.SUSPEND_ACCOUNT, FraudAction.SUSPEND_CUSTOMER):
            if action is FraudAction.SUSPEND_ACCOUNT and call.account is not None:
                subject = f"account:{call.account.id}"
            else:
                subject = f"customer:{call.customer.id}"
            suspension = Suspension(
                subject, f"{rule.value}: {detail}", now, now + suspend_s if suspend_s else None
            )
            self._suspensions.suspend(suspension)
            log_event(
                "fraud suspension",
                call.source,
                ("subject", subject),
                ("until", utc_stamp(suspension.expires)),
                ("reason", Text(rule.value)),
            )
        elif (
            self._counters.add(
                f"fraud-event:{call.customer.id}:"
                f"{call.account.id if call.account else '-'}:{rule.value}",
                1,
                _EVENT_MINUTE,
                now,
            )
            > 1
        ):
            return
        account_id = call.account.id if call.account is not None else None
        log_event(
            "fraud alert" if action is FraudAction.ALERT else "fraud block",
            call.source,
            ("customer", call.customer.id),
            ("account", account_id if account_id is not None else "-"),
            ("rule", rule.value),
            ("callee", Text(call.callee)),
            level=logging.WARNING,
        )
        if self._on_event is not None:
            self._on_event(
                FraudEvent(
                    now,
                    rule,
                    action,
                    call.customer.id,
                    account_id,
                    call.source,
                    call.callee,
                    detail,
                    suspension,
                )
            )

    def _give_back(self, channels: list[str]) -> None:
        for key in channels:
            self._counters.release(key)


_NONE = FraudPolicy()
