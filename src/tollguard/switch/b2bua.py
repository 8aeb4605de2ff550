"""The back-to-back user agent: every call is two legs, the customer's (A) and a provider's (B).

This module dispatches. Each received message is parsed once at the receive boundary,
matched to its call by Call-ID (:mod:`.dialogs`) and handed to the concern it belongs to:

* a new INVITE to :mod:`.admission` (authentication, number, route, fraud rules,
  credit), then to :mod:`.attempts` (gateways tried in order, failover); a new INVITE
  from a provider gateway's address to :mod:`.inbound` (the DID called, its owner and
  target), an account's call to an extension of its customer and a customer's call to
  one of its own DIDs too; their deliveries go through :mod:`.attempts` like gateways
  (trunk addresses in turn, registered contacts forked in parallel by q value);
* responses from a gateway to its INVITE to :mod:`.attempts`;
* in-dialog requests (re-INVITE, UPDATE, INFO) and their responses to :mod:`.relay`;
* BYE, CANCEL and the switch's own timers to :mod:`.teardown`, which releases what the
  call held and has :mod:`.accounting` write its CDR;
* REGISTER to :mod:`.registrar`.

What the customer sees of its INVITE (100, relayed 18x, 200, the final failure, resent
until the ACK) is :mod:`.answering`'s; session timers are :mod:`.session_timer`'s.
Session descriptions pass through :mod:`.media`.

Responses to the customer go to the address and connection its request came from
(symmetric response routing, RFC 3581, and RFC 3261 §18.2.2 on streams); requests to a
gateway go to its configured address, whatever its Contact says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from tollguard.config import Settings
from tollguard.domain.cdr import HangupSide
from tollguard.domain.credit import CreditControl
from tollguard.domain.errors import DomainError
from tollguard.domain.plan import Gateway
from tollguard.domain.registration import Bindings
from tollguard.domain.routing import Plan
from tollguard.media import MediaRefused
from tollguard.sip import error_response, read_message
from tollguard.sip.errors import MessageDropped, RemoteProtocolError, SipError
from tollguard.sip.grammar import TOKEN_RE
from tollguard.sip.message import Request, Response
from tollguard.sip.stun import is_stun
from tollguard.state.memory import MemoryBindings
from tollguard.switch.accounting import Accounting, CdrQueue
from tollguard.switch.admission import Admission, Admitted, Delivered, Refused, user_part
from tollguard.switch.answering import CustomerInvite
from tollguard.switch.attempts import Attempts, GatewayChannels
from tollguard.switch.auth import Authenticator, Challenge
from tollguard.switch.call import Call, CallState, GatewayAttempt, Leg, TransactionKey
from tollguard.switch.credit import REASON_CREDIT_EXHAUSTED, CallFunds
from tollguard.switch.dialogs import DialogTable
from tollguard.switch.guard import Guard
from tollguard.switch.inbound import Inbound
from tollguard.switch.media import MediaHooks
from tollguard.switch.q850 import reasons_of
from tollguard.switch.registrar import Registrar
from tollguard.switch.relay import RELAYED_METHODS, InDialogRelay
from tollguard.switch.retransmit import Retransmitter
from tollguard.switch.session_timer import SessionTimers
from tollguard.switch.signalling import (
    ALLOW,
    SendFunction,
    Signalling,
    head_parts,
    to_tag,
)
from tollguard.switch.teardown import Teardown
from tollguard.switch.timers import Scheduler, TimerWheel
from tollguard.switch.wire import IdFactory, Peer, render_response, uri_of
from tollguard.transport import Address, Transports

__all__ = ["ALLOW", "B2bua", "CallState", "SendFunction"]

log = logging.getLogger(__name__)

# RFC 3261 §8.2.2.3: Require is not checked on these.
_NO_REQUIRE = frozenset({"ACK", "CANCEL"})
# Requests that only make sense inside a dialog (or a transaction) the switch knows:
# without one, 481 (RFC 3261 §12.2.2, §9.2).
_DIALOG_METHODS = frozenset({"BYE", "CANCEL", "UPDATE", "INFO", "PRACK"})
# Methods the switch knows but does not serve outside a dialog: 405 with Allow (RFC 3261
# §8.2.1); anything else unknown gets 501 (RFC 3261 §8.2.1 too).
_NOT_ALLOWED = frozenset({"SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
# Option tags the switch honours in a Require (RFC 3261 §8.2.2.3); a REGISTER may also
# require RFC 5626 outbound, which the registrar applies.
_SUPPORTED = frozenset({"timer"})
_SUPPORTED_REGISTER = _SUPPORTED | {"outbound"}
# Distinct (source, transport, connection) peers remembered by on_message.
_PEERS_MAX = 4096


class B2bua:
    """Call control for one switch process; :meth:`on_message` is the transport callback."""

    def __init__(
        self,
        settings: Settings,
        plan: Callable[[], Plan],
        cdr_writer: CdrQueue,
        *,
        nonce_secret: bytes,
        wall_clock: Callable[[], float] = time.time,
        scheduler: Scheduler | None = None,
        media: MediaHooks | None = None,
        guard: Guard | None = None,
        credit: CreditControl | None = None,
        bindings: Bindings | None = None,
    ) -> None:
        sip = settings.sip
        self._settings = settings
        self._plan = plan
        self._wall = wall_clock
        self._scheduler = scheduler
        self._ids = IdFactory()
        self._loop_marker = f"branch={self._ids.branch_prefix}"
        self._sig = Signalling(sip.advertised_host or "127.0.0.1", self._ids)
        self._guard = guard
        self._credit = credit
        self._authenticator = Authenticator.from_settings(sip, nonce_secret)
        self._authenticator.guard = guard
        self._admission = Admission(self._authenticator, guard)
        self._media = media or MediaHooks()
        self._bindings: Bindings = bindings if bindings is not None else MemoryBindings()
        self._accounting = Accounting(cdr_writer)
        if guard is not None:
            self._accounting.on_charged = lambda cdr: guard.record_spend(
                cdr.customer_id or 0, cdr.account_id, cdr.sell_amount
            )
        self._peers: dict[tuple[Address, str, int], Peer] = {}
        self._connections: Transports | None = None
        self._settled = asyncio.Event()
        self.draining = False
        # Messages whose handling failed with an error that is a bug of the switch.
        self.handler_errors = 0
        # Made in bind(), once the scheduler exists.
        self._retransmitter: Retransmitter
        self._answering: CustomerInvite
        self._sessions: SessionTimers
        self._dialogs: DialogTable
        self._attempts: Attempts
        self._relay: InDialogRelay
        self._teardown: Teardown
        self._registrar: Registrar
        self._inbound: Inbound
        if scheduler is not None:
            self._assemble(scheduler)

    def _assemble(self, scheduler: Scheduler) -> None:
        sip = self._settings.sip
        self._scheduler = scheduler
        # The shield counts an authentication failure once the 403 is out.
        self._authenticator.defer = lambda fn, *args: scheduler.call_later(0.0, fn, *args)
        self._retransmitter = Retransmitter(scheduler, self._sig.out, sip.t1, sip.t2)
        self._retransmitter.on_settled = self._check_settled
        self._dialogs = DialogTable(scheduler, self._retransmitter, 64 * sip.t1)
        self._sessions = SessionTimers(
            sip, scheduler, self._sig, self._retransmitter, on_expired=self._session_over
        )
        channels = GatewayChannels(self._guard)
        self._teardown = Teardown(
            self._sig,
            self._retransmitter,
            self._wall,
            self._dialogs,
            channels,
            self._admission,
            self._media,
            self._accounting,
            self._sessions,
        )
        self._teardown.on_recorded = self._check_settled
        self._answering = CustomerInvite(
            self._sig,
            self._retransmitter,
            scheduler,
            self._wall,
            self._media,
            self._sessions,
            self._teardown,
        )
        self._attempts = Attempts(
            sip,
            self._sig,
            self._retransmitter,
            scheduler,
            self._wall,
            self._dialogs,
            channels,
            self._sessions,
            on_progress=self._answering.progress,
            on_answer=self._answering.answered,
            on_failure=self._answering.reject,
            on_settled=self._teardown.attempt_settled,
            bye=self._teardown.bye,
        )
        self._answering.attempts = self._attempts
        if self._credit is not None:
            funds = CallFunds(self._credit, scheduler, self._wall)
            funds.on_exhausted = self._credit_exhausted
            self._admission.funds = funds
            self._answering.funds = funds
        self._media.on_timeout = self._answering.media_over
        self._dialogs.on_forget = self._forgotten
        self._relay = InDialogRelay(self._sig, self._retransmitter, self._media, self._sessions)
        self._registrar = Registrar(
            sip, self._sig, self._authenticator, self._bindings, scheduler, self._wall
        )
        self._inbound = Inbound(self._admission, self._registrar.contacts)
        self._admission.internal = self._inbound.extension
        self._admission.on_net = self._inbound.own_did

    def _forgotten(self, call: Call) -> None:
        self._attempts.settle_all(call)
        connection = call.a.peer.connection
        if connection and self._connections is not None:
            self._connections.unpin(connection)

    # -- wiring ------------------------------------------------------------------------

    def bind(
        self,
        send: SendFunction,
        ports: dict[str, int],
        host: str | None = None,
        connections: Transports | None = None,
    ) -> None:
        """Attach the transports: their send function and bound port per transport.

        Without a scheduler given at construction, the running event loop's timer wheel
        is used. ``connections`` pins the TCP/TLS connection of a call's customer leg
        for as long as the call is known, so that idleness never closes it.
        """
        self._sig.bind(send, ports, host)
        self._connections = connections
        if self._scheduler is None:
            self._assemble(TimerWheel(asyncio.get_running_loop()))
        self._registrar.attach(connections)

    @property
    def registrar(self) -> Registrar:
        return self._registrar

    @property
    def active_calls(self) -> int:
        return self._dialogs.active_calls

    @property
    def calls_total(self) -> int:
        return self._dialogs.calls_total

    @property
    def gateway_channels(self) -> dict[int, int]:
        """Calls in progress per gateway id."""
        return self._attempts.channels.counts

    @property
    def calls_by_customer(self) -> dict[int, int]:
        """Admitted calls in progress per customer id."""
        return self._admission.calls_by_customer

    # -- receive -----------------------------------------------------------------------

    def on_message(self, data: bytes, source: Address, transport: str, connection: int) -> None:
        """Handle one framed message from the transports (never raises)."""
        guard = self._guard
        if guard is not None and not guard.datagram(source[0], len(data)):
            return
        if transport == "udp" and is_stun(data):
            self._registrar.stun(data, source)  # a phone's keep-alive (RFC 5626 §4.4.2)
            return
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
                if guard is not None and not guard.request(message, source[0]):
                    return
                self._on_request(message, self._peer(source, transport, connection))
            else:
                self._on_response(message, source)
        except (SipError, DomainError) as exc:
            # A header the receive boundary does not check was unusable: the peer's
            # fault. The call's own timers clean up after it.
            log.info(
                "call %s: message from %s:%s not handled: %s",
                message.call_id,
                *source,
                exc,
                extra={"call_id": message.call_id},
            )
        except Exception:
            # Anything else is a bug of the switch: one broken message must not take the
            # switch down, but it must be seen (the status document counts these).
            self.handler_errors += 1
            log.exception(
                "bug: handling a message of call %s from %s:%s failed",
                message.call_id,
                *source,
                extra={"call_id": message.call_id},
            )

    def _peer(self, source: Address, transport: str, connection: int) -> Peer:
        # Trunks send from few addresses: peers are values, so one is shared. Bounded
        # against sources that keep changing.
        key = (source, transport, connection)
        peer = self._peers.get(key)
        if peer is None:
            peer = Peer(source, transport, connection)
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
            self._sig.out(response.to_bytes(), Peer(source, transport, connection))

    def _on_request(self, request: Request, peer: Peer) -> None:
        method = request.method
        if (
            method not in _NO_REQUIRE
            and request.headers.get("Require") is not None
            and self._bad_extension(request, peer)
        ):
            return
        if method == "REGISTER":
            # Out of any dialog whatever its Call-ID (RFC 3261 §10.2).
            self._registrar.register(request, peer, self._plan())
            return
        entry = self._dialogs.entries.get(request.call_id)
        if entry is not None:
            call, attempt = entry
            if attempt is None:
                self._from_customer(call, request, peer)
            else:
                self._from_provider(call, attempt, request, peer)
            return
        respond = self._sig.respond
        if method == "INVITE" and to_tag(request) is None:
            self._initial_invite(request, peer)
        elif method == "ACK":
            return  # for a response we sent statelessly (407, 403, 484 ...): absorbed
        elif method == "OPTIONS" and to_tag(request) is None:
            extra = (f"Allow: {ALLOW}", "Accept: application/sdp")
            respond(request, peer, 200, extra=extra, to_tag=self._ids.tag())
        elif method in _DIALOG_METHODS or to_tag(request) is not None:
            respond(request, peer, 481, to_tag=self._ids.tag())
        elif method in _NOT_ALLOWED:
            respond(request, peer, 405, extra=(f"Allow: {ALLOW}",), to_tag=self._ids.tag())
        else:
            respond(request, peer, 501, extra=(f"Allow: {ALLOW}",), to_tag=self._ids.tag())

    def _bad_extension(self, request: Request, peer: Peer) -> bool:
        """420 for a request that requires extensions (RFC 3261 §8.2.2.3).

        The switch supports one option tag, ``timer`` (RFC 4028); for the others (100rel,
        precondition, replaces ...) the UAC learns which from Unsupported and may retry
        without them. Returns False when the request may go on (it requires only what is
        supported).
        """
        required = request.headers.get_all("Require")
        tags = [tag for tag in required if TOKEN_RE.fullmatch(tag)]
        tag = self._ids.tag() if to_tag(request) is None else None
        if not tags or len(tags) != len(required):
            self._sig.respond(request, peer, 400, "Bad Request - malformed Require", to_tag=tag)
            return True
        supported = _SUPPORTED_REGISTER if request.method == "REGISTER" else _SUPPORTED
        unsupported = [option for option in tags if option not in supported]
        if not unsupported:
            return False
        extra = (f"Unsupported: {', '.join(unsupported)}",)
        self._sig.respond(request, peer, 420, extra=extra, to_tag=tag)
        return True

    def _on_response(self, response: Response, source: Address) -> None:
        entry = self._dialogs.entries.get(response.call_id)
        if entry is None:
            self._registrar.response(response, source)  # a phone's answer to a ping?
            return
        call, attempt = entry
        cseq = response.cseq
        if attempt is not None and cseq.method == "INVITE" and cseq.seq == 1:
            self._attempts.invite_response(call, attempt, response)
            return
        leg = call.a if attempt is None else attempt.leg
        key = TransactionKey(cseq.seq, cseq.method)
        out = leg.pending.get(key)
        status = response.status
        if out is not None and (status >= 200 or cseq.method == "INVITE"):
            final = status >= 200
            self._retransmitter.answered(out, final)
            if final:
                del leg.pending[key]
        relay = leg.relays.get(cseq.seq)
        if relay is not None and relay.method == cseq.method:
            self._relay.response(call, leg, response, relay)
        elif leg.session is not None and leg.session.refresh_cseq == cseq.seq:
            self._sessions.refresh_answered(call, leg, response)

    # -- new calls ---------------------------------------------------------------------

    def _initial_invite(self, request: Request, peer: Peer) -> None:
        respond = self._sig.respond
        if self.draining:
            respond(request, peer, 503, extra=("Retry-After: 5",), to_tag=self._ids.tag())
            return
        if request.max_forwards == 0:
            respond(request, peer, 483, to_tag=self._ids.tag())
            return
        # RFC 3261 §16.3 item 4: our own branch in a Via is a loop. A looping request
        # carries our Via as we wrote it, so the text is searched without parsing.
        marker = self._loop_marker
        if any(marker in via for via in request.headers.values("Via")):
            respond(request, peer, 482, to_tag=self._ids.tag())
            return
        if request.headers.get("Session-Expires") is not None:
            try:
                refusal = self._sessions.too_small(request)
            except SipError:
                respond(request, peer, 400, "Bad Request - malformed Session-Expires")
                return
            if refusal is not None:
                respond(request, peer, 422, extra=refusal, to_tag=self._ids.tag())
                return
        plan = self._plan()
        wall = self._wall()
        assert self._scheduler is not None
        now = datetime.fromtimestamp(wall, UTC)
        # A provider gateway's address wins over the IP lists and digest: its calls are
        # inbound calls to DIDs, never calls out (docs/switch.md, "Inbound calls and
        # extensions"). A plan without DIDs takes no inbound calls: its gateways'
        # addresses mean nothing.
        gateway = plan.gateway_from(peer.address[0]) if len(plan.dids) else None
        verdict = (
            self._inbound.admit(plan, request, gateway, now)
            if gateway is not None
            else self._admission.admit(plan, request, peer, self._scheduler.now(), now)
        )
        if isinstance(verdict, Admitted | Delivered):
            guard = self._guard
            if guard is not None and not guard.open_call(peer.address[0]):
                # Too many calls in progress from this source: dropped, no answer.
                self._admission.cancel(verdict)
                return
            head = head_parts(request)
            call = self._new_call(request, peer, verdict.plan, wall, head)
            call.admitted = True
            call.credit = verdict.credit
            call.customer = verdict.customer
            call.account = verdict.account
            call.callee = verdict.callee
            if isinstance(verdict, Admitted):
                call.fraud = verdict.fraud
                sell_rate = verdict.sell_rate
                call.sell_rate = sell_rate
                call.destination = sell_rate.destination if sell_rate else ""
                call.candidates = verdict.candidates
            else:
                self._delivered(call, verdict)
            self._start(call, request, peer, head)
        elif isinstance(verdict, Challenge):
            extra = tuple(f"Proxy-Authenticate: {value}" for value in verdict.values)
            respond(request, peer, 407, extra=extra, to_tag=self._ids.tag())
        elif verdict.customer is None and gateway is None:
            respond(request, peer, verdict.status, verdict.reason, to_tag=self._ids.tag())
        else:
            # Every inbound call is recorded, an unknown number too (the provider's).
            self._refused_call(request, peer, verdict, wall, gateway)

    def _delivered(self, call: Call, verdict: Delivered) -> None:
        """An inbound or internal call: its direction, DID, money and deliveries."""
        call.direction = verdict.direction
        call.did = verdict.did
        call.fraud = verdict.fraud
        call.inbound_gateway = verdict.gateway
        call.inbound_cost = verdict.cost
        if verdict.charge is not None:
            call.sell_rate, call.did_charge = verdict.charge
        did = verdict.did
        call.destination = f"DID {did.first}" if did is not None else f"extension {call.callee}"
        call.candidates = verdict.deliveries

    def _start(self, call: Call, request: Request, peer: Peer, head: tuple[str, str, str]) -> None:
        """Offer the admitted call to its first gateway or delivery."""
        call.a.session = self._sessions.for_customer(request)
        try:
            call.body = self._media.offer(call, request.body, call.content_type)
        except MediaRefused as exc:
            log.info("call %s: media refused: %s", call.a.call_id, exc.detail)
            self._answering.reject(call, exc.status, exc.reason, HangupSide.SWITCH, None, ())
            return
        # RFC 3261 §17.2.1: a 100 is owed only when no response follows at once.
        # Every refusal goes out in this same step, so only a call about to wait
        # for a gateway gets one (one send less per challenge).
        before, to, after = head
        self._sig.out(render_response(100, "Trying", f"{before}To: {to}\r\n{after}"), peer)
        self._attempts.next(call)

    def _refused_call(
        self,
        request: Request,
        peer: Peer,
        verdict: Refused,
        wall: float,
        gateway: Gateway | None = None,
    ) -> None:
        """A known customer's call, or any inbound call, refused: answered and recorded."""
        assert verdict.plan is not None
        call = self._new_call(request, peer, verdict.plan, wall, head_parts(request))
        call.customer = verdict.customer
        call.account = verdict.account
        call.callee = verdict.callee
        call.detail = verdict.detail
        call.direction = verdict.direction
        if gateway is not None:
            provider = verdict.plan.provider(gateway.provider_id)
            assert provider is not None
            call.inbound_gateway = (provider, gateway)
            call.did = verdict.plan.dids.lookup(verdict.callee) if verdict.callee else None
        else:
            call.did = verdict.did  # a call to the customer's own DID
        self._answering.reject(
            call, verdict.status, verdict.reason, HangupSide.SWITCH, verdict.cause, ()
        )

    def _new_call(
        self, request: Request, peer: Peer, plan: Plan, wall: float, head: tuple[str, str, str]
    ) -> Call:
        headers = request.headers
        tag = self._ids.tag()
        # The To of an initial INVITE has no tag: the head with ours is built once.
        before, to, after = head
        local = f"{to};tag={tag}"
        contact = headers.get("Contact")
        leg = Leg(
            peer,
            request.call_id,
            tag,
            local,
            headers.get("From") or "",
            uri_of(contact) if contact else str(request.uri),
            0,
        )
        leg.route_set = tuple(uri_of(v) for v in headers.get_all("Record-Route"))
        if peer.connection and self._connections is not None:
            self._connections.pin(peer.connection)
        call = Call(leg, plan, wall)
        call.invite_via = headers.get("Via") or ""
        call.invite_head = f"{before}To: {local}\r\n{after}"
        call.caller = user_part(request.from_.uri)
        call.callee_raw = user_part(request.uri)
        call.caller_ua = headers.get("User-Agent") or ""
        call.content_type = request.content_type
        call.max_forwards = request.max_forwards if request.max_forwards is not None else 70
        self._dialogs.add_call(call)
        return call

    def _session_over(self, call: Call, reasons: tuple[str, ...]) -> None:
        self._answering.session_over(call, reasons)

    def _credit_exhausted(self, call: Call) -> None:
        if call.state is CallState.ANSWERED:
            call.detail = "credit: exhausted"
            self._teardown.hangup(call, HangupSide.SWITCH, reasons=(REASON_CREDIT_EXHAUSTED,))

    # -- requests within a call -----------------------------------------------------------

    def _from_customer(self, call: Call, request: Request, peer: Peer) -> None:
        method = request.method
        a = call.a
        # In-dialog requests copy our To field as we sent it: comparing the text
        # spares parsing it.
        if request.headers.get("To") != a.local and to_tag(request) != a.local_tag:
            # Same Call-ID without our tag: the initial INVITE or its CANCEL/ACK.
            self._answering.transaction_request(call, request, peer)
            return
        if method == "ACK":
            self._answering.acked(call)
            return
        if method == "BYE":
            self._sig.respond(request, peer, 200)
            if call.state is CallState.ANSWERED:
                reasons = reasons_of(request)
                self._teardown.hangup(call, HangupSide.CALLER, from_customer=True, reasons=reasons)
            elif call.state is CallState.ROUTING:
                self._answering.hung_up_early(call, request)
            return
        if call.state is not CallState.ANSWERED or call.attempt is None:
            self._sig.respond(request, peer, 481)
            return
        if method in RELAYED_METHODS:
            target = call.attempt.leg
            if method != "INVITE" or not self._relay.overlapping(a, target, request, peer):
                self._relay.request(call, target, request, peer)
        else:
            self._sig.respond(request, peer, 501, extra=(f"Allow: {ALLOW}",))

    def _from_provider(
        self, call: Call, attempt: GatewayAttempt, request: Request, peer: Peer
    ) -> None:
        method = request.method
        if method == "ACK":
            return
        current = call.state is CallState.ANSWERED and call.attempt is attempt
        if method == "BYE":
            self._sig.respond(request, peer, 200)
            if current:
                reasons = reasons_of(request)
                self._teardown.hangup(call, HangupSide.CALLEE, from_provider=True, reasons=reasons)
            return
        if not current:
            self._sig.respond(request, peer, 481)
            return
        if method in RELAYED_METHODS:
            origin = attempt.leg
            if method != "INVITE" or not self._relay.overlapping(origin, call.a, request, peer):
                self._relay.request(call, call.a, request, peer)
        else:
            self._sig.respond(request, peer, 501, extra=(f"Allow: {ALLOW}",))

    # -- shutdown ------------------------------------------------------------------------

    def on_send_error(self, transport: str, address: Address) -> None:
        """A connection to ``address`` failed: attempts waiting on it fail with 503."""
        self._attempts.transport_failed(transport, address)

    def drain(self) -> None:
        """Refuse new calls (503) and end every active one (BYE / CANCEL on both legs)."""
        self.draining = True
        self._retransmitter.draining = True
        for call in self._dialogs.calls():
            if call.state is CallState.ANSWERED:
                self._teardown.hangup(call, HangupSide.SWITCH)
            elif call.state is CallState.ROUTING:
                self._attempts.abort(call, "shutdown")
                self._answering.reject(
                    call, 503, "Service Unavailable", HangupSide.SWITCH, None, ()
                )

    def close(self) -> None:
        """Cancel every timer (the transports are about to close)."""
        if self._scheduler is None:
            return
        self._dialogs.close()
        self._registrar.close()
        if isinstance(self._scheduler, TimerWheel):
            self._scheduler.close()

    def _check_settled(self) -> None:
        if self.draining and not self._retransmitter.unsettled and not self._teardown.waiting:
            self._settled.set()

    async def wait_settled(self, timeout: float) -> bool:
        """After :meth:`drain`: wait until every BYE and CANCEL the switch sent was answered,
        and every cancelled gateway attempt has its final response (its CDR line)."""
        self._check_settled()
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return True
