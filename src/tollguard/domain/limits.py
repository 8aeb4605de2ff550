"""Rate and volume limits as pure arithmetic, and the ``Counters`` port that holds them.

Three kinds of counter cover every limit of the SIP shield and the fraud engine:

* **channels** — how many of something are open now (calls in progress, open SIP
  transactions of a source); taken at the start, given back at the end;
* **token buckets** — a sustained rate with a burst (calls per second, requests per
  second of a source, the global request cap). A bucket holds at most ``burst``
  tokens and gains ``rate`` tokens a second; a request takes one or is refused;
* **windows** — a sum over the last ``length_s`` seconds (calls per hour, spend per
  day, failed authentications per minute). A window is cut into ``slots`` equal
  slots; the sum covers the current slot and the ``slots - 1`` before it, so it looks
  back between ``length_s - length_s / slots`` and ``length_s`` seconds. Slots (not a
  log of every event) keep memory bounded and map onto one Redis hash per key.

Amounts are integers. Money goes in as micro-units (:func:`money_units`), which is exact
and what Redis' ``INCRBY`` adds without rounding, so the credit control can feed spend
from its reservations and charges with the same call.

Every function takes ``now`` (seconds since the epoch, a float) and none reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

__all__ = [
    "MONEY_SCALE",
    "Bucket",
    "Counters",
    "TokenBucket",
    "Window",
    "money_from_units",
    "money_units",
    "refill",
]

# Micro-units: enough for per-second prices of fractions of a cent.
MONEY_SCALE = 1_000_000


def money_units(amount: Decimal) -> int:
    """A money amount as an integer number of micro-units (half up)."""
    return int((amount * MONEY_SCALE).to_integral_value(rounding=ROUND_HALF_UP))


def money_from_units(units: int) -> Decimal:
    return Decimal(units) / MONEY_SCALE


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A sustained ``rate`` per second with bursts of up to ``burst`` requests."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1):
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {self!r}")


@dataclass(frozen=True, slots=True)
class Bucket:
    """The state of one token bucket: tokens left at time ``at``."""

    tokens: float
    at: float

    @classmethod
    def full(cls, spec: TokenBucket, now: float) -> Bucket:
        return cls(spec.burst, now)

    def take(self, spec: TokenBucket, now: float, cost: float = 1.0) -> tuple[bool, Bucket]:
        """Refill for the time since ``at``, then take ``cost`` tokens if there are enough.

        A clock that steps back refills nothing (the bucket keeps its later time).
        """
        ok, tokens, at = refill(self.tokens, self.at, spec.rate, spec.burst, now, cost=cost)
        return ok, Bucket(tokens, at)

    def is_full(self, spec: TokenBucket, now: float) -> bool:
        """Whether the bucket would be full at ``now`` (so it can be forgotten)."""
        return self.tokens + max(now - self.at, 0.0) * spec.rate >= spec.burst


def refill(
    tokens: float, at: float, rate: float, burst: float, now: float, *, cost: float = 1.0
) -> tuple[bool, float, float]:
    """:meth:`Bucket.take` on plain numbers: ``(taken, tokens left, time)``.

    For implementations that keep bucket state in their own form (a tuple, a Redis
    hash) without making an object per request.
    """
    if now > at:
        tokens = min(burst, tokens + (now - at) * rate)
        at = now
    if tokens >= cost:
        return True, tokens - cost, at
    return False, tokens, at


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding sum over ``length_s`` seconds in ``slots`` slots."""

    length_s: float
    slots: int = 12
    slot_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (self.length_s > 0 and self.slots >= 1):
            raise ValueError(f"a window needs length_s > 0 and slots >= 1, not {self!r}")
        object.__setattr__(self, "slot_s", self.length_s / self.slots)

    def slot(self, now: float) -> int:
        """The number of the slot ``now`` falls in (slots are aligned on the epoch)."""
        return int(now // self.slot_s)

    def oldest_slot(self, now: float) -> int:
        """The first slot still inside the window at ``now``."""
        return self.slot(now) - self.slots + 1


MINUTE = Window(60.0, 12)
HOUR = Window(3600.0, 12)
DAY = Window(86400.0, 24)


class Counters(Protocol):
    """Port: the live counters behind every limit, shared by all switch nodes.

    Keys are plain strings chosen by the caller (``"calls:account:7"``); an
    implementation treats them as opaque. Every method is atomic on its key: two nodes
    taking the last channel at once give it to one of them. The contract tests in
    ``tests/state/contract.py`` state the exact semantics.
    """

    def acquire(self, key: str, limit: int) -> bool:
        """Take one channel of ``key`` if fewer than ``limit`` are taken."""
        ...

    def release(self, key: str) -> None:
        """Give one channel of ``key`` back (never below zero)."""
        ...

    def in_use(self, key: str) -> int:
        """How many channels of ``key`` are taken."""
        ...

    def take(self, key: str, spec: TokenBucket, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from the bucket ``key`` (full when first seen)."""
        ...

    def add(self, key: str, amount: int, window: Window, now: float) -> int:
        """Add ``amount`` (may be negative) to ``key``'s current slot; return the window's sum."""
        ...

    def total(self, key: str, window: Window, now: float) -> int:
        """The window's sum for ``key`` at ``now``."""
        ...

    def remember(self, key: str, member: str, ttl_s: float, now: float) -> bool:
        """Note ``member`` in the set ``key`` for ``ttl_s`` seconds; ``True`` when it was
        not there (or had expired)."""
        ...

    def members(self, key: str, now: float) -> int:
        """How many unexpired members the set ``key`` holds."""
        ...

    def prune(self, now: float) -> int:
        """Forget what no longer counts (full buckets, empty windows, expired members);
        return how many keys were dropped. Called periodically, off the call path."""
        ...
