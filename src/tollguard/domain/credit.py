"""Credit control: how much of a call a customer can pay for, reserved slice by slice.

A customer's money lives in a :class:`Reservations` store (process memory, or Redis
shared by several switch nodes) as two numbers: its **balance** (the ledger's sum, less
the charges of calls that ended since) and what its calls in progress have
**reserved**. An amount *fits* when ``balance - reserved - amount >= floor``, the floor
being 0 for a prepaid customer and minus the credit limit for a postpaid one; an
amount of 0 always fits (a free call is never refused for money).

A call's reservation pays for its first *slice* of talk time before any gateway is
tried, and grows slice by slice while the call lasts. The reserved time is always a
point of the rate's increment grid (``initial``, ``initial + next``, ...) and the
reservation holds exactly what a call of that length costs, so growing it costs the
difference of two prices. When the funds no longer pay for a whole slice the
reservation grows by as many increments as they do; when not one more increment fits,
the call ends where its reservation ends. At hang-up the call's exact charge
(:func:`tollguard.domain.rating.rate_call`) is committed and the rest released. A
commit never exceeds its reservation and a reservation is granted only when it fits,
so the calls of one customer together never spend more than it had, and a call cut
for want of funds leaves less than one increment of its rate unspent.

:class:`CreditControl` is what the switch calls: :meth:`~CreditControl.admit` for a new
call, :meth:`~CreditControl.answered`, :meth:`~CreditControl.extend` whenever the
:class:`Deadline` it was given comes, :meth:`~CreditControl.settle` at the end, and
:meth:`~CreditControl.housekeeping` about once a second. :func:`load_balances` and
:func:`catch_up` fill the store from a :class:`BalanceSource` (the ledger) at start and
keep it in step with top-ups and adjustments. ``now`` is wall-clock seconds (leases are
compared across nodes); deadlines are milliseconds after the answer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Protocol

from tollguard.domain.errors import CreditError, ReservationUnknown, StoreUnavailable
from tollguard.domain.plan import Customer, Rate, RateCard
from tollguard.domain.rating import Charge, billed_seconds, rate_call
from tollguard.domain.routing import Rejection

__all__ = [
    "CREDIT_EXHAUSTED_CAUSE",
    "CREDIT_EXHAUSTED_TEXT",
    "CREDIT_UNAVAILABLE",
    "CURRENCY_MISMATCH",
    "MONEY_PLACES",
    "NO_FUNDS",
    "BalanceSnapshot",
    "BalanceSource",
    "CallCredit",
    "CreditControl",
    "CreditPolicy",
    "Deadline",
    "FundsChange",
    "Lapsed",
    "Reservations",
    "catch_up",
    "check_amount",
    "grid_ceil",
    "largest_affordable",
    "load_balances",
    "longest_call_s",
    "price",
    "slice_end",
]

# The customer cannot pay for the first increment: 402 (RFC 3261 §21.4.3 reserves it
# for exactly this) with Q.850 cause 21 "call rejected", the cause RFC 3398 §8.2.6.1
# gives a 402. A 403 would tell the customer's equipment nothing it could act on.
NO_FUNDS = Rejection(402, "Insufficient funds", 21)
# The sell card prices in another currency than the customer pays in. Configuration
# checks refuse this; should it slip through, the call is refused rather than charged
# in the wrong currency (cause 47 "resource unavailable, unspecified" maps to 503).
CURRENCY_MISMATCH = Rejection(503, "Currency mismatch", 47)
# The store cannot be reached (a networked one): fail closed, no call goes unbilled.
# Cause 41 "temporary failure" maps to 503 (RFC 3398 §7.2.4.1).
CREDIT_UNAVAILABLE = Rejection(503, "Credit check unavailable", 41)
# A call whose reservation can grow no more is ended with BYE and this Q.850 cause:
# "normal, unspecified", of the normal class (the service ended as agreed), and distinct
# from cause 16 that the maximum call duration uses, so that CDRs tell the two apart.
CREDIT_EXHAUSTED_CAUSE = 31
CREDIT_EXHAUSTED_TEXT = "Credit exhausted"

# Amounts are exact to the micro-unit: the ledger stores six places, and a networked
# store keeps integers of micro-units (a Lua number is a double).
MONEY_PLACES = 6

_ZERO = Decimal(0)
_SIXTY = Decimal(60)
_MICRO = Decimal(1).scaleb(-MONEY_PLACES)
# Callers racing for one balance: how often a partial reservation is computed again.
_ATTEMPTS = 3


def check_amount(amount: Decimal, *, signed: bool = False) -> Decimal:
    """``amount`` if a store may hold it: a finite ``Decimal`` of at most six places, not
    negative unless ``signed``; raises :class:`CreditError` otherwise."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise CreditError(f"amount {amount!r} is not a finite Decimal")
    try:
        # Cheaper than inspecting the digits: equal to itself to the micro-unit.
        exact = amount == amount.quantize(_MICRO)
    except ArithmeticError as exc:  # more digits than the context holds
        raise CreditError(f"amount {amount} is too large") from exc
    if not exact:
        raise CreditError(f"amount {amount} has more than {MONEY_PLACES} decimal places")
    if not signed and amount < 0:
        raise CreditError(f"amount {amount} is negative")
    return amount


