"""Gateway attempts and failover: the provider side of a call until one gateway answers.

The route gives the gateways to try in order. Each attempt starts at the switch with a
new Call-ID, From tag and branch (topology hiding); gateways at their channel limit are
skipped. An attempt is left — with a CANCEL once it sent a provisional response (RFC 3261
§9.1), with a Reason saying why (RFC 3326) — when the gateway sends no ringing within the
setup timeout or rings longer than the ring timeout, and the next one is tried; a final
failure moves on when the failover policy lists its code. A 2xx that comes after the
switch gave up on the attempt is acknowledged and ended with a BYE at once.

Inbound and internal calls (:mod:`.inbound`) go through the same machinery with
:class:`~tollguard.switch.call.Delivery` values instead of gateways: a registered contact
gets the INVITE over the path its REGISTER came by (the connection included) with the
bound contact as Request-URI; a trunk address like a gateway. They hold no gateway
channel, and :meth:`Delivery.moves_on` replaces the failover policy.

Registered contacts are forked in parallel (RFC 3261 §16.6, §16.7): the contacts of one
q value, highest first, ring at once (:class:`~tollguard.switch.call.Forking`), each a
gateway attempt of its own. The first 2xx wins and every other fork of the group is
cancelled with ``Reason: SIP;cause=200;text="Call completed elsewhere"`` (RFC 3326); a
fork that answers after that is acknowledged and ended with a BYE like any answer that
comes too late. A 6xx ends the search at once (the other forks are cancelled); any other
failure leaves the group to its other forks, and once they have all failed, or the
group rang for its ring timeout (``sip.fork_ring_timeout_s`` when a group of a lower q
follows, else ``sip.gateway_ring_timeout_s``, from the group's first ringing), the next
group rings. With none left the caller gets the best of the forks' final failures
(:func:`~tollguard.switch.call.preference`). A fork over a phone's RFC 5626 flow that did
not reach the phone is tried again over its next flow.

What the customer sees is not decided here: the owner is told of progress, of the answer
and of the final failure through the callbacks it passes in.

Each attempt gets its line in the CDR when its INVITE transaction is over: its final
response (the 487 that answers the switch's CANCEL included, with why the switch
cancelled), or at once when the switch gave up before any response came (nothing more
will be learnt in time). ``on_settled`` tells the owner, which writes a CDR held back for
it; :meth:`Attempts.settle_all` closes the attempts still waiting when a call is
forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tollguard.config import SipSettings
from tollguard.domain.cdr import Attempt, HangupSide
from tollguard.domain.plan import Gateway, SipTransport
from tollguard.domain.routing import RouteCandidate, failover_policy
from tollguard.sip.message import Response
from tollguard.switch.call import (
    LIVE_ATTEMPT,
    AttemptState,
    Call,
    CallState,
    Delivery,
    FinalAnswer,
    Forking,
    GatewayAttempt,
    Leg,
    TransactionKey,
)
from tollguard.switch.dialogs import DialogTable
from tollguard.switch.guard import Guard
from tollguard.switch.q850 import (
    REASON_ELSEWHERE,
    REASON_NO_ANSWER,
    REASON_TIMER_EXPIRY,
    reason_lines,
)
from tollguard.switch.retransmit import Retransmitter
from tollguard.switch.session_timer import SessionTimers
from tollguard.switch.signalling import ALLOW, Signalling
from tollguard.switch.timers import Scheduler
from tollguard.switch.wire import Peer, reason_phrase, render_request, uri_of
from tollguard.transport import Address

__all__ = ["Attempts", "GatewayChannels"]

# A provisional (non-100) response of an attempt, to relay to the customer.
Progress = Callable[[Call, GatewayAttempt, Response], None]
# The current attempt answered: the call is answered.
Answer = Callable[[Call, GatewayAttempt, Response], None]
# No attempt left: (call, status, reason, hangup side, Q.850 cause, extra header lines).
Failure = Callable[[Call, int, str, HangupSide, int | None, tuple[str, ...]], None]
# End an answered dialog on a leg with a BYE carrying these Reason values.
Bye = Callable[[Leg, tuple[str, ...]], None]
# An attempt of this call has its CDR line now.
Settled = Callable[[Call], None]


class GatewayChannels:
    """Calls in progress per gateway, against each gateway's channel limit and, through
    the guard, its fraud limits (concurrent calls, calls per second ...)."""

    __slots__ = ("counts", "guard")

    def __init__(self, guard: Guard | None = None) -> None:
        self.counts: dict[int, int] = {}
        self.guard = guard

    def take(self, gateway: Gateway) -> bool:
        """One more call on ``gateway``, if its limits allow it."""
        count = self.counts.get(gateway.id, 0)
        if gateway.max_channels and count >= gateway.max_channels:
            return False
        guard = self.guard
        if guard is not None and not guard.admit_gateway(gateway.id):
            return False
        self.counts[gateway.id] = count + 1
        return True

    def give_back(self, gateway: Gateway) -> None:
        count = self.counts.get(gateway.id, 0) - 1
        if count > 0:
            self.counts[gateway.id] = count
        else:
            self.counts.pop(gateway.id, None)
        if self.guard is not None:
            self.guard.release_gateway(gateway.id)

    def release(self, attempt: GatewayAttempt) -> None:
        """The attempt no longer holds its gateway's channel (once only)."""
        candidate = attempt.candidate
        if attempt.holds_channel and isinstance(candidate, RouteCandidate):
            attempt.holds_channel = False
            self.give_back(candidate.gateway)


