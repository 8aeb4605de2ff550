"""``tollguard bench rating``: how many calls per second :func:`rate_call` prices.

Durations are drawn from a realistic mix (a quarter unanswered, the rest from a few
seconds to an hour) over rates with the usual increments and rounding modes.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

from tollguard.domain.plan import Rate, RateCard, Rounding
from tollguard.domain.rating import rate_call

__all__ = ["run"]

_INCREMENTS = ((60, 60), (30, 6), (1, 1), (60, 1))


def run(calls: int = 1_000_000, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    cards = [RateCard(id=i, name=mode.value, rounding=mode) for i, mode in enumerate(Rounding)]
    rates = [
        Rate(
            prefix=str(rng.randrange(1, 1000)),
            destination="bench",
            price_per_minute=Decimal(rng.randrange(1, 50_000)).scaleb(-5),
            connect_fee=Decimal(rng.choice((0, 0, 1, 5))).scaleb(-2),
            initial_increment=initial,
            next_increment=following,
        )
        for initial, following in _INCREMENTS
        for _ in range(25)
    ]
    jobs = [
        (
            0 if rng.random() < 0.25 else int(rng.expovariate(1 / 180_000)),
            rng.choice(rates),
            rng.choice(cards),
        )
        for _ in range(calls)
    ]
    total = Decimal(0)
    started = time.perf_counter()
    for duration_ms, rate, card in jobs:
        total += rate_call(duration_ms, rate, card).amount
    elapsed = time.perf_counter() - started
    return {
        "name": "rating",
        "calls": calls,
        "ratings_per_s": round(calls / elapsed) if elapsed else 0,
        "rate_us": round(elapsed / max(calls, 1) * 1e6, 3),
        "total_amount": str(total),
    }