# -- prices on the increment grid -------------------------------------------------------


def grid_ceil(seconds: int, rate: Rate) -> int:
    """The billed seconds of a call lasting ``seconds`` (> 0): the grid point at or above."""
    if seconds < 1:
        raise CreditError(f"a call lasts at least one second, not {seconds}")
    return billed_seconds(seconds * 1000, rate.initial_increment, rate.next_increment)


def price(billed_s: int, rate: Rate, card: RateCard) -> Decimal:
    """What ``billed_s`` billed seconds cost, exactly as :func:`rate_call` prices them."""
    return rate_call(billed_s * 1000, rate, card).amount


def _step(rate: Rate, low: int, high: int) -> tuple[int, int]:
    """The grid indexes of grid points ``low`` and ``high``."""
    initial, step = rate.initial_increment, rate.next_increment
    for point in (low, high):
        if point < initial or (point - initial) % step:
            raise CreditError(f"{point} s is not on the {initial}/{step} grid")
    if low > high:
        raise CreditError(f"empty range {low}..{high} s")
    return (low - initial) // step, (high - initial) // step


def largest_affordable(funds: Decimal, rate: Rate, card: RateCard, *, low: int, high: int) -> int:
    """The longest billed time from ``low`` to ``high`` (grid points) that ``funds`` pay
    for, or 0 when not even ``low`` is.

    A price never falls as a call grows, so this is a search for the last grid index
    that fits: the closed form for connect fee plus price per minute guesses it, and
    the prices themselves decide, which keeps the answer exact under any rounding rule
    (and under later rate features, as long as a longer call never costs less).
    """
    k_low, k_high = _step(rate, low, high)
    initial, step = rate.initial_increment, rate.next_increment

    def fits(k: int) -> bool:
        return price(initial + k * step, rate, card) <= funds

    if not fits(k_low):
        return 0
    guess = k_high
    if rate.price_per_minute > 0:
        seconds = (funds - rate.connect_fee) * _SIXTY / rate.price_per_minute
        guess = int(((seconds - initial) / step).to_integral_value(ROUND_FLOOR))
    guess = min(max(guess, k_low), k_high)
    lo, hi = k_low, k_high
    if fits(guess):
        if guess == k_high or not fits(guess + 1):
            return initial + guess * step
        lo = guess + 1
    else:
        hi = guess - 1
    # lo fits (it is k_low or a tested index + 1 below a fitting one); search up to hi.
    while lo < hi:
        middle = (lo + hi + 1) // 2
        if fits(middle):
            lo = middle
        else:
            hi = middle - 1
    return initial + lo * step


def longest_call_s(funds: Decimal, rate: Rate, card: RateCard, cap_s: int) -> int:
    """The longest call (seconds, at most ``cap_s``) that ``funds`` pay for; 0: none."""
    covered = largest_affordable(
        funds, rate, card, low=rate.initial_increment, high=grid_ceil(cap_s, rate)
    )
    return min(covered, cap_s)


