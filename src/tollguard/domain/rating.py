"""Pricing a call: billed seconds after increments, then money in ``Decimal``.

A rate reads "price per minute, billed as ``initial``/``next``": the first
``initial_increment`` seconds are billed as a block as soon as the call is answered,
then every started ``next_increment`` seconds. A 61 s call at 30/6 bills 30 + 6 · 6 =
66 s. The connect fee is charged once per answered call; an unanswered call costs
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tollguard.domain.errors import RatingError
from tollguard.domain.plan import Rate, RateCard

__all__ = ["Charge", "billed_seconds", "margin", "rate_call"]

_SIXTY = Decimal(60)


@dataclass(frozen=True, slots=True)
class Charge:
    billed_s: int
    amount: Decimal


def billed_seconds(duration_ms: int, initial_increment: int, next_increment: int) -> int:
    """Seconds billed for a call of ``duration_ms`` (0: not answered, nothing billed)."""
    if duration_ms < 0:
        raise RatingError(f"negative duration {duration_ms} ms")
    if initial_increment < 1 or next_increment < 1:
        raise RatingError(f"increments {initial_increment}/{next_increment} must be positive")
    if duration_ms == 0:
        return 0
    # Every started second counts: -(-a // b) is ceil(a / b) on integers.
    seconds = -(-duration_ms // 1000)
    if seconds <= initial_increment:
        return initial_increment
    return initial_increment + -(-(seconds - initial_increment) // next_increment) * next_increment


def rate_call(duration_ms: int, rate: Rate, card: RateCard) -> Charge:
    """What a call of ``duration_ms`` costs at ``rate``, rounded as ``card`` says."""
    billed = billed_seconds(duration_ms, rate.initial_increment, rate.next_increment)
    quantum = _quantum(card.decimals)
    if billed == 0:
        return Charge(0, Decimal(0).quantize(quantum))
    amount = rate.connect_fee + rate.price_per_minute * billed / _SIXTY
    return Charge(billed, amount.quantize(quantum, rounding=card.rounding.decimal_mode))


def margin(sell: Decimal, cost: Decimal) -> Decimal:
    """What the operator keeps: the customer's charge less the provider's."""
    return sell - cost


def _quantum(decimals: int) -> Decimal:
    if not 0 <= decimals < len(_QUANTA):
        raise RatingError(f"a rate card has 0 to {len(_QUANTA) - 1} decimals, not {decimals}")
    return _QUANTA[decimals]


_QUANTA = tuple(Decimal(1).scaleb(-n) for n in range(13))
