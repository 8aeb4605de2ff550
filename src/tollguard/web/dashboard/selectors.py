"""What the dashboard shows, computed by the database with ORM aggregates.

Definitions match the statistics API: ASR is answered calls over all calls, in percent;
ACD is the mean talk time of answered calls, in seconds; margin is sell minus cost as
rated. Calls per second over a bucket is the bucket's calls divided by its length, so it
is an average, not a peak; a bucket without calls has no ASR (not 0 %).

Money is summed per currency and never across currencies: sell amounts by the sell
card's currency, costs by the cost card's, margins by the sell currency. A CDR whose two
sides are in different currencies has no margin (routing refuses such a route now; only
CDRs written before that have one) and is counted apart.

Live figures come from the document the running switch rewrites every second
(``tollguard.switch.status``): calls in progress and the current call rate. When it is
missing or stale (the switch is stopped), the calls whose CDR was written in the last
minute stand in, and the data says so.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from django.apps import apps
from django.conf import settings
from django.db.models import Count, DateTimeField, Max, Q, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from tollguard.web.carriers.models import Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.cdr.selectors import ratio
from tollguard.web.customers.models import Customer

__all__ = [
    "PERIODS",
    "Breakdown",
    "GroupBy",
    "Money",
    "Period",
    "SecurityEvent",
    "Totals",
    "breakdown",
    "calls_ended_between",
    "dashboard_data",
    "fraud_counts",
    "money_per_currency",
    "security_data",
    "security_events",
    "series",
    "totals",
]

GroupBy = Literal["customer", "provider", "destination"]
Unit = Literal["minute", "hour", "day"]


@dataclass(frozen=True, slots=True)
class Period:
    """A choice of the dashboard: how far back, and the width of one chart bucket."""

    length: timedelta
    unit: Unit

    @property
    def bucket(self) -> timedelta:
        return {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}.get(
            self.unit, timedelta(days=1)
        )


PERIODS: dict[str, Period] = {
    "1h": Period(timedelta(hours=1), "minute"),
    "24h": Period(timedelta(days=1), "hour"),
    "7d": Period(timedelta(days=7), "hour"),
    "30d": Period(timedelta(days=30), "day"),
}

_GROUP_FIELD: dict[str, str] = {
    "customer": "customer_id",
    "provider": "provider_id",
    "destination": "destination",
}
_ANSWERED = Q(answered_at__isnull=False)
DEFAULT_LONGEST_CALL_S = 7200
# RFC 3261 §16.6 timer C: a proxy gives up on an unanswered INVITE after 3 minutes at
# least; an hour leaves room for any setup the switch allows.
SETUP_ALLOWANCE = timedelta(hours=1)
_ZERO = Decimal(0)
_MONEY = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Money:
    """The amounts of one currency."""

    currency: str
    sell: Decimal = _ZERO
    cost: Decimal = _ZERO
    margin: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class Totals:
    calls: int
    answered: int
    asr: Decimal
    acd_s: Decimal
    money: tuple[Money, ...]  # one per currency, in currency order
    without_margin: int  # CDRs whose sell and cost are in different currencies


@dataclass(frozen=True, slots=True)
class Breakdown:
    key: str
    name: str
    calls: int
    answered: int
    asr: Decimal
    acd_s: Decimal
    margins: tuple[tuple[str, Decimal], ...]  # (currency, margin), in currency order


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    calls: int
    answered: int
    cps: Decimal
    asr: Decimal | None  # None for a bucket without calls


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    at: datetime
    kind: str
    address: str
    username: str
    detail: str = ""


def _asr(answered: int, calls: int) -> Decimal:
    return ratio(answered * 100, calls, "0.01")


def _acd(talk_ms: int | None, answered: int) -> Decimal:
    return ratio((talk_ms or 0) / Decimal(1000), answered, "0.1")


def cdrs_between(since: datetime, until: datetime) -> QuerySet[Cdr]:
    """CDRs of calls started in ``[since, until)``, in no particular order."""
    return Cdr.objects.filter(started_at__gte=since, started_at__lt=until).order_by()


def totals(cdrs: QuerySet[Cdr]) -> Totals:
    row = cdrs.aggregate(
        calls=Count("id"),
        answered=Count("id", filter=_ANSWERED),
        talk_ms=Sum("duration_ms", filter=_ANSWERED),
    )
    money, without_margin = money_per_currency(cdrs)
    return Totals(
        calls=row["calls"],
        answered=row["answered"],
        asr=_asr(row["answered"], row["calls"]),
        acd_s=_acd(row["talk_ms"], row["answered"]),
        money=money,
        without_margin=without_margin,
    )


def money_per_currency(cdrs: QuerySet[Cdr]) -> tuple[tuple[Money, ...], int]:
    """Sell, cost and margin of ``cdrs`` per currency (one query), and how many CDRs
    have no margin because their two sides are in different currencies."""
    sell: dict[str, Decimal] = {}
    cost: dict[str, Decimal] = {}
    margin: dict[str, Decimal] = {}
    without_margin = 0
    rows = (
        cdrs.values("sell_currency", "cost_currency")
        .annotate(
            sell_total=Sum("sell_amount"),
            cost_total=Sum("cost_amount"),
            margin_total=Sum("margin"),
            across=Count("id", filter=Q(margin__isnull=True)),
        )
        .order_by()
    )
    for row in rows:
        sold_in, paid_in = row["sell_currency"], row["cost_currency"]
        sell[sold_in] = sell.get(sold_in, _ZERO) + (row["sell_total"] or _ZERO)
        if paid_in:  # "" when no provider was tried: no cost at all
            cost[paid_in] = cost.get(paid_in, _ZERO) + (row["cost_total"] or _ZERO)
        if row["margin_total"] is not None:
            margin[sold_in] = margin.get(sold_in, _ZERO) + row["margin_total"]
        without_margin += row["across"]
    currencies = sorted(set(sell) | set(cost) | set(margin))
    money = tuple(
        Money(
            currency,
            sell.get(currency, _ZERO).quantize(_MONEY),
            cost.get(currency, _ZERO).quantize(_MONEY),
            margin.get(currency, _ZERO).quantize(_MONEY),
        )
        for currency in currencies
    )
    return money, without_margin


def breakdown(cdrs: QuerySet[Cdr], group_by: GroupBy, limit: int = 10) -> list[Breakdown]:
    """The ``limit`` groups of ``cdrs`` with the most calls, most first.

    Two queries whatever the traffic: the groups, then their margins per currency.
    """
    field = _GROUP_FIELD[group_by]
    rows = list(
        cdrs.values(field)
        .annotate(
            calls=Count("id"),
            answered=Count("id", filter=_ANSWERED),
            talk_ms=Sum("duration_ms", filter=_ANSWERED),
        )
        .order_by("-calls", field)[:limit]
    )
    keys = [row[field] for row in rows]
    names = _names(group_by, keys)
    margins: dict[Any, list[tuple[str, Decimal]]] = {}
    if rows:
        chosen = Q(**{f"{field}__in": [k for k in keys if k is not None]})
        if None in keys:
            chosen |= Q(**{f"{field}__isnull": True})
        for margin_row in (
            cdrs.filter(chosen, margin__isnull=False)
            .values(field, "sell_currency")
            .annotate(total=Sum("margin"))
            .order_by(field, "sell_currency")
        ):
            margins.setdefault(margin_row[field], []).append(
                (margin_row["sell_currency"], (margin_row["total"] or _ZERO).quantize(_MONEY))
            )
    return [
        Breakdown(
            key="" if row[field] is None else str(row[field]),
            name=names(row[field]),
            calls=row["calls"],
            answered=row["answered"],
            asr=_asr(row["answered"], row["calls"]),
            acd_s=_acd(row["talk_ms"], row["answered"]),
            margins=tuple(margins.get(row[field], ())),
        )
        for row in rows
    ]


def _names(group_by: GroupBy, keys: list[Any]) -> Callable[[Any], str]:
    if group_by == "destination":
        return lambda key: key or "(unknown)"
    model = Customer if group_by == "customer" else Provider
    found = dict(
        model._default_manager.filter(pk__in=[k for k in keys if k is not None]).values_list(
            "pk", "name"
        )
    )
    none = "(none)" if group_by == "provider" else "(unauthenticated)"
    return lambda key: none if key is None else found.get(key, f"#{key} (deleted)")


def series(cdrs: QuerySet[Cdr], since: datetime, until: datetime, period: Period) -> list[Bucket]:
    """Calls, calls per second and ASR per bucket, zero-filled from ``since`` to ``until``."""
    rows = (
        cdrs.annotate(bucket=Trunc("started_at", period.unit, output_field=DateTimeField()))
        .values("bucket")
        .annotate(calls=Count("id"), answered=Count("id", filter=_ANSWERED))
        .order_by("bucket")
    )
    found = {row["bucket"]: (row["calls"], row["answered"]) for row in rows}
    seconds = int(period.bucket.total_seconds())
    start = _truncate(since, period)
    buckets: list[Bucket] = []
    while start < until:
        calls, answered = found.get(start, (0, 0))
        buckets.append(
            Bucket(
                start=start,
                calls=calls,
                answered=answered,
                cps=ratio(calls, seconds, "0.001"),
                asr=_asr(answered, calls) if calls else None,
            )
        )
        start += period.bucket
    return buckets


def _truncate(moment: datetime, period: Period) -> datetime:
    moment = moment.replace(second=0, microsecond=0)
    if period.unit in {"hour", "day"}:
        moment = moment.replace(minute=0)
    if period.unit == "day":
        moment = moment.replace(hour=0)
    return moment


def calls_ended_between(since: datetime, until: datetime) -> int:
    """Calls whose CDR says they ended in ``[since, until)``.

    ``ended_at`` has no index, so the rows are first narrowed by the indexed start time:
    a call that ended after ``since`` started at most the longest allowed call plus
    :data:`SETUP_ALLOWANCE` (ringing) before it.
    """
    longest = Customer.objects.aggregate(longest=Max("max_call_duration_s"))["longest"]
    window = timedelta(seconds=longest or DEFAULT_LONGEST_CALL_S) + SETUP_ALLOWANCE
    return Cdr.objects.filter(
        started_at__gte=since - window, ended_at__gte=since, ended_at__lt=until
    ).count()


def security_events(limit: int = 20) -> list[SecurityEvent] | None:
    """The latest security events worth an operator's look (warnings: failed and
    locked-out sign-ins, honeypot hits, bans, refusals, permission denials), newest
    first, as stored from the ``tollguard.security`` log; None without the security app.
    """
    if not apps.is_installed("tollguard.web.security"):
        return None
    stored = apps.get_model("security", "SecurityEvent")
    rows = (
        stored.objects.filter(level__gte=logging.WARNING)
        .order_by("-at", "-id")
        .values_list("at", "event", "address", "user", "detail")[:limit]
    )
    return [SecurityEvent(*row) for row in rows]


def security_data(limit: int = 20) -> dict[str, Any]:
    events = security_events(limit)
    return {
        "available": events is not None,
        "events": [
            {
                "at": event.at.isoformat(),
                "kind": event.kind,
                "address": event.address,
                "username": event.username,
                "detail": event.detail,
            }
            for event in events or ()
        ],
    }


def fraud_counts() -> dict[str, Any]:
    """Fraud events waiting for an operator, active SIP bans and suspensions."""
    if not apps.is_installed("tollguard.web.fraud"):
        return {"available": False}
    now = timezone.now()
    events = apps.get_model("fraud", "FraudEvent")
    bans = apps.get_model("fraud", "SipBan")
    suspensions = apps.get_model("fraud", "Suspension")
    return {
        "available": True,
        "open_events": events.objects.filter(released_at__isnull=True).count(),
        "active_bans": bans.objects.exclude(expires_at__lte=now).count(),
        "suspensions": suspensions.objects.exclude(expires_at__lte=now).count(),
    }


# A status document older than this many of the switch's intervals is stale.
STALE_INTERVALS = 5


def live_state(path: Path, now: float) -> dict[str, Any]:
    """The switch's live figures from its status document at ``path``, if fresh."""
    try:
        status = json.loads(path.read_text())
        updated = float(status["updated_at"])
        interval = float(status.get("interval_s", 1.0))
        active = int(status["active_calls"])
        rate = float(status["calls_per_second"])
        errors = int(status.get("handler_errors", 0))
        bindings = int(status.get("bindings", 0))
        accounts = int(status.get("registered_accounts", 0))
    except FileNotFoundError:
        return {"available": False, "note": "The switch is not running."}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"available": False, "note": f"The switch's status cannot be read ({exc})."}
    age = now - updated
    if age > STALE_INTERVALS * interval:
        return {
            "available": False,
            "note": f"The switch has not reported for {age:.0f} s; it is probably stopped.",
        }
    return {
        "available": True,
        "active_calls": active,
        "calls_per_second": f"{rate:.2f}",
        "handler_errors": errors,
        "bindings": bindings,
        "registered_accounts": accounts,
    }


