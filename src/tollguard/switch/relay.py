"""In-dialog relay: re-INVITE, UPDATE and INFO from one side of an answered call to the other.

The switch is a UA on each leg, so a request from one side becomes a new request on the
other leg (its own CSeq, branch and dialog identifiers) and each response to it goes back
as a response to the original. A 2xx to a relayed INVITE is acknowledged by the switch on
the far leg (RFC 3261 §13.2.2.4); the ACK of the origin ends at the switch. When the far
side never answers (Timer B/F), the origin gets 408 (§8.1.3.1). Overlapping re-INVITEs
are refused as RFC 3261 §14.2 asks, without relaying them.
"""

from __future__ import annotations

import random

from tollguard.sip.message import Request, Response
from tollguard.switch.call import Call, Leg, Relay, TransactionKey
from tollguard.switch.media import MediaHooks
from tollguard.switch.retransmit import Retransmitter
from tollguard.switch.session_timer import SessionTimers
from tollguard.switch.signalling import Signalling, head_of
from tollguard.switch.wire import Peer, render_request, render_response

__all__ = ["RELAYED_METHODS", "InDialogRelay"]

RELAYED_METHODS = frozenset({"INVITE", "UPDATE", "INFO"})
# What refreshes a session (RFC 4028 §7.4, §8.2).
_REFRESHES = frozenset({"INVITE", "UPDATE"})


class InDialogRelay:
    """Relays in-dialog requests and their responses between the legs of a call."""

    __slots__ = ("_media", "_retransmitter", "_retry_rng", "_sessions", "_sig")

    def __init__(
        self,
        signalling: Signalling,
        retransmitter: Retransmitter,
        media: MediaHooks,
        sessions: SessionTimers,
    ) -> None:
        self._sig = signalling
        self._retransmitter = retransmitter
        self._media = media
        self._sessions = sessions
        # Retry-After of a 500 to an overlapping re-INVITE: spread, not secret.
        self._retry_rng = random.Random()

    def overlapping(self, origin: Leg, target: Leg, request: Request, peer: Peer) -> bool:
        """Answer a re-INVITE that overlaps another INVITE on its leg (RFC 3261 §14.2).

        The switch is the UAS of each leg: while an INVITE it relayed *to* the sender is
        unanswered, the sender gets 491 (crossing re-INVITEs, each side retries after a
        random pause); while the sender's own previous INVITE is unanswered, 500 with a
        Retry-After of 0-10 s.
        """
        if origin.relaying_invite():
            self._sig.respond(request, peer, 491)
            return True
        if target.relaying_invite():
            retry = f"Retry-After: {self._retry_rng.randint(0, 10)}"
            self._sig.respond(request, peer, 500, extra=(retry,))
            return True
        return False

    def request(self, call: Call, target: Leg, request: Request, peer: Peer) -> None:
        """Relay ``request``, received from the other side of ``call``, onto ``target``."""
        method = request.method
        head = self._sig.new_request_head(target, method)
        cseq = target.cseq
        extra: tuple[str, ...] = (
            (self._sig.contact(target.peer.transport),) if method == "INVITE" else ()
        )
        body = request.body
        content_type = None
        if body:
            content_type = request.content_type
            body = self._media.reoffer(call, target is not call.a, body, content_type)
        session = target.session
        if session is not None and method in _REFRESHES:
            extra += self._sessions.request_lines(target)
            if body:
                session.sdp, session.content_type = body, content_type
        data = render_request(
            method, target.remote_target, head, extra, body=body, content_type=content_type
        )
        relay = Relay(head_of(request), method, peer)
        target.relays[cseq] = relay

        def timeout() -> None:
            # Timer B/F on the far leg: the origin gets 408 (RFC 3261 §8.1.3.1).
            if target.relays.pop(cseq, None) is not None:
                self._sig.out(render_response(408, "Request Timeout", relay.head), relay.peer)

        target.pending[TransactionKey(cseq, method)] = self._retransmitter.request(
            data, target.peer, invite=method == "INVITE", on_timeout=timeout
        )

    def response(self, call: Call, leg: Leg, response: Response, relay: Relay) -> None:
        """A response came on ``leg`` to a request relayed onto it: pass it back."""
        status = response.status
        if status == 100:
            return
        cseq = response.cseq.seq
        extra: tuple[str, ...] = ()
        if relay.method == "INVITE" and status < 300:
            extra = (self._sig.contact(relay.peer.transport),)
            if status >= 200:
                self._ack(leg, cseq)
        body = response.body
        content_type = None
        if body:
            content_type = response.content_type
            body = self._media.reoffer(call, leg is call.a, body, content_type)
        if 200 <= status < 300 and relay.method in _REFRESHES:
            # The exchange refreshed both legs' sessions (RFC 4028 §7.4, §9).
            origin = call.a if leg is not call.a else call.attempt.leg if call.attempt else None
            self._sessions.refreshed(call, leg)
            if origin is not None and origin.session is not None:
                extra += self._sessions.response_lines(origin)
                if body:
                    origin.session.sdp, origin.session.content_type = body, content_type
                self._sessions.refreshed(call, origin)
        self._sig.out(
            render_response(
                status,
                response.reason,
                relay.head,
                extra,
                body=body,
                content_type=content_type,
            ),
            relay.peer,
        )
        if status >= 200:
            leg.relays.pop(cseq, None)

    def _ack(self, leg: Leg, cseq: int) -> None:
        head = leg.request_head(self._sig.via(leg.peer.transport), "ACK", cseq)
        self._sig.out(render_request("ACK", leg.remote_target, head), leg.peer)