def slice_end(covered_s: int, rate: Rate, slice_s: int, cap_s: int) -> int:
    """Where the reservation of a call covering ``covered_s`` should reach next: one
    ``slice_s`` further, on the grid, and no further than the call may last (``cap_s``,
    0 for no limit) is billed."""
    end = grid_ceil(covered_s + slice_s, rate)
    if cap_s > 0:
        end = min(end, grid_ceil(cap_s, rate))
    return max(end, covered_s)


# -- the port for live state ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lapsed:
    """A reservation dropped because its lease ran out: its call never settled it."""

    customer_id: int
    key: str
    amount: Decimal


class Reservations(Protocol):
    """Port: balances and reservations, each operation atomic (docs/architecture.md).

    Amounts are ``Decimal`` with at most six places (:func:`check_amount`; anything
    else raises :class:`CreditError`). A customer the store has never seen has balance
    0 and nothing reserved. A reservation is named by its customer and a key unique
    within that customer; the switch makes one key per call. Every implementation
    passes ``tests/state/reservations_contract.py``.
    """

    def open(self, customer_id: int, balance: Decimal, version: int) -> bool:
        """Start ``customer_id`` at ``balance`` as of ledger ``version``, unless the store
        already knows it (then nothing changes and the answer is False)."""
        ...

    def adjust(self, customer_id: int, amount: Decimal, version: int) -> bool:
        """Add ``amount`` (a top-up, refund or adjustment; negative takes away) once:
        applied only when ``version`` is above the last one applied to the customer."""
        ...

    def balance(self, customer_id: int) -> Decimal:
        """The balance, reservations not deducted."""
        ...

    def available(self, customer_id: int) -> Decimal:
        """The balance less every reservation."""
        ...

    def reserve(
        self, customer_id: int, key: str, amount: Decimal, floor: Decimal, expires_at: float
    ) -> bool:
        """Reserve ``amount`` under the new ``key`` if it fits (``available - amount >=
        floor``, or ``amount`` is 0); the reservation lapses at ``expires_at`` unless
        extended. A key in use or settled recently raises :class:`ReservationExists`."""
        ...

    def extend(
        self, customer_id: int, key: str, amount: Decimal, floor: Decimal, expires_at: float
    ) -> bool:
        """Add ``amount`` to reservation ``key`` if it fits, and move its lapse to
        ``expires_at``; with nothing added (False) the lapse stays. An amount of 0 always
        fits, so it only renews the lease. No such reservation raises
        :class:`ReservationUnknown`."""
        ...

    def commit(self, customer_id: int, key: str, amount: Decimal, now: float) -> bool:
        """Charge ``amount`` and release reservation ``key`` (whatever it held) in one
        step. The charge is owed whatever the funds, and stands without a reservation
        (one that lapsed). The key is then remembered as settled for at least ten
        minutes: committing or releasing it again changes nothing and answers False."""
        ...

    def release(self, customer_id: int, key: str, now: float) -> Decimal:
        """Drop reservation ``key`` without a charge; the amount it held (0 if none).
        The key is remembered as settled, as by :meth:`commit`."""
        ...

    def expire(self, now: float) -> tuple[Lapsed, ...]:
        """Drop the reservations whose lease ended at or before ``now``, and forget
        settled keys older than their memory; the dropped reservations."""
        ...


# -- credit control for the switch ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    """How reservations are sized and timed (``[billing]`` in ``tollguard.toml``)."""

    slice_s: int = 60  # talk time one reservation step pays for
    extend_before_s: int = 10  # grow the reservation this long before it runs out
    retry_s: int = 1  # then try again this often until it does (a top-up may come)
    setup_allowance_s: int = 900  # lease of a reservation while its call is being set up
    grace_s: int = 60  # a lease outlives its reserved time by this much

    def __post_init__(self) -> None:
        if self.slice_s < 1 or self.retry_s < 1 or self.grace_s < 1:
            raise CreditError("slice, retry and grace times must be at least one second")
        if not 0 <= self.extend_before_s < self.slice_s:
            raise CreditError("a reservation must be extended within its slice")
        if self.setup_allowance_s < 1:
            raise CreditError("the set-up allowance must be at least one second")


