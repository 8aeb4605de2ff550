"""The calls the switch knows, by the Call-ID of each of their legs.

Every message is dispatched through this table: the customer leg's Call-ID and each
gateway attempt's map to the call (and the attempt). A call that ended stays known for
64*T1 (Timer J's span) so that late retransmissions are absorbed rather than answered
481, and is then forgotten; ended calls are swept in batches by one timer rather than a
timer each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tollguard.switch.call import Call, GatewayAttempt
from tollguard.switch.retransmit import Retransmitter
from tollguard.switch.timers import Cancellable, Scheduler

__all__ = ["DialogTable"]


class DialogTable:
    """Call-ID -> (call, attempt); the attempt is None for the customer leg."""

    __slots__ = (
        "_ended",
        "_linger",
        "_retransmitter",
        "_scheduler",
        "_sweeper",
        "active_calls",
        "calls_total",
        "entries",
        "on_forget",
    )

    def __init__(self, scheduler: Scheduler, retransmitter: Retransmitter, linger: float) -> None:
        self._scheduler = scheduler
        self._retransmitter = retransmitter
        self._linger = linger
        self.entries: dict[str, tuple[Call, GatewayAttempt | None]] = {}
        self._ended: deque[tuple[float, Call]] = deque()
        self._sweeper: Cancellable | None = None
        # Called with each call as it is forgotten, before its timers stop.
        self.on_forget: Callable[[Call], None] = lambda call: None
        self.active_calls = 0
        self.calls_total = 0

    def add_call(self, call: Call) -> None:
        self.entries[call.a.call_id] = (call, None)
        self.active_calls += 1
        self.calls_total += 1

    def add_attempt(self, attempt: GatewayAttempt) -> None:
        self.entries[attempt.leg.call_id] = (attempt.call, attempt)

    def calls(self) -> list[Call]:
        """The calls not yet forgotten, ended ones included."""
        return [call for call, attempt in self.entries.values() if attempt is None]

    def ended(self, call: Call) -> None:
        """``call`` just ended: forget it once late retransmissions are over."""
        self.active_calls -= 1
        self._ended.append((self._scheduler.now() + self._linger, call))
        if self._sweeper is None:
            self._sweeper = self._scheduler.call_later(self._linger, self._sweep)

    def _sweep(self) -> None:
        now = self._scheduler.now()
        ended = self._ended
        while ended and ended[0][0] <= now:
            self.forget(ended.popleft()[1])
        self._sweeper = (
            self._scheduler.call_later(max(ended[0][0] - now, 0.1), self._sweep) if ended else None
        )

    def forget(self, call: Call) -> None:
        """Drop ``call`` and stop every timer it still has.

        A request still unanswered then (a BYE whose Timer F falls at the same time) is
        given up with it, so that a draining switch does not wait for it.
        """
        self.on_forget(call)
        forget = self._retransmitter.forget
        if call.final_out is not None:
            call.final_out.cancel()
        if call.duration_timer is not None:
            call.duration_timer.cancel()
        if call.forking is not None:
            call.forking.stop_timer()
        for out in call.a.pending.values():
            forget(out)
        for attempt in call.tried:
            attempt.stop_timers()
            for out in attempt.leg.pending.values():
                forget(out)
            self.entries.pop(attempt.leg.call_id, None)
        self.entries.pop(call.a.call_id, None)

    def close(self) -> None:
        """Forget every call (the switch is stopping)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for call in self.calls():
            self.forget(call)
        self._ended.clear()
