"""Rate cards from the ORM as :class:`tollguard.domain.plan.RateCard` values."""

from __future__ import annotations

from collections import defaultdict

from tollguard.domain.plan import Rate, RateCard, Rounding
from tollguard.web.rating import models


def rate_cards() -> tuple[RateCard, ...]:
    """Every rate card with its rates (ordered by prefix), in two queries."""
    rates: dict[int, list[Rate]] = defaultdict(list)
    rows = models.Rate.objects.order_by("card_id", "prefix").values_list(
        "card_id", *models.RATE_FIELDS
    )
    for card_id, *values in rows.iterator(chunk_size=10_000):
        rates[card_id].append(Rate(*values))
    return tuple(
        RateCard(
            id=card_id,
            name=name,
            currency=currency,
            rounding=Rounding(rounding),
            decimals=decimals,
            rates=tuple(rates.get(card_id, ())),
        )
        for card_id, name, currency, rounding, decimals in models.RateCard.objects.order_by(
            "id"
        ).values_list("id", "name", "currency", "rounding", "decimals")
    )
