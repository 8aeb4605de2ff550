"""Credit control on the call path: money reserved before a call, never overspent.

Over :class:`~tollguard.domain.credit.CreditControl` (the rules) and its live store:

* at admission (:meth:`CallFunds.admit`, from :mod:`.admission`), the first slice of the
  call is reserved against the customer's balance (prepaid) or credit limit (postpaid)
  before any gateway is tried; a customer who cannot pay for the first increment is
  refused with ``402 Payment Required`` (Q.850 cause 21);
* from the answer (:meth:`CallFunds.answered`), the reservation is extended slice by
  slice a little before it runs out; when it can grow no more the call is ended with
  BYE on both legs at the end of the last reserved increment,
  ``Reason: Q.850;cause=31;text="Credit exhausted"``;
* at the end (:meth:`CallFunds.settle`, from :mod:`.teardown`), the exact charge is
  committed and the rest of the reservation released; the charge is the CDR's sell
  side, and the CDR writer posts it to the ledger with the CDR.

Many calls of one customer share one balance: each reserves from what the others have
not, so their charges together never exceed what was available.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tollguard.domain.credit import (
    CREDIT_EXHAUSTED_CAUSE,
    CREDIT_EXHAUSTED_TEXT,
    CallCredit,
    CreditControl,
    Deadline,
)
from tollguard.domain.plan import Customer, Rate, RateCard
from tollguard.domain.rating import Charge
from tollguard.domain.routing import Rejection
from tollguard.switch.call import Call, CallState
from tollguard.switch.timers import Scheduler

__all__ = ["REASON_CREDIT_EXHAUSTED", "CallFunds"]

log = logging.getLogger(__name__)

REASON_CREDIT_EXHAUSTED = f'Q.850;cause={CREDIT_EXHAUSTED_CAUSE};text="{CREDIT_EXHAUSTED_TEXT}"'


class CallFunds:
    """Reserves, extends and settles the funds of every call of the switch."""

    __slots__ = ("_scheduler", "_wall", "control", "on_exhausted")

    def __init__(
        self, control: CreditControl, scheduler: Scheduler, wall: Callable[[], float]
    ) -> None:
        self.control = control
        self._scheduler = scheduler
        self._wall = wall
        # End an answered call whose funds ran out (BYE on both legs).
        self.on_exhausted: Callable[[Call], None] = lambda call: None

    def admit(
        self, key: str, customer: Customer, rate: Rate, card: RateCard
    ) -> CallCredit | Rejection:
        """Reserve the first slice of a new call, or say why it cannot be paid for."""
        verdict = self.control.admit(key, customer, rate, card, self._wall())
        if isinstance(verdict, CallCredit):
            return verdict
        return Rejection(verdict.status, verdict.reason, verdict.q850_cause)

    def answered(self, call: Call) -> None:
        """The call was answered: its talk time runs against the reservation."""
        credit = call.credit
        if credit is None:
            return
        self._arm(call, self.control.answered(credit, self._wall()))

    def _arm(self, call: Call, deadline: Deadline | None) -> None:
        if deadline is None or call.answered_at is None:
            return  # the reservation covers the longest call allowed
        delay = call.answered_at + deadline.at_ms / 1000 - self._wall()
        call.credit_timer = self._scheduler.call_later(max(delay, 0.0), self._due, call, deadline)

    def _due(self, call: Call, deadline: Deadline) -> None:
        call.credit_timer = None
        credit = call.credit
        if call.state is not CallState.ANSWERED or credit is None or call.answered_at is None:
            return
        if deadline.hang_up:
            log.info("call %s: credit exhausted", call.call_id, extra={"call_id": call.call_id})
            self.on_exhausted(call)
            return
        now = self._wall()
        elapsed_ms = max(0, int((now - call.answered_at) * 1000))
        self._arm(call, self.control.extend(credit, elapsed_ms, now))

    def settle(self, call: Call, ended: float) -> Charge | None:
        """The call ended at ``ended``: commit its charge, release the rest (once)."""
        if call.credit_timer is not None:
            call.credit_timer.cancel()
            call.credit_timer = None
        credit = call.credit
        if credit is None or credit.settled:
            return None
        duration_ms = 0
        if call.answered_at is not None:
            duration_ms = max(0, int((ended - call.answered_at) * 1000))
        charge = self.control.settle(credit, duration_ms, ended)
        call.charge = charge
        return charge

    def release(self, credit: CallCredit) -> None:
        """A reservation whose call was never set up (dropped after admission)."""
        if not credit.settled:
            self.control.release(credit, self._wall())
