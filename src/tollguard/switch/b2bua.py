"""The back-to-back user agent: every call is two legs, the customer's (A) and a provider's (B).

The customer leg ends at the switch: its INVITE is answered by us (100 at once, our To tag
on everything after), and nothing of its Via, Contact, Record-Route or Route reaches a
provider; the provider leg starts at the switch with a new Call-ID, From tag and branch
for every gateway tried (topology hiding). Between the legs the switch relays
provisional and final responses, CANCEL, BYE and in-dialog requests (re-INVITE, UPDATE,
INFO) with their responses, and it acknowledges 2xx responses itself on each leg
(RFC 3261 §13.2.2.4, §13.3.1.4).

Transactions are driven here rather than through generic transaction objects: the switch
knows which messages it sends on which leg, so each call keeps its own few timers (on a
:class:`~tollguard.switch.timers.TimerWheel`) and retransmits with the RFC 3261 §17
timers — A for an INVITE
towards a gateway, E/F for BYE/CANCEL/UPDATE/INFO, G/H for a final response to the
customer until its ACK — and the 2xx retransmission of §13.3.1.4. Over TCP/TLS nothing is
retransmitted (§17.1.1.2). Requests that repeat a transaction already answered get the
last response again. A finished call stays known for 64*T1 (Timer J's span) so that late
retransmissions are absorbed rather than answered 481.

Responses to the customer go to the address and connection its request came from
(symmetric response routing, RFC 3581, and RFC 3261 §18.2.2 on streams); requests to a
gateway go to its configured address, whatever its Contact says.

Failover: a gateway that sends no ringing (180/183) within the setup timeout, rings
longer than the ring timeout, or answers a final code the failover policy lists is left
(CANCEL once it sent a provisional, RFC 3261 §9.1) and the next route candidate is tried;
gateways at their channel limit are skipped. The last failure's code goes to the customer.

Every call ends in exactly one :class:`~tollguard.domain.cdr.Cdr` handed to the CDR
writer, with each gateway attempt, rated on both sides.

Call states form a small table (``_NEXT``); entering a state the table does not allow
from the current one is a bug and raises.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum

from tollguard.config import Settings
from tollguard.domain.cdr import Attempt, Cdr, HangupSide
from tollguard.domain.errors import DomainError, NumberError
from tollguard.domain.numbers import normalize
from tollguard.domain.plan import Account, Customer, Gateway, Provider, Rate, SipTransport
from tollguard.domain.rating import rate_call
from tollguard.domain.routing import Plan, RouteCandidate, failover_policy
from tollguard.sip import error_response, read_message
from tollguard.sip.digest import NonceManager
from tollguard.sip.errors import (
    LocalProtocolError,
    MessageDropped,
    RemoteProtocolError,
    SipError,
)
from tollguard.sip.grammar import TOKEN_RE
from tollguard.sip.headers import parse_reason, parse_via
from tollguard.sip.message import Request, Response
from tollguard.sip.uri import SipUri, TelUri, Uri
from tollguard.switch.auth import Authenticated, Authenticator, Challenge
from tollguard.switch.cdr_writer import CdrWriter
from tollguard.switch.q850 import q850_cause
from tollguard.switch.timers import Cancellable, TimerWheel
from tollguard.switch.wire import (
    IdFactory,
    header_lines,
    reason_phrase,
    render_request,
    render_response,
    uri_of,
)
from tollguard.transport import Address, TransportError

__all__ = ["B2bua", "CallState", "SendFunction"]

log = logging.getLogger(__name__)

SendFunction = Callable[[bytes, str, Address, int], None]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
_IN_DIALOG_RELAYED = frozenset({"INVITE", "UPDATE", "INFO"})
# RFC 3261 §8.2.2.3: Require is not checked on these.
_NO_REQUIRE = frozenset({"ACK", "CANCEL"})
_KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "INFO", "REGISTER", "PRACK"}
    | {"SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"}
)


# Distinct (source, transport, connection) peers remembered by on_message.
_PEERS_MAX = 4096

# Reason header values (RFC 3326) on the CANCELs and BYEs the switch starts itself; the
# Q.850 cause (ITU-T Q.850 Table 1) is also the CDR's.
REASON_TIMER_EXPIRY = 'Q.850;cause=102;text="Recovery on timer expiry"'
REASON_NO_ANSWER = 'Q.850;cause=19;text="No answer from user"'
REASON_MAX_DURATION = 'Q.850;cause=16;text="Maximum call duration reached"'
# Q.850 causes are 7 bits.
_Q850_MAX = 127


class CallState(Enum):
    ROUTING = "routing"  # trying gateways, nothing final sent to the customer
    ANSWERED = "answered"  # both legs confirmed or confirming
    ENDED = "ended"  # CDR written; kept only to absorb retransmissions


# RFC 3261 §13/§15: a call is answered at most once and ends once.
_NEXT: dict[CallState, frozenset[CallState]] = {
    CallState.ROUTING: frozenset({CallState.ANSWERED, CallState.ENDED}),
    CallState.ANSWERED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class AttemptState(Enum):
    CALLING = "calling"  # INVITE sent, no response yet
    PROCEEDING = "proceeding"  # a provisional response came
    CANCEL_PENDING = "cancel-pending"  # abandoned before any provisional: CANCEL on one
    CANCELLED = "cancelled"  # CANCEL sent, waiting for 487
    FAILED = "failed"  # final non-2xx
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class _Peer:
    """Where a leg's messages go: address, transport and (for streams) connection."""

    address: Address
    transport: str
    connection: int = 0


class _Outgoing:
    """A request we sent and may retransmit (Timers A/E), with its give-up time (B/F)."""

    __slots__ = ("data", "deadline", "handle", "interval", "on_timeout", "peer")

    def __init__(
        self,
        data: bytes,
        peer: _Peer,
        interval: float,
        deadline: float,
        on_timeout: Callable[[], None] | None,
    ) -> None:
        self.data = data
        self.peer = peer
        self.interval = interval
        self.deadline = deadline
        self.on_timeout = on_timeout
        self.handle: Cancellable | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


@dataclass(frozen=True, slots=True)
class _Relay:
    """An in-dialog request relayed to the other leg: where its responses go back."""

    head: str  # Via..CSeq of the origin's request
    method: str
    peer: _Peer


