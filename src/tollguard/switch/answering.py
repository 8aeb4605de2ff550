"""Answering the customer: the switch as the UAS of the customer's INVITE.

What the customer sees of its call comes from here: the provisional responses of the
gateway (or of any fork, RFC 3261 §16.7 step 5) relayed under the switch's own To tag,
the 200 when a gateway answers (resent until the ACK, RFC 3261 §13.3.1.4; a 2xx never
acknowledged means the customer is gone), or the final failure (resent until the ACK,
Timer G/H). The INVITE's own retransmissions get
the last response again, and a CANCEL that matches it (§9.2) stops the gateway attempt
and ends the call with 487. The timers that end an answered call from this side — the
missing ACK, the customer's duration limit, an expired session timer — hang up here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tollguard.domain.cdr import HangupSide
from tollguard.sip.headers import parse_via
from tollguard.sip.message import Request, Response
from tollguard.switch.attempts import Attempts
from tollguard.switch.call import Call, CallState, GatewayAttempt
from tollguard.switch.credit import CallFunds
from tollguard.switch.media import REASON_MEDIA_TIMEOUT, MediaHooks
from tollguard.switch.q850 import REASON_MAX_DURATION, REASON_TIMER_EXPIRY, reasons_of
from tollguard.switch.retransmit import Retransmitter
from tollguard.switch.session_timer import SessionTimers
from tollguard.switch.signalling import ALLOW, Signalling
from tollguard.switch.teardown import Teardown
from tollguard.switch.timers import Scheduler
from tollguard.switch.wire import Peer, render_response

__all__ = ["CustomerInvite"]

log = logging.getLogger(__name__)


class CustomerInvite:
    """The customer's INVITE transaction and the timers of the answered call."""

    __slots__ = (
        "_media",
        "_retransmitter",
        "_scheduler",
        "_sessions",
        "_sig",
        "_teardown",
        "_wall",
        "attempts",
        "funds",
    )

    def __init__(  # noqa: PLR0917 (the switch's parts an answer to the customer touches)
        self,
        signalling: Signalling,
        retransmitter: Retransmitter,
        scheduler: Scheduler,
        wall: Callable[[], float],
        media: MediaHooks,
        sessions: SessionTimers,
        teardown: Teardown,
    ) -> None:
        self._sig = signalling
        self._retransmitter = retransmitter
        self._scheduler = scheduler
        self._wall = wall
        self._media = media
        self._sessions = sessions
        self._teardown = teardown
        # Set once the attempts exist (they report to this object).
        self.attempts: Attempts | None = None
        self.funds: CallFunds | None = None

    def progress(self, call: Call, attempt: GatewayAttempt, response: Response) -> None:
        """Relay a gateway's provisional response (180, 183 ...) under our To tag.

        While several forks ring, their session descriptions (early media) are not
        relayed: the caller has one dialog with the switch and its media backend one
        callee side, which only the fork that answers may take.
        """
        body = response.body
        content_type = None
        if body:
            forking = call.forking
            if forking is not None and len(forking.live) > 1:
                body = b""
            else:
                content_type = response.content_type
                body = self._media.answer(call, attempt.leg, body, content_type)
        extra = (self._sig.contact(call.a.peer.transport),)
        self._sig.out(
            render_response(
                response.status,
                response.reason,
                call.invite_head,
                extra,
                body=body,
                content_type=content_type,
            ),
            call.a.peer,
        )

    def answered(self, call: Call, attempt: GatewayAttempt, response: Response) -> None:
        """The gateway answered: the call is up; 200 to the customer."""
        call.enter(CallState.ANSWERED)
        call.answered_at = self._wall()
        call.final_status = response.status
        call.final_reason = response.reason
        body = response.body
        content_type = None
        if body:
            content_type = response.content_type
            body = self._media.answer(call, attempt.leg, body, content_type)
        self._media.answered(call)
        extra: tuple[str, ...] = (self._sig.contact(call.a.peer.transport), f"Allow: {ALLOW}")
        session = call.a.session
        if session is not None:
            extra += self._sessions.response_lines(call.a)
            session.sdp, session.content_type = body, content_type
        data = render_response(
            200, "OK", call.invite_head, extra, body=body, content_type=content_type
        )
        call.last_final = data
        # §13.3.1.4: a 2xx never acknowledged means the customer is gone: hang up.
        call.final_out = self._retransmitter.final_response(
            data, call.a.peer, lambda: self._no_ack(call)
        )
        self._sessions.start(call)
        if call.credit is not None and self.funds is not None:
            self.funds.answered(call)
        customer = call.customer
        assert customer is not None
        if customer.max_call_duration_s > 0:
            call.duration_timer = self._scheduler.call_later(
                customer.max_call_duration_s, self._max_duration, call
            )

    def reject(  # noqa: PLR0917 (the attempts' failure callback)
        self,
        call: Call,
        status: int,
        reason: str,
        side: HangupSide,
        cause: int | None,
        extra: tuple[str, ...],
    ) -> None:
        """Send the customer a final failure and end the call."""
        if cause is not None:
            text = reason.replace('"', "'")
            extra = (*extra, f'Reason: Q.850;cause={cause};text="{text}"')
        data = render_response(status, reason, call.invite_head, extra)
        call.last_final = data
        call.final_status = status
        call.final_reason = reason
        call.hangup_side = side
        call.final_out = self._retransmitter.final_response(data, call.a.peer)
        self._teardown.end(call, cause)

    def acked(self, call: Call) -> None:
        if call.final_out is not None:
            call.final_out.cancel()
            call.final_out = None

    def hung_up_early(self, call: Call, request: Request) -> None:
        """A BYE in the early dialog ends the call like a CANCEL would (RFC 3261 §15)."""
        assert self.attempts is not None
        self.attempts.abort(call, "caller hung up", reasons_of(request))
        self.reject(call, 487, "Request Terminated", HangupSide.CALLER, None, ())

    def transaction_request(self, call: Call, request: Request, peer: Peer) -> None:
        """The customer's INVITE again, its CANCEL or its ACK (no To tag of ours)."""
        method = request.method
        if method == "INVITE":
            if call.last_final:
                self._sig.out(call.last_final, peer)
            elif call.state is CallState.ROUTING:
                self._sig.respond(request, peer, 100)
        elif method == "CANCEL":
            if request.vias[0].branch != parse_via(call.invite_via)[0].branch:
                # RFC 3261 §9.2: a CANCEL matches the INVITE's transaction.
                self._sig.respond(request, peer, 481, to_tag=call.a.local_tag)
                return
            # RFC 3261 §9.2: 200 to the CANCEL, 487 to the INVITE, CANCEL downstream.
            self._sig.respond(request, peer, 200, to_tag=call.a.local_tag)
            if call.state is CallState.ROUTING:
                assert self.attempts is not None
                self.attempts.abort(call, "cancelled", reasons_of(request))
                self.reject(call, 487, "Request Terminated", HangupSide.CALLER, None, ())
        elif method == "ACK":
            self.acked(call)
        else:
            self._sig.respond(request, peer, 481, to_tag=call.a.local_tag)

    def _no_ack(self, call: Call) -> None:
        if call.state is CallState.ANSWERED:
            log.info("call %s: no ACK for our 2xx, hanging up", call.a.call_id)
            self._teardown.hangup(call, HangupSide.SWITCH, reasons=(REASON_TIMER_EXPIRY,))

    def _max_duration(self, call: Call) -> None:
        call.duration_timer = None
        if call.state is CallState.ANSWERED:
            self._teardown.hangup(call, HangupSide.SWITCH, reasons=(REASON_MAX_DURATION,))

    def media_over(self, call: Call) -> None:
        """The media backend saw no RTP for the media timeout: end the call."""
        if call.state is CallState.ANSWERED:
            log.info("call %s: media timeout, hanging up", call.a.call_id)
            self._teardown.hangup(call, HangupSide.SWITCH, reasons=(REASON_MEDIA_TIMEOUT,))

    def session_over(self, call: Call, reasons: tuple[str, ...]) -> None:
        """A leg's session timer expired or its refresh failed: end the call."""
        if call.state is CallState.ANSWERED:
            self._teardown.hangup(call, HangupSide.SWITCH, reasons=reasons)
