"""Teardown: how a call ends, once, whichever side or timer ends it.

An answered call ends with a BYE on each leg whose side did not hang up itself, carrying
the Reason values (RFC 3326) that say why; a Q.850 cause among them is the CDR's. Ending
a call — answered or not — releases what it held (the answering gateway's channel, what
admission took, the media session), hands the call to accounting for its CDR, and leaves
it in the dialog table only to absorb late retransmissions. The CDR waits, when it must,
for the gateway attempts still finishing (the 487 that answers a CANCEL), so that each
attempt is recorded with the answer it really got; it never waits past the moment the
call is forgotten (64*T1).
"""

from __future__ import annotations

from collections.abc import Callable

from tollguard.domain.cdr import HangupSide
from tollguard.switch.accounting import Accounting
from tollguard.switch.admission import Admission
from tollguard.switch.attempts import GatewayChannels
from tollguard.switch.call import Call, CallState, Leg, TransactionKey
from tollguard.switch.dialogs import DialogTable
from tollguard.switch.media import MediaHooks
from tollguard.switch.q850 import q850_of_reasons, reason_lines
from tollguard.switch.retransmit import Retransmitter
from tollguard.switch.session_timer import SessionTimers
from tollguard.switch.signalling import Signalling
from tollguard.switch.wire import render_request

__all__ = ["Teardown"]


class Teardown:
    """Ends calls: BYEs, releases, the CDR."""

    __slots__ = (
        "_accounting",
        "_admission",
        "_channels",
        "_dialogs",
        "_media",
        "_retransmitter",
        "_sessions",
        "_sig",
        "_wall",
        "on_recorded",
        "waiting",
    )

    def __init__(  # noqa: PLR0917 (the switch's parts a call's end touches)
        self,
        signalling: Signalling,
        retransmitter: Retransmitter,
        wall: Callable[[], float],
        dialogs: DialogTable,
        channels: GatewayChannels,
        admission: Admission,
        media: MediaHooks,
        accounting: Accounting,
        sessions: SessionTimers,
    ) -> None:
        self._sig = signalling
        self._retransmitter = retransmitter
        self._wall = wall
        self._dialogs = dialogs
        self._channels = channels
        self._admission = admission
        self._media = media
        self._accounting = accounting
        self._sessions = sessions
        # Ended calls whose CDR waits for an attempt's final response.
        self.waiting: set[Call] = set()
        self.on_recorded: Callable[[], None] = lambda: None

    def bye(self, leg: Leg, reasons: tuple[str, ...] = ()) -> None:
        """End the dialog on ``leg`` (Timer E/F until its 200)."""
        head = self._sig.new_request_head(leg, "BYE")
        leg.pending[TransactionKey(leg.cseq, "BYE")] = self._retransmitter.request(
            render_request("BYE", leg.remote_target, head, reason_lines(reasons)),
            leg.peer,
            invite=False,
            on_timeout=None,
        )

    def hangup(
        self,
        call: Call,
        side: HangupSide,
        *,
        from_customer: bool = False,
        from_provider: bool = False,
        reasons: tuple[str, ...] = (),
    ) -> None:
        """End an answered call: BYE to whichever legs did not hang up themselves."""
        if call.final_out is not None:
            # A BYE either way: no point resending our 2xx.
            call.final_out.cancel()
            call.final_out = None
        if not from_customer:
            self.bye(call.a, reasons)
        if not from_provider and call.attempt is not None:
            self.bye(call.attempt.leg, reasons)
        call.hangup_side = side
        self.end(call, q850_of_reasons(reasons))

    def end(self, call: Call, cause: int | None) -> None:
        """The call is over (the customer has its final answer or a BYE went out)."""
        call.enter(CallState.ENDED)
        if call.duration_timer is not None:
            call.duration_timer.cancel()
            call.duration_timer = None
        self._sessions.stop(call)
        ended = self._wall()
        funds = self._admission.funds
        if funds is not None:
            funds.settle(call, ended)
        if call.attempt is not None:
            self._channels.release(call.attempt)
        if call.admitted and call.customer is not None:
            self._admission.release(call.customer, call.fraud)
            guard = self._admission.guard
            if guard is not None:
                guard.close_call(call.a.peer.address[0])
        call.media = self._media.end(call)
        if call.settled():
            self._accounting.record(call, ended, cause)
        else:
            call.record_due = (ended, cause)
            self.waiting.add(call)
        self._dialogs.ended(call)

    def attempt_settled(self, call: Call) -> None:
        """An attempt of ``call`` has its CDR line: write a CDR that waited for it."""
        due = call.record_due
        if due is not None and call.settled():
            call.record_due = None
            self.waiting.discard(call)
            self._accounting.record(call, *due)
            self.on_recorded()