class _Leg:
    """One provider attempt: its own dialog identifiers towards one gateway."""

    __slots__ = (
        "call",
        "call_id",
        "candidate",
        "cseq",
        "from_tag",
        "head",
        "invite",
        "invite_uri",
        "peer",
        "reasons",
        "remote_target",
        "ring_timer",
        "route_set",
        "setup_timer",
        "started_at",
        "state",
        "to_value",
        "user_agent",
        "via",
    )

    def __init__(self, call: Call, candidate: RouteCandidate, peer: _Peer) -> None:
        self.call = call
        self.candidate = candidate
        self.peer = peer
        self.state = AttemptState.CALLING
        self.call_id = ""
        self.from_tag = ""
        self.via = ""
        self.invite_uri = ""
        self.head = ""  # Via .. Call-ID of the INVITE, without To and CSeq
        self.to_value = ""
        self.cseq = 1
        self.invite: _Outgoing | None = None
        self.setup_timer: Cancellable | None = None
        self.ring_timer: Cancellable | None = None
        self.remote_target = ""
        self.route_set: tuple[str, ...] = ()
        self.started_at = 0.0
        self.user_agent = ""
        # Reason values (RFC 3326) for the CANCEL or BYE that ends this attempt.
        self.reasons: tuple[str, ...] = ()

    def stop_timers(self) -> None:
        if self.invite is not None:
            self.invite.cancel()
        if self.setup_timer is not None:
            self.setup_timer.cancel()
            self.setup_timer = None
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None


class Call:
    """One customer call and the provider legs tried for it."""

    __slots__ = (
        "a_call_id",
        "a_from",
        "a_head",
        "a_last",
        "a_local_cseq",
        "a_peer",
        "a_remote_target",
        "a_route_set",
        "a_tag",
        "a_to",
        "a_top_via",
        "account",
        "answered_at",
        "attempts",
        "b",
        "body",
        "callee",
        "callee_raw",
        "caller",
        "caller_ua",
        "candidates",
        "content_type",
        "customer",
        "destination",
        "duration_timer",
        "final_reason",
        "final_status",
        "hangup_side",
        "legs",
        "max_forwards",
        "next_candidate",
        "outgoing",
        "plan",
        "relays",
        "retransmit",
        "sell_rate",
        "started_at",
        "state",
    )

    def __init__(self) -> None:
        self.state = CallState.ROUTING
        self.plan: Plan | None = None
        self.customer: Customer | None = None
        self.account: Account | None = None
        self.a_call_id = ""
        self.a_top_via = ""  # of the INVITE; its branch matches a CANCEL (§9.2)
        self.a_peer = _Peer(("", 0), "udp")
        self.a_head = ""
        self.a_tag = ""
        self.a_from = ""
        self.a_to = ""
        self.a_remote_target = ""
        self.a_route_set: tuple[str, ...] = ()
        self.a_local_cseq = 0
        self.a_last: bytes = b""
        self.caller = ""
        self.callee_raw = ""
        self.callee = ""
        self.destination = ""
        self.caller_ua = ""
        self.sell_rate: Rate | None = None
        self.candidates: tuple[RouteCandidate, ...] = ()
        self.next_candidate = 0
        self.b: _Leg | None = None
        self.legs: list[_Leg] = []
        self.attempts: list[Attempt] = []
        self.body = b""
        self.content_type: str | None = None
        self.max_forwards = 70
        self.started_at = 0.0
        self.answered_at: float | None = None
        self.final_status = 0
        self.final_reason = ""
        self.hangup_side = HangupSide.SWITCH
        self.duration_timer: Cancellable | None = None
        self.retransmit: _Outgoing | None = None  # our final/2xx to the customer (G/H)
        # Requests we sent and may retransmit, by (towards B, CSeq number, method).
        self.outgoing: dict[tuple[bool, int, str], _Outgoing] = {}
        # Relayed in-dialog requests by (towards B, our CSeq).
        self.relays: dict[tuple[bool, int], _Relay] = {}

    def enter(self, state: CallState) -> None:
        if state not in _NEXT[self.state]:
            raise RuntimeError(f"call {self.a_call_id}: {self.state.value} -> {state.value}")
        self.state = state


def _user(uri: Uri) -> str:
    if isinstance(uri, SipUri):
        return uri.user or ""
    if isinstance(uri, TelUri):
        return uri.number
    return ""


def _to_tag(message: Request | Response) -> str | None:
    """The To tag; most To fields of new requests have none, seen without parsing."""
    to = message.headers.get("To")
    if to is None or "tag" not in to.lower():
        return None
    return message.to.tag


def _reasons(request: Request) -> tuple[str, ...]:
    """The Reason values (RFC 3326) of a CANCEL or BYE worth passing on: those that parse."""
    values = request.headers.get_all("Reason")
    if not values:
        return ()
    kept: list[str] = []
    for value in values:
        try:
            parse_reason(value)
        except LocalProtocolError:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("call %s: malformed Reason dropped: %r", request.call_id, value[:80])
            continue
        kept.append(value)
    return tuple(kept)


def _reason_lines(reasons: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"Reason: {value}" for value in reasons)


def _q850_cause(reasons: tuple[str, ...]) -> int | None:
    """The first Q.850 cause among Reason values already checked by :func:`_reasons`."""
    for value in reasons:
        for reason in parse_reason(value):
            if reason.is_q850 and reason.cause is not None and 0 < reason.cause <= _Q850_MAX:
                return reason.cause
    return None


def _head_parts(message: Request | Response) -> tuple[str, str, str]:
    """The Via and From lines, the To value, the Call-ID and CSeq lines of a request."""
    headers = message.headers
    cseq = message.cseq
    return (
        f"{header_lines('Via', headers.values('Via'))}From: {headers.get('From')}\r\n",
        headers.get("To") or "",
        f"Call-ID: {message.call_id}\r\nCSeq: {cseq.seq} {cseq.method}\r\n",
    )


def _head_of(message: Request | Response, *, to_tag: str | None = None) -> str:
    """The Via/From/To/Call-ID/CSeq block of a request, for responses to it."""
    before, to, after = _head_parts(message)
    if to_tag and _to_tag(message) is None:
        return f"{before}To: {to};tag={to_tag}\r\n{after}"
    return f"{before}To: {to}\r\n{after}"


