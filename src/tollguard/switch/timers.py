"""Coarse call timers: one event-loop timer per tick instead of one per call timer.

A call arms half a dozen timers (Timer A towards the gateway, the setup and ring
timeouts, the 2xx retransmission, the duration limit, Timer E for the BYE) and cancels
nearly all of them within milliseconds. One ``loop.call_at`` handle each costs more than
the rest of the call's bookkeeping, so the B2BUA files its timers into slots of
``tick`` seconds and a single loop timer fires the due slots. RFC 3261 timers tolerate
the granularity: a tick is 10 ms against T1's 500 ms.

Timers longer than ``HORIZON_S`` (the call duration limit, session timers) live in
coarser buckets of ``LONG_TICK_S`` from which a cancelled timer removes itself at once:
most calls end long before their limits, and lazily dropped timers of hours would pile
up in memory. Each long bucket has one loop timer, so a call's long timers cost two dict
operations each instead of an event-loop handle.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "HORIZON_S",
    "LONG_TICK_S",
    "Cancellable",
    "LongTimer",
    "Scheduler",
    "Timer",
    "TimerWheel",
]

log = logging.getLogger(__name__)

# Timers beyond this go to the long buckets (a late fire of LONG_TICK_S at most).
HORIZON_S = 120.0
LONG_TICK_S = 0.1


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The switch's clock and timers: monotonic seconds and callbacks after a delay.

    The event loop's timer wheel in a running switch; tests pass a manual clock and
    move it, so that a call-flow test reaches Timer B or a ring timeout without waiting.
    """

    def now(self) -> float: ...

    def call_later(
        self, delay: float, callback: Callable[..., None], *args: object
    ) -> Cancellable: ...


class Timer:
    """One armed timer; :meth:`cancel` is idempotent and releases the callback."""

    __slots__ = ("args", "callback")

    def __init__(self, callback: Callable[..., None] | None, args: tuple[object, ...]) -> None:
        self.callback = callback
        self.args = args

    def cancel(self) -> None:
        self.callback = None
        self.args = ()

    @property
    def cancelled(self) -> bool:
        return self.callback is None


class LongTimer:
    """A timer in a long bucket; :meth:`cancel` takes it out of the bucket at once."""

    __slots__ = ("args", "bucket", "callback")

    def __init__(
        self,
        callback: Callable[..., None],
        args: tuple[object, ...],
        bucket: dict[LongTimer, None],
    ) -> None:
        self.callback: Callable[..., None] | None = callback
        self.args = args
        self.bucket: dict[LongTimer, None] | None = bucket

    def cancel(self) -> None:
        bucket = self.bucket
        if bucket is not None:
            bucket.pop(self, None)
            self.bucket = None
        self.callback = None
        self.args = ()


class TimerWheel:
    """Timers rounded up to the next ``tick``, fired by one loop timer while any is armed."""

    __slots__ = (
        "_done",
        "_due",
        "_handle",
        "_long",
        "_loop",
        "_per_second",
        "_slots",
        "_tick",
        "_time",
        "now",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.01) -> None:
        self._loop = loop
        self._time = loop.time
        # The Scheduler's now(): the loop's own clock, without a call in between.
        self.now: Callable[[], float] = loop.time
        self._tick = tick
        self._per_second = 1.0 / tick
        self._slots: dict[int, list[Timer]] = {}
        self._due: list[int] = []  # heap of the slots in _slots
        # Every slot up to here has fired; slots are computed as in call_later.
        self._done = int(loop.time() * self._per_second)
        self._handle: asyncio.TimerHandle | None = None
        # Long bucket number (deadline / LONG_TICK_S, rounded up) -> its timers.
        self._long: dict[int, dict[LongTimer, None]] = {}

    def call_later(self, delay: float, callback: Callable[..., None], *args: object) -> Cancellable:
        if delay > HORIZON_S:
            return self._call_long(delay, callback, args)
        timer = Timer(callback, args)
        # Rounded up to a slot boundary (an exact boundary goes one slot later: a tick
        # late at most, never early).
        slot = int((self._time() + delay) * self._per_second) + 1
        if slot <= self._done:
            slot = self._done + 1
        bucket = self._slots.get(slot)
        if bucket is not None:
            bucket.append(timer)
            return timer
        self._slots[slot] = [timer]
        heapq.heappush(self._due, slot)
        if self._due[0] == slot:
            # The earliest slot changed: wake for it instead.
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self._loop.call_at(slot * self._tick, self._fire)
        return timer

    def _call_long(
        self, delay: float, callback: Callable[..., None], args: tuple[object, ...]
    ) -> LongTimer:
        number = int((self._time() + delay) / LONG_TICK_S) + 1
        bucket = self._long.get(number)
        if bucket is None:
            bucket = self._long[number] = {}
            self._loop.call_at(number * LONG_TICK_S, self._fire_long, number)
        timer = LongTimer(callback, args, bucket)
        bucket[timer] = None
        return timer

    def _fire_long(self, number: int) -> None:
        bucket = self._long.pop(number, None)
        if not bucket:
            return
        for timer in list(bucket):
            callback = timer.callback
            if callback is None:
                continue
            args = timer.args
            timer.bucket = None
            timer.cancel()
            try:
                callback(*args)
            except Exception:
                log.exception("timer callback %r failed", callback)

    def _fire(self) -> None:
        self._handle = None
        now_slot = int(self._time() * self._per_second)
        slots, due = self._slots, self._due
        while due and due[0] <= now_slot:
            bucket = slots.pop(heapq.heappop(due))
            for timer in bucket:
                callback = timer.callback
                if callback is None:
                    continue
                args = timer.args
                timer.cancel()
                try:
                    callback(*args)
                except Exception:
                    # As the event loop does for its own handles: report, keep going.
                    log.exception("timer callback %r failed", callback)
        self._done = max(self._done, now_slot)
        if due and self._handle is None:
            self._handle = self._loop.call_at(due[0] * self._tick, self._fire)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._slots.clear()
        self._due.clear()
        for bucket in self._long.values():
            for timer in list(bucket):
                timer.cancel()
        self._long.clear()

    def __len__(self) -> int:
        short = sum(1 for bucket in self._slots.values() for t in bucket if not t.cancelled)
        return short + sum(len(bucket) for bucket in self._long.values())
