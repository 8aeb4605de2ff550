"""Traffic statistics over CDRs, computed by the database with ORM aggregates.

ASR is answered calls over all calls, in percent; ACD is the mean duration of answered
calls. ``minutes`` is answered talk time; ``billed_minutes`` what rating charged for.

A row is one group in one sell currency: its ``sell``, ``cost`` and ``margin`` are all
in that ``currency``. A cost rated in another currency (only CDRs written before routing
refused such routes have one) is left out of ``cost``, and such calls have no margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.db.models import Count, F, Q, QuerySet, Sum

from tollguard.web.carriers.models import Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.cdr.selectors import ratio
from tollguard.web.customers.models import Customer

GroupBy = Literal["customer", "provider", "destination"]

_GROUP_FIELD: dict[str, str] = {
    "customer": "customer_id",
    "provider": "provider_id",
    "destination": "destination",
}
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class TrafficStats:
    key: str
    name: str
    currency: str
    calls: int
    answered: int
    asr: Decimal
    acd_s: Decimal
    minutes: Decimal
    billed_minutes: Decimal
    sell: Decimal
    cost: Decimal | None  # None: every cost of the row is in another currency
    margin: Decimal | None  # None: no call of the row has a margin (see above)


def traffic_stats(cdrs: QuerySet[Cdr], group_by: GroupBy) -> list[TrafficStats]:
    """One row per group of ``cdrs``, most calls first."""
    field = _GROUP_FIELD[group_by]
    answered = Q(answered_at__isnull=False)
    rows = (
        cdrs.order_by()
        .values(field, "sell_currency")
        .annotate(
            calls=Count("id"),
            answered=Count("id", filter=answered),
            talk_ms=Sum("duration_ms", filter=answered),
            billed_s=Sum("billed_s"),
            sell=Sum("sell_amount"),
            cost=Sum(
                "cost_amount", filter=Q(cost_currency=F("sell_currency")) | Q(cost_currency="")
            ),
            margin=Sum("margin"),
        )
        .order_by("-calls", field, "sell_currency")
    )
    result = list(rows)
    names = _names(group_by, [row[field] for row in result])
    stats = []
    for row in result:
        key = row[field]
        talk_ms = row["talk_ms"] or 0
        stats.append(
            TrafficStats(
                key="" if key is None else str(key),
                name=names.get(key, "" if key is None else str(key)),
                currency=row["sell_currency"],
                calls=row["calls"],
                answered=row["answered"],
                asr=ratio(100 * row["answered"], row["calls"], "0.01"),
                acd_s=ratio(talk_ms, 1000 * row["answered"], "0.1"),
                minutes=ratio(talk_ms, 60_000, "0.01"),
                billed_minutes=ratio(row["billed_s"] or 0, 60, "0.01"),
                sell=_money(row["sell"]),
                cost=None if row["cost"] is None else _money(row["cost"]),
                margin=None if row["margin"] is None else _money(row["margin"]),
            )
        )
    return stats


def _money(value: Decimal | None) -> Decimal:
    return (value or _ZERO).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def _names(group_by: GroupBy, keys: list[object]) -> dict[object, str]:
    ids = [k for k in keys if isinstance(k, int)]
    if group_by == "customer":
        return dict(Customer.objects.filter(pk__in=ids).values_list("pk", "name"))
    if group_by == "provider":
        return dict(Provider.objects.filter(pk__in=ids).values_list("pk", "name"))
    return {}