class B2bua:
    """Call control for one switch process; :meth:`on_message` is the transport callback."""

    def __init__(
        self,
        settings: Settings,
        plan: Callable[[], Plan],
        cdr_writer: CdrWriter,
        *,
        nonce_secret: bytes,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        sip = settings.sip
        self._plan = plan
        self._cdrs = cdr_writer
        self._wall = wall_clock
        self._ids = IdFactory()
        self._loop_marker = f"branch={self._ids.branch_prefix}"
        self._auth = Authenticator(
            sip.realm, NonceManager(nonce_secret, sip.nonce_lifetime_s), sip.digest_algorithms
        )
        self._failover = failover_policy(sip.failover_codes)
        self._t1 = sip.t1
        self._t2 = sip.t2
        self._linger = 64 * sip.t1
        self._send: SendFunction | None = None
        self._host = sip.advertised_host or "127.0.0.1"
        self._ports: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wheel: TimerWheel | None = None
        # Call-ID -> (call, leg) for both sides; leg None is the customer side.
        self._dialogs: dict[str, tuple[Call, _Leg | None]] = {}
        self._channels: dict[int, int] = {}
        self._peers: dict[tuple[Address, str, int], _Peer] = {}
        self.active_calls = 0
        self.draining = False
        self._settled = asyncio.Event()
        self._unsettled: set[_Outgoing] = set()
        self._ended: deque[tuple[float, Call]] = deque()
        self._sweeper: Cancellable | None = None
        self.calls_total = 0
        # Retry-After of a 500 to an overlapping re-INVITE: spread, not secret.
        self._retry_rng = random.Random()

    # -- wiring ------------------------------------------------------------------------

    def bind(self, send: SendFunction, ports: dict[str, int], host: str | None = None) -> None:
        """Attach the transports: their send function and bound port per transport."""
        self._send = send
        self._ports = dict(ports)
        if host:
            self._host = host
        self._loop = asyncio.get_running_loop()
        self._wheel = TimerWheel(self._loop)

    def _via(self, transport: str, branch: str) -> str:
        port = self._ports.get(transport, 0)
        return f"SIP/2.0/{transport.upper()} {self._host}:{port};branch={branch};rport"

    def _contact(self, transport: str) -> str:
        port = self._ports.get(transport, 0)
        param = "" if transport == "udp" else f";transport={transport}"
        return f"Contact: <sip:tollguard@{self._host}:{port}{param}>"

    def _out(self, data: bytes, peer: _Peer) -> None:
        assert self._send is not None
        try:
            self._send(data, peer.transport, peer.address, peer.connection)
        except TransportError as exc:
            log.warning("cannot send to %s:%s over %s: %s", *peer.address, peer.transport, exc)

    def _later(self, delay: float, callback: Callable[..., None], *args: object) -> Cancellable:
        assert self._wheel is not None
        return self._wheel.call_later(delay, callback, *args)

    # -- receive -----------------------------------------------------------------------

    def on_message(self, data: bytes, source: Address, transport: str, connection: int) -> None:
        """Handle one framed message from the transports (never raises)."""
        try:
            message = read_message(data)
        except RemoteProtocolError as exc:
            self._answer_malformed(exc, source, transport, connection)
            return
        except MessageDropped as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("dropped from %s:%s: %s", *source, exc.reason)
            return
        try:
            if isinstance(message, Request):
                self._on_request(message, self._peer(source, transport, connection))
            else:
                self._on_response(message)
        except (SipError, DomainError, ValueError, KeyError, AttributeError, TypeError):
            # One broken message must not take the switch down; the call's own timers
            # clean up after it.
            log.exception("failed to handle a message from %s:%s", *source)

    def _peer(self, source: Address, transport: str, connection: int) -> _Peer:
        # Trunks send from few addresses: peers are values, so one is shared. Bounded
        # against sources that keep changing.
        key = (source, transport, connection)
        peer = self._peers.get(key)
        if peer is None:
            peer = _Peer(source, transport, connection)
            if len(self._peers) >= _PEERS_MAX:
                self._peers.clear()
            self._peers[key] = peer
        return peer

    def _answer_malformed(
        self, exc: RemoteProtocolError, source: Address, transport: str, connection: int
    ) -> None:
        # RFC 3261 §8.2: a request we cannot use is answered when it can be routed back
        # (never an ACK, §17.2.1); anything else was dropped by the parser.
        headers = exc.headers
        if headers is None or (headers.get("CSeq") or "").rstrip().endswith("ACK"):
            return
        response = error_response(exc, to_tag=self._ids.tag())
        if response is not None:
            self._out(response.to_bytes(), _Peer(source, transport, connection))

    def _respond(
        self,
        request: Request,
        peer: _Peer,
        status: int,
        reason: str | None = None,
        extra: tuple[str, ...] = (),
        *,
        to_tag: str | None = None,
    ) -> bytes:
        data = render_response(
            status, reason or reason_phrase(status), _head_of(request, to_tag=to_tag), extra
        )
        self._out(data, peer)
        return data

    def _on_request(self, request: Request, peer: _Peer) -> None:
        method = request.method
        if method not in _NO_REQUIRE and request.headers.get("Require") is not None:
            self._bad_extension(request, peer)
            return
        entry = self._dialogs.get(request.call_id)
        if entry is not None:
            call, leg = entry
            if leg is None:
                self._from_customer(call, request, peer)
            else:
                self._from_provider(call, leg, request, peer)
            return
        if method == "INVITE" and _to_tag(request) is None:
            self._initial_invite(request, peer)
        elif method == "ACK":
            return  # for a response we sent statelessly (407, 403, 484 ...): absorbed
        elif method == "OPTIONS" and _to_tag(request) is None:
            self._respond(
                request,
                peer,
                200,
                extra=(f"Allow: {ALLOW}", "Accept: application/sdp"),
                to_tag=self._ids.tag(),
            )
        elif method == "REGISTER":
            # No registrar yet: trunks authenticate per call (ACL or digest).
            self._respond(request, peer, 501, to_tag=self._ids.tag())
        elif method not in _KNOWN_METHODS:
            self._respond(request, peer, 501, extra=(f"Allow: {ALLOW}",), to_tag=self._ids.tag())
        else:
            self._respond(request, peer, 481, to_tag=self._ids.tag())

    def _bad_extension(self, request: Request, peer: _Peer) -> None:
        """420 for a request that requires extensions (RFC 3261 §8.2.2.3).

        The switch supports none of the option tags a Require can name (100rel, timer,
        precondition, replaces ...): the UAC learns which from Unsupported and may retry
        without them.
        """
        tags = [tag for tag in request.headers.get_all("Require") if TOKEN_RE.fullmatch(tag)]
        to_tag = self._ids.tag() if _to_tag(request) is None else None
        if not tags:
            self._respond(request, peer, 400, "Bad Request - malformed Require", to_tag=to_tag)
            return
        self._respond(request, peer, 420, extra=(f"Unsupported: {', '.join(tags)}",), to_tag=to_tag)

    # -- new calls ---------------------------------------------------------------------

    def _initial_invite(self, request: Request, peer: _Peer) -> None:
        if self.draining:
            self._respond(request, peer, 503, extra=("Retry-After: 5",), to_tag=self._ids.tag())
            return
        # The To of an initial INVITE has no tag: the head with ours is built once.
        head = _head_parts(request)
        if request.max_forwards == 0:
            self._respond(request, peer, 483, to_tag=self._ids.tag())
            return
        # RFC 3261 §16.3 item 4: our own branch in a Via is a loop. A looping request
        # carries our Via as we wrote it, so the text is searched without parsing.
        marker = self._loop_marker
        if any(marker in via for via in request.headers.values("Via")):
            self._respond(request, peer, 482, to_tag=self._ids.tag())
            return
        plan = self._plan()
        called = _user(request.uri)
        now_mono = self._loop.time() if self._loop is not None else time.monotonic()
        result = self._auth.authenticate(
            plan,
            method="INVITE",
            request_uri=str(request.uri),
            from_user=_user(request.from_.uri),
            called=called,
            credentials=tuple(request.headers.get_all("Proxy-Authorization")),
            source=peer.address,
            transport=peer.transport,
            now=now_mono,
        )
        if isinstance(result, Challenge):
            self._respond(
                request,
                peer,
                407,
                extra=tuple(f"Proxy-Authenticate: {value}" for value in result.values),
                to_tag=self._ids.tag(),
            )
            return
        if not isinstance(result, Authenticated):
            self._respond(request, peer, result.status, result.reason, to_tag=self._ids.tag())
            return
        call = self._new_call(request, peer, plan, result, head)
        try:
            call.callee = normalize(result.number, result.customer.number_rules)
        except NumberError as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("call %s: number %r: %s", call.a_call_id, result.number, exc)
            self._reject(call, 484, "Address Incomplete", HangupSide.SWITCH)
            return
        decision = plan.route(result.customer, call.callee, datetime.now(UTC))
        rejection = decision.rejection
        if rejection is not None:
            self._reject(
                call,
                rejection.status,
                rejection.reason,
                HangupSide.SWITCH,
                cause=rejection.q850_cause,
            )
            return
        call.sell_rate = decision.sell_rate
        call.destination = decision.sell_rate.destination if decision.sell_rate else ""
        call.candidates = tuple(decision.candidates)
        # RFC 3261 §17.2.1: a 100 is owed only when no response follows at once. Every
        # answer above (407, 403, 404, 484, 483, 482) goes out in this same step, so only
        # a call about to wait for a gateway gets one (one send less per challenge).
        before, to, after = head
        self._out(render_response(100, "Trying", f"{before}To: {to}\r\n{after}"), peer)
        self._next_attempt(call)

    def _new_call(
        self,
        request: Request,
        peer: _Peer,
        plan: Plan,
        auth: Authenticated,
        head: tuple[str, str, str],
    ) -> Call:
        call = Call()
        call.plan = plan
        call.customer = auth.customer
        call.account = auth.account
        call.a_call_id = request.call_id
        headers = request.headers
        call.a_top_via = headers.get("Via") or ""
        call.a_peer = peer
        call.a_tag = self._ids.tag()
        before, to, after = head
        call.a_to = f"{to};tag={call.a_tag}"
        call.a_head = f"{before}To: {call.a_to}\r\n{after}"
        call.a_from = headers.get("From") or ""
        contact = headers.get("Contact")
        call.a_remote_target = uri_of(contact) if contact else str(request.uri)
        call.a_route_set = tuple(uri_of(v) for v in headers.get_all("Record-Route"))
        call.caller = _user(request.from_.uri)
        call.callee_raw = _user(request.uri)
        call.caller_ua = headers.get("User-Agent") or ""
        call.body = request.body
        call.content_type = request.content_type
        call.max_forwards = request.max_forwards if request.max_forwards is not None else 70
        call.started_at = self._wall()
        self._dialogs[call.a_call_id] = (call, None)
        self.active_calls += 1
        self.calls_total += 1
        return call

    # -- provider attempts ---------------------------------------------------------------

    def _next_attempt(self, call: Call) -> None:
        plan = call.plan
        assert plan is not None
        while call.next_candidate < len(call.candidates):
            candidate = call.candidates[call.next_candidate]
            call.next_candidate += 1
            gateway = candidate.gateway
            if gateway.max_channels and self._channels.get(gateway.id, 0) >= gateway.max_channels:
                continue
            self._start_attempt(call, candidate)
            return
        if call.attempts:
            last = call.attempts[-1]
            status = last.sip_code if last.sip_code >= 300 else 503
            self._reject(call, status, reason_phrase(status), HangupSide.CALLEE)
        else:
            # Every gateway is at its channel limit: no circuit available (Q.850 34).
            self._reject(call, 503, "Service Unavailable", HangupSide.SWITCH, cause=34)

    def _start_attempt(self, call: Call, candidate: RouteCandidate) -> None:
        gateway = candidate.gateway
        transport = str(gateway.transport)
        leg = _Leg(call, candidate, _Peer((gateway.host, gateway.port), transport))
        leg.call_id = self._ids.call_id()
        leg.from_tag = self._ids.tag()
        leg.via = self._via(transport, self._ids.branch())
        tparam = "" if gateway.transport is SipTransport.UDP else f";transport={transport}"
        leg.invite_uri = f"sip:{candidate.dial_number}@{gateway.host}:{gateway.port}{tparam}"
        leg.to_value = f"<{leg.invite_uri}>"
        leg.head = (
            f"From: <sip:{call.caller}@{self._host}>;tag={leg.from_tag}\r\n"
            f"Call-ID: {leg.call_id}\r\n"
        )
        leg.started_at = self._wall()
        call.b = leg
        call.legs.append(leg)
        self._dialogs[leg.call_id] = (call, leg)
        self._channels[gateway.id] = self._channels.get(gateway.id, 0) + 1
        data = render_request(
            "INVITE",
            leg.invite_uri,
            f"Via: {leg.via}\r\nMax-Forwards: {max(call.max_forwards - 1, 0)}\r\n"
            f"{leg.head}To: {leg.to_value}\r\nCSeq: 1 INVITE\r\n"
            f"{self._contact(transport)}\r\nAllow: {ALLOW}\r\n"
            f"User-Agent: {self._settings.sip.user_agent}\r\n",
            body=call.body,
            content_type=call.content_type,
        )
        sip = self._settings.sip
        leg.invite = self._send_request(
            data, leg.peer, invite=True, on_timeout=None, deadline=sip.gateway_setup_timeout_s
        )
        leg.setup_timer = self._later(sip.gateway_setup_timeout_s, self._setup_timeout, leg)

    def _send_request(
        self,
        data: bytes,
        peer: _Peer,
        *,
        invite: bool,
        on_timeout: Callable[[], None] | None,
        deadline: float | None = None,
    ) -> _Outgoing:
        # Timer A (INVITE) / E (others) retransmit over UDP; B / F give up after 64*T1.
        out = _Outgoing(data, peer, self._t1, 0.0, on_timeout)
        assert self._loop is not None
        out.deadline = self._loop.time() + (deadline if deadline is not None else 64 * self._t1)
        self._out(data, peer)
        if peer.transport == "udp":
            out.handle = self._later(self._t1, self._retransmit, out, invite)
            if self.draining:
                # Over UDP a request is unsettled until its final response or Timer F;
                # stream requests are sent once.
                self._unsettled.add(out)
        elif on_timeout is not None:
            out.handle = self._later(out.deadline - self._loop.time(), self._give_up, out)
        return out

    def _retransmit(self, out: _Outgoing, invite: bool) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if now >= out.deadline:
            self._give_up(out)
            return
        self._out(out.data, out.peer)
        out.interval = out.interval * 2 if invite else min(out.interval * 2, self._t2)
        out.handle = self._later(
            min(out.interval, out.deadline - now), self._retransmit, out, invite
        )

    def _give_up(self, out: _Outgoing) -> None:
        out.handle = None
        if self.draining:
            self._unsettled.discard(out)
            self._check_settled()
        if out.on_timeout is not None:
            out.on_timeout()

    def _setup_timeout(self, leg: _Leg) -> None:
        leg.setup_timer = None
        self._abandon(leg, "setup timeout", REASON_TIMER_EXPIRY)

    def _ring_timeout(self, leg: _Leg) -> None:
        leg.ring_timer = None
        self._abandon(leg, "ring timeout", REASON_NO_ANSWER)

    def _abandon(self, leg: _Leg, why: str, reason: str) -> None:
        """Give up on a gateway that is too slow, then try the next one."""
        call = leg.call
        if leg.state not in (AttemptState.CALLING, AttemptState.PROCEEDING):
            return
        leg.stop_timers()
        leg.reasons = (reason,)
        self._cancel_leg(leg)
        self._attempt_done(leg, 408, why)
        if call.state is CallState.ROUTING and call.b is leg:
            call.b = None
            self._next_attempt(call)

    def _cancel_leg(self, leg: _Leg) -> None:
        # RFC 3261 §9.1: CANCEL only once a provisional response came.
        if leg.state is AttemptState.CALLING:
            leg.state = AttemptState.CANCEL_PENDING
            return
        leg.state = AttemptState.CANCELLED
        if leg.invite is not None:
            leg.invite.cancel()
        data = render_request(
            "CANCEL",
            leg.invite_uri,
            f"Via: {leg.via}\r\nMax-Forwards: 70\r\n{leg.head}To: {leg.to_value}\r\n"
            f"CSeq: 1 CANCEL\r\n",
            _reason_lines(leg.reasons),
        )
        leg.call.outgoing[(True, -1, leg.call_id)] = self._send_request(
            data, leg.peer, invite=False, on_timeout=None
        )

    def _attempt_done(self, leg: _Leg, status: int, reason: str) -> None:
        candidate = leg.candidate
        leg.call.attempts.append(
            Attempt(
                provider_id=candidate.provider.id,
                gateway_id=candidate.gateway.id,
                started_at=datetime.fromtimestamp(leg.started_at, UTC),
                sip_code=status,
                reason=reason,
            )
        )
        if status < 200 or status >= 300:
            self._release_channel(candidate.gateway)

    def _release_channel(self, gateway: Gateway) -> None:
        count = self._channels.get(gateway.id, 0) - 1
        if count > 0:
            self._channels[gateway.id] = count
        else:
            self._channels.pop(gateway.id, None)

    def on_send_error(self, transport: str, address: Address) -> None:
        """A connection to ``address`` failed: attempts waiting on it fail with 503."""
        for call, leg in list(self._dialogs.values()):
            if (
                leg is not None
                and leg.peer.address == address
                and leg.peer.transport == transport
                and leg.state is AttemptState.CALLING
                and call.b is leg
            ):
                self._attempt_failed(leg, 503, "Service Unavailable", None)

    # -- responses -----------------------------------------------------------------------

    def _on_response(self, response: Response) -> None:
        entry = self._dialogs.get(response.call_id)
        if entry is None:
            return
        call, leg = entry
        cseq = response.cseq
        if leg is not None and cseq.method == "INVITE" and cseq.seq == 1:
            self._invite_response(call, leg, response)
            return
        towards_b = leg is not None
        key_cseq = -1 if cseq.method == "CANCEL" else cseq.seq
        key_id = response.call_id if cseq.method == "CANCEL" else cseq.method
        out = call.outgoing.get((towards_b, key_cseq, key_id))
        if out is not None and (response.status >= 200 or cseq.method == "INVITE"):
            out.cancel()
            if response.status >= 200:
                del call.outgoing[(towards_b, key_cseq, key_id)]
                self._unsettled.discard(out)
        relay = call.relays.get((towards_b, cseq.seq))
        if relay is not None and relay.method == cseq.method:
            self._relay_response(call, towards_b, response, relay)
        if self.draining:
            self._check_settled()

    def _invite_response(self, call: Call, leg: _Leg, response: Response) -> None:
        status = response.status
        if leg.invite is not None and leg.state is not AttemptState.CANCELLED:
            leg.invite.cancel()  # any response stops Timer A (RFC 3261 §17.1.1.2)
        if status < 200:
            self._provisional(call, leg, response)
        elif status < 300:
            self._answered(call, leg, response)
        else:
            self._ack_failure(leg, response)
            if leg.state in (AttemptState.CALLING, AttemptState.PROCEEDING):
                self._attempt_failed(leg, status, response.reason, response)
            else:
                leg.state = AttemptState.FAILED

    def _provisional(self, call: Call, leg: _Leg, response: Response) -> None:
        if leg.state is AttemptState.CANCEL_PENDING:
            leg.state = AttemptState.PROCEEDING
            self._cancel_leg(leg)
            return
        if leg.state is AttemptState.CALLING:
            leg.state = AttemptState.PROCEEDING
        if leg.state is not AttemptState.PROCEEDING or call.b is not leg:
            return
        if response.status == 100:
            return
        if leg.setup_timer is not None:
            leg.setup_timer.cancel()
            leg.setup_timer = None
            leg.ring_timer = self._later(
                self._settings.sip.gateway_ring_timeout_s, self._ring_timeout, leg
            )
        body = response.body
        extra = (self._contact(call.a_peer.transport),)
        self._out(
            render_response(
                response.status,
                response.reason,
                call.a_head,
                extra,
                body=body,
                content_type=response.content_type,
            ),
            call.a_peer,
        )

    def _answered(self, call: Call, leg: _Leg, response: Response) -> None:
        headers = response.headers
        if leg.state is AttemptState.ANSWERED:
            self._ack_2xx(leg)  # a retransmitted 2xx: our ACK was lost (§13.2.2.4)
            return
        if leg.to_value.find(";tag=") < 0:
            leg.to_value = headers.get("To") or leg.to_value
        contact = headers.get("Contact")
        leg.remote_target = uri_of(contact) if contact else leg.invite_uri
        leg.route_set = tuple(uri_of(v) for v in reversed(headers.get_all("Record-Route")))
        leg.user_agent = headers.get("Server") or headers.get("User-Agent") or ""
        previous = leg.state
        leg.state = AttemptState.ANSWERED
        leg.stop_timers()
        self._ack_2xx(leg)
        if (
            call.state is not CallState.ROUTING
            or call.b is not leg
            or previous
            in (
                AttemptState.CANCELLED,
                AttemptState.CANCEL_PENDING,
            )
        ):
            # Answered after we gave up on it (RFC 3261 §9.1 race): end it at once.
            # Its channel was released when the attempt was abandoned.
            self._send_bye(call, leg, towards_b=True, reasons=leg.reasons)
            return
        self._attempt_done(leg, response.status, response.reason)
        call.enter(CallState.ANSWERED)
        call.answered_at = self._wall()
        call.final_status = response.status
        call.final_reason = response.reason
        data = render_response(
            200,
            "OK",
            call.a_head,
            (self._contact(call.a_peer.transport), f"Allow: {ALLOW}"),
            body=response.body,
            content_type=response.content_type,
        )
        call.a_last = data
        self._final_to_customer(call, data, two_xx=True)
        customer = call.customer
        assert customer is not None
        if customer.max_call_duration_s > 0:
            call.duration_timer = self._later(
                customer.max_call_duration_s, self._max_duration, call
            )

    def _ack_2xx(self, leg: _Leg) -> None:
        # The ACK for a 2xx is its own transaction: new branch, to the remote target
        # (RFC 3261 §13.2.2.4, §17.1.1.3).
        route = header_lines("Route", (f"<{uri}>" for uri in leg.route_set))
        data = render_request(
            "ACK",
            leg.remote_target,
            f"Via: {self._via(leg.peer.transport, self._ids.branch())}\r\nMax-Forwards: 70\r\n"
            f"{leg.head}To: {leg.to_value}\r\nCSeq: 1 ACK\r\n{route}",
        )
        self._out(data, leg.peer)

    def _ack_failure(self, leg: _Leg, response: Response) -> None:
        # The ACK for a non-2xx final belongs to the INVITE transaction: same branch and
        # Request-URI, the response's To (RFC 3261 §17.1.1.3).
        data = render_request(
            "ACK",
            leg.invite_uri,
            f"Via: {leg.via}\r\nMax-Forwards: 70\r\n{leg.head}"
            f"To: {response.headers.get('To')}\r\nCSeq: 1 ACK\r\n",
        )
        self._out(data, leg.peer)

    def _attempt_failed(
        self, leg: _Leg, status: int, reason: str, response: Response | None
    ) -> None:
        call = leg.call
        leg.stop_timers()
        leg.state = AttemptState.FAILED
        self._attempt_done(leg, status, reason)
        if call.state is not CallState.ROUTING or call.b is not leg:
            return
        call.b = None
        if self._failover.should_failover(status) and call.next_candidate < len(call.candidates):
            self._next_attempt(call)
            return
        extra: tuple[str, ...] = ()
        if response is not None:
            # The carrier's own Q.850 cause says more than our mapping of its code.
            extra = tuple(f"Reason: {value}" for value in response.headers.get_all("Reason"))
        self._reject(call, status, reason, HangupSide.CALLEE, extra=extra)

    # -- answering the customer --------------------------------------------------------

    def _reject(
        self,
        call: Call,
        status: int,
        reason: str,
        side: HangupSide,
        *,
        cause: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        if cause is not None:
            text = reason.replace('"', "'")
            extra = (*extra, f'Reason: Q.850;cause={cause};text="{text}"')
        data = render_response(status, reason, call.a_head, extra)
        call.a_last = data
        call.final_status = status
        call.final_reason = reason
        call.hangup_side = side
        self._final_to_customer(call, data, two_xx=False)
        self._end(call, cause)

    def _final_to_customer(self, call: Call, data: bytes, *, two_xx: bool) -> None:
        self._out(data, call.a_peer)
        if call.a_peer.transport != "udp":
            return
        # Timer G (non-2xx) / §13.3.1.4 (2xx): retransmit until the ACK; Timer H / 64*T1
        # give up. A 2xx never acknowledged means the customer is gone: hang up.
        out = _Outgoing(data, call.a_peer, self._t1, 0.0, None)
        assert self._loop is not None
        out.deadline = self._loop.time() + 64 * self._t1
        if two_xx:
            out.on_timeout = lambda: self._no_ack(call)
        out.handle = self._later(self._t1, self._retransmit, out, False)
        call.retransmit = out

    def _no_ack(self, call: Call) -> None:
        if call.state is CallState.ANSWERED:
            log.info("call %s: no ACK for our 2xx, hanging up", call.a_call_id)
            self._hangup(call, HangupSide.SWITCH, reasons=(REASON_TIMER_EXPIRY,))

    def _max_duration(self, call: Call) -> None:
        call.duration_timer = None
        if call.state is CallState.ANSWERED:
            self._hangup(call, HangupSide.SWITCH, reasons=(REASON_MAX_DURATION,))

    # -- in-dialog -----------------------------------------------------------------------

    def _from_customer(self, call: Call, request: Request, peer: _Peer) -> None:
        method = request.method
        # In-dialog requests copy our To field as we sent it: comparing the text
        # spares parsing it.
        if request.headers.get("To") != call.a_to and _to_tag(request) != call.a_tag:
            # Same Call-ID without our tag: the initial INVITE or its CANCEL/ACK.
            if method == "INVITE":
                if call.a_last:
                    self._out(call.a_last, peer)
                elif call.state is CallState.ROUTING:
                    self._respond(request, peer, 100)
            elif method == "CANCEL":
                if request.vias[0].branch != parse_via(call.a_top_via)[0].branch:
                    # RFC 3261 §9.2: a CANCEL matches the INVITE's transaction.
                    self._respond(request, peer, 481, to_tag=call.a_tag)
                else:
                    self._customer_cancel(call, request, peer)
            elif method == "ACK":
                self._acked(call)
            else:
                self._respond(request, peer, 481, to_tag=call.a_tag)
            return
        if method == "ACK":
            self._acked(call)
            return
        if method == "BYE":
            self._respond(request, peer, 200)
            reasons = _reasons(request)
            if call.state is CallState.ANSWERED:
                self._hangup(call, HangupSide.CALLER, from_customer=True, reasons=reasons)
            elif call.state is CallState.ROUTING:
                # A BYE in the early dialog ends the call like a CANCEL would (§15).
                self._abort_routing(call, 0, "caller hung up", reasons)
                self._reject(call, 487, "Request Terminated", HangupSide.CALLER)
            return
        if call.state is not CallState.ANSWERED:
            self._respond(request, peer, 481)
            return
        if method in _IN_DIALOG_RELAYED:
            if method != "INVITE" or not self._reinvite_refused(call, request, peer, False):
                self._relay_request(call, request, peer, towards_b=True)
        else:
            self._respond(request, peer, 501, extra=(f"Allow: {ALLOW}",))

    def _from_provider(self, call: Call, leg: _Leg, request: Request, peer: _Peer) -> None:
        method = request.method
        if method == "ACK":
            return
        if method == "BYE":
            self._respond(request, peer, 200)
            if call.state is CallState.ANSWERED and call.b is leg:
                self._hangup(call, HangupSide.CALLEE, from_provider=True, reasons=_reasons(request))
            return
        if call.state is not CallState.ANSWERED or call.b is not leg:
            self._respond(request, peer, 481)
            return
        if method in _IN_DIALOG_RELAYED:
            if method != "INVITE" or not self._reinvite_refused(call, request, peer, True):
                self._relay_request(call, request, peer, towards_b=False)
        else:
            self._respond(request, peer, 501, extra=(f"Allow: {ALLOW}",))

    def _reinvite_refused(self, call: Call, request: Request, peer: _Peer, from_b: bool) -> bool:
        """Answer a re-INVITE that overlaps another INVITE on its leg (RFC 3261 §14.2).

        The switch is the UAS of each leg: while an INVITE it relayed *to* the sender is
        unanswered, the sender gets 491 (crossing re-INVITEs, each side retries after a
        random pause); while the sender's own previous INVITE is unanswered, 500 with a
        Retry-After of 0-10 s.
        """
        towards_sender = from_b  # the direction of requests the switch relays to the sender
        for (towards_b, _), relay in call.relays.items():
            if relay.method != "INVITE":
                continue
            if towards_b == towards_sender:
                self._respond(request, peer, 491)
            else:
                retry = f"Retry-After: {self._retry_rng.randint(0, 10)}"
                self._respond(request, peer, 500, extra=(retry,))
            return True
        return False

    def _acked(self, call: Call) -> None:
        if call.retransmit is not None:
            call.retransmit.cancel()
            call.retransmit = None

    def _customer_cancel(self, call: Call, request: Request, peer: _Peer) -> None:
        # RFC 3261 §9.2: 200 to the CANCEL, 487 to the INVITE, CANCEL downstream.
        self._respond(request, peer, 200, to_tag=call.a_tag)
        if call.state is not CallState.ROUTING:
            return
        self._abort_routing(call, 0, "cancelled", _reasons(request))
        self._reject(call, 487, "Request Terminated", HangupSide.CALLER)

    def _abort_routing(
        self, call: Call, status: int, reason: str, reasons: tuple[str, ...] = ()
    ) -> None:
        """Stop the attempt in progress (CANCEL it, with ``reasons``) without trying another
        gateway."""
        leg = call.b
        if leg is not None:
            leg.stop_timers()
            leg.reasons = reasons
            self._cancel_leg(leg)
            self._attempt_done(leg, status, reason)
            call.b = None

    def _in_dialog_head(
        self, call: Call, towards_b: bool, method: str, cseq: int
    ) -> tuple[str, _Peer, str]:
        """Via..CSeq block, destination and Request-URI for a request we send in a dialog."""
        if towards_b:
            leg = call.b
            assert leg is not None
            route = header_lines("Route", (f"<{uri}>" for uri in leg.route_set))
            head = (
                f"Via: {self._via(leg.peer.transport, self._ids.branch())}\r\n"
                f"Max-Forwards: 70\r\n{leg.head}To: {leg.to_value}\r\n"
                f"CSeq: {cseq} {method}\r\n{route}"
            )
            return head, leg.peer, leg.remote_target
        route = header_lines("Route", (f"<{uri}>" for uri in call.a_route_set))
        head = (
            f"Via: {self._via(call.a_peer.transport, self._ids.branch())}\r\n"
            f"Max-Forwards: 70\r\nFrom: {call.a_to}\r\nTo: {call.a_from}\r\n"
            f"Call-ID: {call.a_call_id}\r\nCSeq: {cseq} {method}\r\n{route}"
        )
        return head, call.a_peer, call.a_remote_target

    def _next_cseq(self, call: Call, towards_b: bool) -> int:
        if towards_b:
            leg = call.b
            assert leg is not None
            leg.cseq += 1
            return leg.cseq
        call.a_local_cseq += 1
        return call.a_local_cseq

    def _relay_request(self, call: Call, request: Request, peer: _Peer, *, towards_b: bool) -> None:
        method = request.method
        cseq = self._next_cseq(call, towards_b)
        head, dest, uri = self._in_dialog_head(call, towards_b, method, cseq)
        extra = (self._contact(dest.transport),) if method == "INVITE" else ()
        data = render_request(
            method, uri, head, extra, body=request.body, content_type=request.content_type
        )
        relay = _Relay(_head_of(request), method, peer)
        key = (towards_b, cseq)
        call.relays[key] = relay

        def timeout() -> None:
            # Timer B/F on the far leg: the origin gets 408 (RFC 3261 §8.1.3.1).
            if call.relays.pop(key, None) is not None:
                self._out(render_response(408, "Request Timeout", relay.head), relay.peer)

        call.outgoing[(towards_b, cseq, method)] = self._send_request(
            data, dest, invite=method == "INVITE", on_timeout=timeout
        )

    def _relay_response(
        self, call: Call, towards_b: bool, response: Response, relay: _Relay
    ) -> None:
        status = response.status
        if status == 100:
            return
        cseq = response.cseq.seq
        extra: tuple[str, ...] = ()
        if relay.method == "INVITE" and status < 300:
            extra = (self._contact(relay.peer.transport),)
        if relay.method == "INVITE" and 200 <= status < 300:
            self._ack_in_dialog(call, towards_b, cseq)
        self._out(
            render_response(
                status,
                response.reason,
                relay.head,
                extra,
                body=response.body,
                content_type=response.content_type,
            ),
            relay.peer,
        )
        if status >= 200:
            call.relays.pop((towards_b, cseq), None)

    def _ack_in_dialog(self, call: Call, towards_b: bool, cseq: int) -> None:
        head, dest, uri = self._in_dialog_head(call, towards_b, "ACK", cseq)
        self._out(render_request("ACK", uri, head), dest)

    # -- ending --------------------------------------------------------------------------

    def _send_bye(
        self, call: Call, leg: _Leg | None, *, towards_b: bool, reasons: tuple[str, ...] = ()
    ) -> None:
        if towards_b:
            assert leg is not None
            saved = call.b
            call.b = leg
            cseq = self._next_cseq(call, True)
            head, dest, uri = self._in_dialog_head(call, True, "BYE", cseq)
            call.b = saved
        else:
            cseq = self._next_cseq(call, False)
            head, dest, uri = self._in_dialog_head(call, False, "BYE", cseq)
        call.outgoing[(towards_b, cseq, "BYE")] = self._send_request(
            render_request("BYE", uri, head, _reason_lines(reasons)),
            dest,
            invite=False,
            on_timeout=None,
        )

    def _hangup(
        self,
        call: Call,
        side: HangupSide,
        *,
        from_customer: bool = False,
        from_provider: bool = False,
        reasons: tuple[str, ...] = (),
    ) -> None:
        """End an answered call: BYE to whichever legs did not hang up themselves.

        ``reasons`` (RFC 3326) go with the BYEs, and a Q.850 cause among them is the CDR's.
        """
        self._acked(call)  # a BYE either way: no point resending our 2xx
        if not from_customer:
            self._send_bye(call, None, towards_b=False, reasons=reasons)
        if not from_provider and call.b is not None:
            self._send_bye(call, call.b, towards_b=True, reasons=reasons)
        call.hangup_side = side
        self._end(call, _q850_cause(reasons))

    def _end(self, call: Call, cause: int | None) -> None:
        call.enter(CallState.ENDED)
        if call.duration_timer is not None:
            call.duration_timer.cancel()
            call.duration_timer = None
        ended = self._wall()
        answered_leg = call.b if call.answered_at is not None else None
        if answered_leg is not None:
            self._release_channel(answered_leg.candidate.gateway)
        self._cdrs.submit(self._cdr(call, ended, answered_leg, cause))
        self.active_calls -= 1
        # Ended calls are forgotten in batches by one timer rather than a timer each.
        assert self._loop is not None
        self._ended.append((self._loop.time() + self._linger, call))
        if self._sweeper is None:
            self._sweeper = self._later(self._linger, self._sweep)

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        ended = self._ended
        while ended and ended[0][0] <= now:
            self._forget(ended.popleft()[1])
        self._sweeper = self._later(max(ended[0][0] - now, 0.1), self._sweep) if ended else None

    def _forget(self, call: Call) -> None:
        if call.retransmit is not None:
            call.retransmit.cancel()
        for out in call.outgoing.values():
            out.cancel()
        for leg in call.legs:
            leg.stop_timers()
            self._dialogs.pop(leg.call_id, None)
        self._dialogs.pop(call.a_call_id, None)

    def _cdr(self, call: Call, ended: float, leg: _Leg | None, cause: int | None) -> Cdr:
        plan = call.plan
        assert plan is not None
        duration_ms = 0
        if call.answered_at is not None:
            duration_ms = max(0, int((ended - call.answered_at) * 1000))
        customer = call.customer
        sell_amount = cost_amount = Decimal(0)
        billed_s = 0
        currency = "EUR"
        provider: Provider | None = None
        gateway: Gateway | None = None
        cost_rate: Rate | None = None
        last = leg or (call.legs[-1] if call.legs else None)
        if last is not None:
            provider, gateway = last.candidate.provider, last.candidate.gateway
            cost_rate = last.candidate.cost_rate
        if call.sell_rate is not None and customer is not None and customer.sell_card_id:
            card = plan.rate_card(customer.sell_card_id)
            currency = card.currency
            if duration_ms:
                charge = rate_call(duration_ms, call.sell_rate, card)
                billed_s, sell_amount = charge.billed_s, charge.amount
        if (
            leg is not None
            and cost_rate is not None
            and provider is not None
            and provider.cost_card_id is not None
            and duration_ms
        ):
            cost_amount = rate_call(
                duration_ms, cost_rate, plan.rate_card(provider.cost_card_id)
            ).amount
        status = call.final_status
        return Cdr(
            call_id=call.a_call_id,
            started_at=datetime.fromtimestamp(call.started_at, UTC),
            ended_at=datetime.fromtimestamp(ended, UTC),
            answered_at=(
                datetime.fromtimestamp(call.answered_at, UTC) if call.answered_at else None
            ),
            duration_ms=duration_ms,
            billed_s=billed_s,
            customer_id=customer.id if customer else None,
            account_id=call.account.id if call.account else None,
            source_ip=call.a_peer.address[0],
            source_port=call.a_peer.address[1],
            caller=call.caller,
            callee_raw=call.callee_raw,
            callee=call.callee,
            destination=call.destination,
            sip_code=status,
            sip_reason=call.final_reason,
            q850_cause=cause if cause is not None else q850_cause(status),
            hangup_side=call.hangup_side,
            provider_id=provider.id if provider else None,
            gateway_id=gateway.id if gateway else None,
            sell_rate=call.sell_rate.price_per_minute if call.sell_rate else None,
            sell_amount=sell_amount,
            cost_rate=cost_rate.price_per_minute if cost_rate else None,
            cost_amount=cost_amount,
            margin=sell_amount - cost_amount,
            currency=currency,
            caller_user_agent=call.caller_ua,
            callee_user_agent=leg.user_agent if leg else "",
            attempts=tuple(call.attempts),
        )

    # -- shutdown ------------------------------------------------------------------------

    def drain(self) -> None:
        """Refuse new calls (503) and end every active one (BYE / CANCEL on both legs)."""
        self.draining = True
        for call, leg in list(self._dialogs.values()):
            if leg is not None:
                continue
            if call.state is CallState.ANSWERED:
                self._hangup(call, HangupSide.SWITCH)
            elif call.state is CallState.ROUTING:
                self._abort_routing(call, 0, "shutdown")
                self._reject(call, 503, "Service Unavailable", HangupSide.SWITCH)

    def close(self) -> None:
        """Cancel every timer (the transports are about to close)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for call, leg in list(self._dialogs.values()):
            if leg is None:
                if call.duration_timer is not None:
                    call.duration_timer.cancel()
                self._forget(call)
        self._ended.clear()
        if self._wheel is not None:
            self._wheel.close()

    def _check_settled(self) -> None:
        if not self._unsettled:
            self._settled.set()

    async def wait_settled(self, timeout: float) -> bool:
        """After :meth:`drain`: wait until every BYE/CANCEL we sent was answered."""
        self._check_settled()
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return True