@dataclass(slots=True)
class CallCredit:
    """One call's reservation, held by the switch with the call."""

    key: str
    customer_id: int
    rate: Rate
    card: RateCard
    floor: Decimal
    cap_s: int  # the customer's longest call; 0: no limit
    covered_s: int = 0  # talk time the reservation pays for (a grid point once granted)
    reserved: Decimal = _ZERO  # what it holds: the price of covered_s
    settled: bool = False

    @property
    def covered_ms(self) -> int:
        return self.covered_s * 1000

    @property
    def at_cap(self) -> bool:
        """The reservation pays for the longest call allowed: nothing left to extend."""
        return self.cap_s > 0 and self.covered_s >= grid_ceil(self.cap_s, self.rate)


@dataclass(frozen=True, slots=True)
class Deadline:
    """What the switch does next for an answered call, ``at_ms`` after the answer.

    ``hang_up`` False: call :meth:`CreditControl.extend` then. True: the funds are spent;
    end the call then (at once if that has passed) with BYE on both legs and
    ``Reason: Q.850;cause=31;text="Credit exhausted"``.
    """

    at_ms: int
    hang_up: bool = False


@dataclass(frozen=True, slots=True)
class _Commit:
    customer_id: int
    key: str
    amount: Decimal


class CreditControl:
    """Admission, extension and settlement of calls against a :class:`Reservations`."""

    def __init__(self, store: Reservations, policy: CreditPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or CreditPolicy()
        # Commits the store could not take (a networked one), retried by housekeeping;
        # a deque because housekeeping may run in another thread than settle.
        self._unstored: deque[_Commit] = deque()

    def admit(
        self, key: str, customer: Customer, rate: Rate, card: RateCard, now: float
    ) -> CallCredit | Rejection:
        """Reserve the first slice of a new call (``rate`` and ``card``: its sell price),
        or as much of it as the funds pay for; a :class:`Rejection` when they do not pay
        for the first increment, and before any gateway is tried."""
        terms = customer.credit
        if card.currency != terms.currency:
            return CURRENCY_MISMATCH
        call = CallCredit(
            key, customer.id, rate, card, terms.floor, max(0, customer.max_call_duration_s)
        )
        high = slice_end(0, rate, self.policy.slice_s, call.cap_s)
        expires_at = now + self.policy.setup_allowance_s + high + self.policy.grace_s
        try:
            granted = self._grow(call, rate.initial_increment, high, expires_at, self.store.reserve)
        except StoreUnavailable:
            return CREDIT_UNAVAILABLE
        return call if granted else NO_FUNDS

    def answered(self, call: CallCredit, now: float) -> Deadline | None:
        """The call was answered at ``now``: its talk time starts. The first deadline,
        or None when its reservation already reaches the longest call allowed (the
        switch's maximum-duration timer ends it)."""
        self._unsettled(call)
        try:
            self.store.extend(
                call.customer_id,
                call.key,
                _ZERO,
                call.floor,
                now + call.covered_s + self.policy.grace_s,
            )
        except ReservationUnknown:
            # Set-up outlasted the allowance and the reservation lapsed: nothing pays.
            return Deadline(0, hang_up=True)
        except StoreUnavailable:
            pass  # the admission lease runs until the next extension renews it
        return self._next(call, 0)

    def extend(self, call: CallCredit, elapsed_ms: int, now: float) -> Deadline | None:
        """Grow the reservation of an answered call, ``elapsed_ms`` after the answer."""
        self._unsettled(call)
        if call.at_cap:
            return None
        high = slice_end(call.covered_s, call.rate, self.policy.slice_s, call.cap_s)
        low = call.covered_s + call.rate.next_increment
        expires_at = now + (high * 1000 - elapsed_ms) / 1000 + self.policy.grace_s
        try:
            grown = self._grow(call, low, high, expires_at, self.store.extend)
        except ReservationUnknown:
            return Deadline(elapsed_ms, hang_up=True)
        except StoreUnavailable:
            grown = False
        if grown:
            return self._next(call, elapsed_ms)
        if elapsed_ms >= call.covered_ms:
            return Deadline(call.covered_ms, hang_up=True)
        return Deadline(min(call.covered_ms, elapsed_ms + self.policy.retry_s * 1000))

    def settle(self, call: CallCredit, duration_ms: int, now: float) -> Charge:
        """Commit the charge of a call that lasted ``duration_ms`` (0: never answered)
        and release the rest of its reservation; the charge is the CDR's sell amount.

        Talk time past the reservation (the switch's own timer running late) is not
        charged: the customer never had the funds for it.
        """
        self._unsettled(call)
        call.settled = True
        charge = rate_call(min(max(duration_ms, 0), call.covered_ms), call.rate, call.card)
        try:
            self.store.commit(call.customer_id, call.key, charge.amount, now)
        except StoreUnavailable:
            self._unstored.append(_Commit(call.customer_id, call.key, charge.amount))
        return charge

    def release(self, call: CallCredit, now: float) -> None:
        """Settle a call that was never answered (failed, cancelled, refused later)."""
        self.settle(call, 0, now)

    def housekeeping(self, now: float) -> tuple[Lapsed, ...]:
        """Drop lapsed reservations (returned, for the switch to log each) and retry
        commits the store could not take. Call it about once a second."""
        for _ in range(len(self._unstored)):
            commit = self._unstored.popleft()
            try:
                self.store.commit(commit.customer_id, commit.key, commit.amount, now)
            except StoreUnavailable:
                self._unstored.append(commit)
        return self.store.expire(now)

    @property
    def unstored_commits(self) -> int:
        """Charges the store has not taken yet (they are in the CDRs all the same)."""
        return len(self._unstored)

    def _grow(
        self,
        call: CallCredit,
        low: int,
        high: int,
        expires_at: float,
        op: Callable[[int, str, Decimal, Decimal, float], bool],
    ) -> bool:
        """Make the reservation reach ``high``, or the furthest point from ``low`` on
        that the funds pay for; False when they do not pay for ``low``."""
        target = price(high, call.rate, call.card)
        if op(call.customer_id, call.key, target - call.reserved, call.floor, expires_at):
            call.covered_s, call.reserved = high, target
            return True
        for _ in range(_ATTEMPTS):
            funds = self.store.available(call.customer_id) - call.floor + call.reserved
            covered = largest_affordable(funds, call.rate, call.card, low=low, high=high)
            if covered == 0:
                return False
            target = price(covered, call.rate, call.card)
            if op(call.customer_id, call.key, target - call.reserved, call.floor, expires_at):
                call.covered_s, call.reserved = covered, target
                return True
        return False

    def _next(self, call: CallCredit, elapsed_ms: int) -> Deadline | None:
        if call.at_cap:
            return None
        return Deadline(max(elapsed_ms, call.covered_ms - self.policy.extend_before_s * 1000))

    @staticmethod
    def _unsettled(call: CallCredit) -> None:
        if call.settled:
            raise CreditError(f"reservation {call.key!r} was settled already")


# -- balances from the ledger -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FundsChange:
    """A ledger entry the live state must apply: anything but a charge of a call the
    switch rated itself (those it has applied at hang-up already)."""

    version: int
    customer_id: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """Every customer's ledger balance, as of funds ``version``."""

    version: int
    balances: tuple[tuple[int, Decimal], ...]


class BalanceSource(Protocol):
    """Port: where the switch reads balances (implemented on the ledger by the web layer).

    Every change the live state must apply carries a version; versions grow in the
    order the changes were committed, so a reader that has seen version ``v`` has seen
    every change up to it.
    """

    def snapshot(self) -> BalanceSnapshot:
        """Every balance and the version they include, read consistently."""
        ...

    def changes(self, after: int, limit: int) -> tuple[FundsChange, ...]:
        """Up to ``limit`` changes with a version above ``after``, in version order."""
        ...


def load_balances(source: BalanceSource, store: Reservations) -> int:
    """Fill ``store`` from the ledger at start; the version to catch up from."""
    snapshot = source.snapshot()
    for customer_id, balance in snapshot.balances:
        store.open(customer_id, balance, snapshot.version)
    return snapshot.version


def catch_up(source: BalanceSource, store: Reservations, after: int, *, page: int = 500) -> int:
    """Apply the changes since version ``after``; the version reached.

    Safe to run on several switch nodes sharing one store: each change applies once.
    """
    version = after
    while True:
        changes = source.changes(version, page)
        for change in changes:
            store.adjust(change.customer_id, change.amount, change.version)
            version = change.version
        if len(changes) < page:
            return version