def with_live_state(data: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """``data`` (a :func:`dashboard_data`, maybe cached) with the switch's state and the
    security events as they are now: a lockout shows at the next refresh, not at the
    next cache interval."""
    state = live_state(settings.TOLLGUARD.switch_status_path, time.time() if now is None else now)
    return {**data, "live": {**data["live"], "note": "", **state}, "security": security_data()}


def _money(value: Decimal) -> str:
    return str(value)  # a string keeps the exact amount; the chart parses it


def dashboard_data(period_name: str, until: datetime, limit: int = 10) -> dict[str, Any]:
    """Everything the dashboard draws, as JSON-ready values."""
    period = PERIODS[period_name]
    since = until - period.length
    cdrs = cdrs_between(since, until)
    total = totals(cdrs)

    def rows(group_by: GroupBy) -> list[dict[str, Any]]:
        return [
            {
                "key": row.key,
                "name": row.name,
                "calls": row.calls,
                "answered": row.answered,
                "asr": str(row.asr),
                "acd_s": str(row.acd_s),
                "margins": [
                    {"currency": currency, "amount": _money(amount)}
                    for currency, amount in row.margins
                ],
            }
            for row in breakdown(cdrs, group_by, limit)
        ]

    return {
        "period": period_name,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "bucket_seconds": int(period.bucket.total_seconds()),
        # The switch's live figures are added by with_live_state() for the period
        # ending now; a period in the past has only its CDRs.
        "live": {
            "available": False,
            "note": "Live figures are shown for the period ending now only.",
            "calls_last_minute": calls_ended_between(until - timedelta(minutes=1), until),
        },
        "totals": {
            "calls": total.calls,
            "answered": total.answered,
            "asr": str(total.asr),
            "acd_s": str(total.acd_s),
            "money": [
                {
                    "currency": money.currency,
                    "sell": _money(money.sell),
                    "cost": _money(money.cost),
                    "margin": _money(money.margin),
                }
                for money in total.money
            ],
            "without_margin": total.without_margin,
        },
        "series": [
            {
                "start": bucket.start.isoformat(),
                "calls": bucket.calls,
                "answered": bucket.answered,
                "cps": str(bucket.cps),
                "asr": None if bucket.asr is None else str(bucket.asr),
            }
            for bucket in series(cdrs, since, until, period)
        ],
        "by_customer": rows("customer"),
        "by_provider": rows("provider"),
        "by_destination": rows("destination"),
        "fraud": fraud_counts(),
        "security": security_data(),
    }
