"""A clock that tests move by hand: the switch's scheduler and wall clock in one.

Timers fire only inside :meth:`ManualClock.advance`, in deadline order (ties in the order
they were set), each seeing ``now()`` at its own deadline; timers set while firing fire
in the same call when they fall due before its end. Nothing sleeps.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from tollguard.switch.timers import Timer

# 2026-11-01T00:00:00Z: wall-clock time is this epoch plus the monotonic time.
EPOCH = 1_793_491_200.0


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return EPOCH + self._now

    def call_later(self, delay: float, callback: Callable[..., None], *args: object) -> Timer:
        timer = Timer(callback, args)
        heapq.heappush(self._heap, (self._now + max(delay, 0.0), next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, firing every timer that falls due."""
        end = self._now + seconds
        while self._heap and self._heap[0][0] <= end:
            due, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, due)
            callback, args = timer.callback, timer.args
            if callback is None:
                continue
            timer.cancel()
            callback(*args)
        self._now = end

    def pending(self) -> int:
        """Timers armed and not cancelled."""
        return sum(1 for _, _, timer in self._heap if not timer.cancelled)