class Attempts:
    """Starts, times, cancels and fails over the gateway attempts of every call."""

    def __init__(  # noqa: PLR0917 (the switch's parts this concern uses, then its callbacks)
        self,
        settings: SipSettings,
        signalling: Signalling,
        retransmitter: Retransmitter,
        scheduler: Scheduler,
        wall: Callable[[], float],
        dialogs: DialogTable,
        channels: GatewayChannels,
        sessions: SessionTimers,
        *,
        on_progress: Progress,
        on_answer: Answer,
        on_failure: Failure,
        on_settled: Settled,
        bye: Bye,
    ) -> None:
        self._settings = settings
        self._sig = signalling
        self._retransmitter = retransmitter
        self._scheduler = scheduler
        self._wall = wall
        self._dialogs = dialogs
        self.channels = channels
        self._sessions = sessions
        self._failover = failover_policy(settings.failover_codes)
        self._on_progress = on_progress
        self._on_answer = on_answer
        self._on_failure = on_failure
        self._on_settled = on_settled
        self._bye = bye

    # -- starting ------------------------------------------------------------------------

    def next(self, call: Call) -> None:
        """Try the next gateway of the route (or ring the next group of contacts); with
        none left, the call fails."""
        channels = self.channels
        candidates = call.candidates
        while call.next_candidate < len(candidates):
            candidate = candidates[call.next_candidate]
            if isinstance(candidate, RouteCandidate):
                call.next_candidate += 1
                if not channels.take(candidate.gateway):
                    continue
            elif candidate.contact:
                self._ring_group(call, candidate.q)
                return
            else:
                call.next_candidate += 1
            call.attempt = self._start(call, candidate)
            return
        forking = call.forking
        if forking is not None and forking.best is not None:
            status, reason, side, extra = forking.best
            self._on_failure(call, status, reason, side, None, extra)
            return
        failure = call.tried[-1].failure if call.tried else None
        if failure is not None:
            status, _, gave_up = failure
            status = status if status >= 300 else 503
            # A gateway that refused ended the call; a timeout is the switch giving up.
            side = HangupSide.SWITCH if gave_up else HangupSide.CALLEE
            self._on_failure(call, status, reason_phrase(status), side, None, ())
        else:
            # Every gateway is at its channel limit: no circuit available (Q.850 34).
            self._on_failure(call, 503, "Service Unavailable", HangupSide.SWITCH, 34, ())

    def _ring_group(self, call: Call, q: int) -> None:
        """Ring every contact of the next group (those of q value ``q``) at once."""
        forking = call.forking
        if forking is None:
            forking = call.forking = Forking()
        candidates = call.candidates
        first = end = call.next_candidate
        while end < len(candidates):
            candidate = candidates[end]
            if not (isinstance(candidate, Delivery) and candidate.contact and candidate.q == q):
                break
            end += 1
        call.next_candidate = end
        for candidate in candidates[first:end]:
            assert isinstance(candidate, Delivery)
            forking.live.append(self._start(call, candidate))

    def _start(
        self,
        call: Call,
        candidate: RouteCandidate | Delivery,
        session_lines: tuple[str, ...] | None = None,
    ) -> GatewayAttempt:
        if isinstance(candidate, Delivery):
            peer, invite_uri = candidate.peer, candidate.uri
        else:
            gateway = candidate.gateway
            tparam = (
                "" if gateway.transport is SipTransport.UDP else f";transport={gateway.transport}"
            )
            invite_uri = f"sip:{candidate.dial_number}@{gateway.host}:{gateway.port}{tparam}"
            peer = Peer((gateway.host, gateway.port), str(gateway.transport))
        transport = peer.transport
        sig = self._sig
        ids = sig.ids
        tag = ids.tag()
        leg = Leg(
            peer,
            ids.call_id(),
            tag,
            f"<sip:{call.caller}@{sig.host}>;tag={tag}",
            f"<{invite_uri}>",
            invite_uri,
            1,
        )
        via = sig.via(transport)
        attempt = GatewayAttempt(call, candidate, leg, invite_uri, via, self._wall())
        call.tried.append(attempt)
        self._dialogs.add_attempt(attempt)
        data = render_request(
            "INVITE",
            invite_uri,
            f"Via: {via}\r\nMax-Forwards: {max(call.max_forwards - 1, 0)}\r\n"
            f"From: {leg.local}\r\nTo: {leg.remote}\r\nCall-ID: {leg.call_id}\r\n"
            f"CSeq: 1 INVITE\r\n{sig.contact(transport)}\r\nAllow: {ALLOW}\r\n"
            f"User-Agent: {self._settings.user_agent}\r\n",
            self._sessions.offer_lines if session_lines is None else session_lines,
            body=call.body,
            content_type=call.content_type,
        )
        setup = self._settings.gateway_setup_timeout_s
        attempt.invite = self._retransmitter.request(
            data, leg.peer, invite=True, on_timeout=None, deadline=setup
        )
        attempt.setup_timer = self._scheduler.call_later(setup, self._setup_timeout, attempt)
        return attempt

    # -- giving up -----------------------------------------------------------------------

    def _setup_timeout(self, attempt: GatewayAttempt) -> None:
        attempt.setup_timer = None
        self._abandon(attempt, "setup timeout", REASON_TIMER_EXPIRY)

    def _ring_timeout(self, attempt: GatewayAttempt) -> None:
        attempt.ring_timer = None
        self._abandon(attempt, "ring timeout", REASON_NO_ANSWER)

    def _abandon(self, attempt: GatewayAttempt, why: str, reason: str) -> None:
        """Give up on a gateway that is too slow, then try the next one."""
        call = attempt.call
        if attempt.state not in LIVE_ATTEMPT:
            return
        self._give_up(attempt, 408, why, (reason,))
        if call.state is not CallState.ROUTING:
            return
        if call.attempt is attempt:
            call.attempt = None
            self.next(call)
        elif call.ringing_fork(attempt):
            self._fork_failed(call, attempt, (408, reason_phrase(408), HangupSide.SWITCH, ()))

    def _group_ring_timeout(self, call: Call) -> None:
        """The group rang for its ring timeout: give up on its forks, ring the next."""
        forking = call.forking
        assert forking is not None
        forking.ring_timer = None
        if call.state is not CallState.ROUTING:
            return
        self._stop_forks(forking, 408, "ring timeout", (REASON_NO_ANSWER,))
        forking.consider((408, reason_phrase(408), HangupSide.SWITCH, ()))
        self.next(call)

    def abort(self, call: Call, why: str, reasons: tuple[str, ...] = ()) -> None:
        """Stop the attempt in progress, or every fork, (CANCEL each, with ``reasons``)
        and try no other."""
        attempt = call.attempt
        if attempt is not None:
            self._give_up(attempt, 0, why, reasons)
            call.attempt = None
        if call.forking is not None:
            self._stop_forks(call.forking, 0, why, reasons)

    def _stop_forks(
        self, forking: Forking, status: int, why: str, reasons: tuple[str, ...]
    ) -> None:
        """Give up on every fork still ringing (CANCEL, with ``reasons``)."""
        forking.stop_timer()
        live = forking.live
        forking.live = []
        for fork in live:
            self._give_up(fork, status, why, reasons)

    def _give_up(
        self, attempt: GatewayAttempt, status: int, why: str, reasons: tuple[str, ...]
    ) -> None:
        """CANCEL the attempt; ``status`` is what it counts as until a final response says
        more (408 for a timeout, 0 when the caller went away)."""
        attempt.stop_timers()
        attempt.reasons = reasons
        attempt.why = why
        attempt.failure = (status, why, True)
        self.channels.release(attempt)
        self._cancel(attempt)
        if attempt.state is AttemptState.CANCEL_PENDING:
            # No response at all: the CANCEL waits for one that may never come.
            self._settle(attempt, status, why)

    def _cancel(self, attempt: GatewayAttempt) -> None:
        # RFC 3261 §9.1: CANCEL only once a provisional response came.
        if attempt.state is AttemptState.CALLING:
            attempt.enter(AttemptState.CANCEL_PENDING)
            return
        attempt.enter(AttemptState.CANCELLED)
        if attempt.invite is not None:
            attempt.invite.cancel()
        leg = attempt.leg
        data = render_request(
            "CANCEL",
            attempt.invite_uri,
            f"Via: {attempt.via}\r\nMax-Forwards: 70\r\nFrom: {leg.local}\r\n"
            f"To: {leg.remote}\r\nCall-ID: {leg.call_id}\r\nCSeq: 1 CANCEL\r\n",
            reason_lines(attempt.reasons),
        )
        leg.pending[TransactionKey(1, "CANCEL")] = self._retransmitter.request(
            data, leg.peer, invite=False, on_timeout=None
        )

    def _settle(self, attempt: GatewayAttempt, status: int, reason: str) -> None:
        """The attempt's CDR line: what its INVITE transaction ended with."""
        if attempt.record is not None:
            return
        candidate = attempt.candidate
        started = datetime.fromtimestamp(attempt.started_at, UTC)
        if isinstance(candidate, Delivery):
            attempt.record = Attempt(None, None, started, status, reason, candidate.uri)
        else:
            attempt.record = Attempt(
                candidate.provider.id, candidate.gateway.id, started, status, reason
            )
        self._on_settled(attempt.call)

    def settle_all(self, call: Call) -> None:
        """The call is being forgotten: attempts still waiting get their line as they are."""
        for attempt in call.tried:
            if attempt.record is None:
                status = attempt.failure[0] if attempt.failure is not None else 408
                self._settle(attempt, status, f"{attempt.why or 'no answer'}, no final response")

    def _failed(
        self, attempt: GatewayAttempt, status: int, reason: str, response: Response | None
    ) -> None:
        call = attempt.call
        attempt.stop_timers()
        attempt.enter(AttemptState.FAILED)
        attempt.failure = (status, reason, False)
        self.channels.release(attempt)
        self._settle(attempt, status, reason)
        if call.state is not CallState.ROUTING:
            return
        if call.attempt is not attempt:
            if call.ringing_fork(attempt):
                extra = _reason_lines_of(response)
                self._fork_failed(
                    call, attempt, (status, reason, HangupSide.CALLEE, extra), response
                )
            return
        call.attempt = None
        if status == 422 and response is not None:
            retry = self._retry_interval(call, attempt, response)
            if retry is not None:
                call.attempt = retry
                return
        candidate = attempt.candidate
        moves_on = (
            candidate.moves_on(status)
            if isinstance(candidate, Delivery)
            else self._failover.should_failover(status)
        )
        if moves_on and call.next_candidate < len(call.candidates):
            self.next(call)
            return
        extra = _reason_lines_of(response)
        self._on_failure(call, status, reason, HangupSide.CALLEE, None, extra)

    def _fork_failed(
        self,
        call: Call,
        fork: GatewayAttempt,
        answer: FinalAnswer,
        response: Response | None = None,
    ) -> None:
        """A fork of the ringing group failed with ``answer`` (RFC 3261 §16.7)."""
        forking = call.forking
        assert forking is not None
        forking.live.remove(fork)
        status, reason, side, extra = answer
        candidate = fork.candidate
        assert isinstance(candidate, Delivery)
        if not candidate.moves_on(status):
            # A 6xx (§16.7 step 5): nobody of the account takes the call; the search ends.
            declined = f'SIP;cause={status};text="{reason_phrase(status)}"'
            self._stop_forks(forking, 0, "declined elsewhere", (declined,))
            call.next_candidate = len(call.candidates)
            self._on_failure(call, status, reason, side, None, extra)
            return
        fallback = candidate.fallback
        if fallback is not None and candidate.flow_failed(status):
            forking.live.append(self._start(call, fallback))  # RFC 5626 §5.2: next flow
            return
        if status == 422 and response is not None:
            retry = self._retry_interval(call, fork, response)
            if retry is not None:
                forking.live.append(retry)
                return
        forking.consider(answer)
        if not forking.live:
            forking.stop_timer()
            self.next(call)

    def _retry_interval(
        self, call: Call, attempt: GatewayAttempt, response: Response
    ) -> GatewayAttempt | None:
        """422 (RFC 4028 §7.4): try the same gateway once more with the interval it asks."""
        if any(
            tried.candidate is attempt.candidate and tried is not attempt for tried in call.tried
        ):
            return None
        lines = self._sessions.retry_lines(response)
        candidate = attempt.candidate
        if lines is None or (
            isinstance(candidate, RouteCandidate) and not self.channels.take(candidate.gateway)
        ):
            return None
        return self._start(call, attempt.candidate, lines)

    def transport_failed(self, transport: str, address: Address) -> None:
        """A connection to ``address`` failed: attempts waiting on it fail with 503."""
        for call, attempt in list(self._dialogs.entries.values()):
            if (
                attempt is not None
                and attempt.leg.peer.address == address
                and attempt.leg.peer.transport == transport
                and attempt.state is AttemptState.CALLING
                and (call.attempt is attempt or call.ringing_fork(attempt))
            ):
                self._failed(attempt, 503, "Service Unavailable", None)

    # -- responses to the INVITE -----------------------------------------------------------

    def invite_response(self, call: Call, attempt: GatewayAttempt, response: Response) -> None:
        status = response.status
        if attempt.invite is not None:
            attempt.invite.cancel()  # any response stops Timer A (RFC 3261 §17.1.1.2)
        if status < 200:
            self._provisional(call, attempt, response)
        elif status < 300:
            self._answered(call, attempt, response)
        else:
            self._ack_failure(attempt, response)
            state = attempt.state
            if state in LIVE_ATTEMPT:
                self._failed(attempt, status, response.reason, response)
            elif state is AttemptState.CANCEL_PENDING or state is AttemptState.CANCELLED:
                # Usually the 487 to the switch's CANCEL: recorded with why it was sent.
                attempt.enter(AttemptState.FAILED)
                self._settle(attempt, status, attempt.why)
            # FAILED or ANSWERED: a retransmission or a stray final, acknowledged above.

    def _provisional(self, call: Call, attempt: GatewayAttempt, response: Response) -> None:
        state = attempt.state
        if state is AttemptState.CANCEL_PENDING:
            self._cancel(attempt)  # the provisional makes the pending CANCEL possible
            return
        if state is AttemptState.CALLING:
            attempt.enter(AttemptState.PROCEEDING)
        elif state is not AttemptState.PROCEEDING:
            return
        if response.status == 100:
            return
        if call.attempt is not attempt:
            forking = call.forking
            if forking is None or attempt not in forking.live:
                return
            if attempt.setup_timer is not None:
                attempt.setup_timer.cancel()
                attempt.setup_timer = None
            if forking.ring_timer is None:
                # The group's ring timeout, from its first ringing.
                forking.ring_timer = self._scheduler.call_later(
                    self._group_ring_s(call), self._group_ring_timeout, call
                )
        elif attempt.setup_timer is not None:
            attempt.setup_timer.cancel()
            attempt.setup_timer = None
            attempt.ring_timer = self._scheduler.call_later(
                self._settings.gateway_ring_timeout_s, self._ring_timeout, attempt
            )
        self._on_progress(call, attempt, response)

    def _group_ring_s(self, call: Call) -> float:
        ring = self._settings.gateway_ring_timeout_s
        if call.next_candidate < len(call.candidates):
            # Contacts of a lower q wait for their turn.
            return min(ring, self._settings.fork_ring_timeout_s)
        return ring

    def _answered(self, call: Call, attempt: GatewayAttempt, response: Response) -> None:
        leg = attempt.leg
        if attempt.state is AttemptState.ANSWERED:
            self._ack_2xx(leg)  # a retransmitted 2xx: our ACK was lost (§13.2.2.4)
            return
        headers = response.headers
        if leg.remote.find(";tag=") < 0:
            leg.remote = headers.get("To") or leg.remote
        contact = headers.get("Contact")
        leg.remote_target = uri_of(contact) if contact else attempt.invite_uri
        leg.route_set = tuple(uri_of(v) for v in reversed(headers.get_all("Record-Route")))
        attempt.user_agent = headers.get("Server") or headers.get("User-Agent") or ""
        leg.session = self._sessions.for_gateway(response)
        if leg.session is not None:
            leg.session.sdp, leg.session.content_type = call.body, call.content_type
        previous = attempt.state
        attempt.enter(AttemptState.ANSWERED)
        attempt.stop_timers()
        self._ack_2xx(leg)
        current = call.attempt is attempt
        if (
            call.state is not CallState.ROUTING
            or not (current or call.ringing_fork(attempt))
            or previous not in LIVE_ATTEMPT
        ):
            # Answered after we gave up on it (RFC 3261 §9.1 race), or after another fork
            # won: end it at once. Its channel was released when it was abandoned.
            self._settle(attempt, response.status, f"{attempt.why}, answered too late: BYE")
            self._bye(leg, attempt.reasons)
            return
        if not current:
            # The first fork to answer wins (RFC 3261 §16.7 step 4); the others stop.
            forking = call.forking
            assert forking is not None
            forking.live.remove(attempt)
            self._stop_forks(forking, 0, "call completed elsewhere", (REASON_ELSEWHERE,))
            call.attempt = attempt
        self._settle(attempt, response.status, response.reason)
        self._on_answer(call, attempt, response)

    def _ack_2xx(self, leg: Leg) -> None:
        # The ACK for a 2xx is its own transaction: new branch, to the remote target
        # (RFC 3261 §13.2.2.4, §17.1.1.3).
        head = leg.request_head(self._sig.via(leg.peer.transport), "ACK", 1)
        self._sig.out(render_request("ACK", leg.remote_target, head), leg.peer)

    def _ack_failure(self, attempt: GatewayAttempt, response: Response) -> None:
        # The ACK for a non-2xx final belongs to the INVITE transaction: same branch and
        # Request-URI, the response's To (RFC 3261 §17.1.1.3).
        leg = attempt.leg
        data = render_request(
            "ACK",
            attempt.invite_uri,
            f"Via: {attempt.via}\r\nMax-Forwards: 70\r\nFrom: {leg.local}\r\n"
            f"To: {response.headers.get('To')}\r\nCall-ID: {leg.call_id}\r\nCSeq: 1 ACK\r\n",
        )
        self._sig.out(data, leg.peer)


def _reason_lines_of(response: Response | None) -> tuple[str, ...]:
    """The callee's Reason header lines (its own Q.850 cause says more than our mapping
    of its status code), passed on with a final failure."""
    if response is None:
        return ()
    return tuple(f"Reason: {value}" for value in response.headers.get_all("Reason"))
