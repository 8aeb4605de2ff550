"""What the switch knows of one call: its two sides, its gateway attempts, their states.

Both sides of a call are :class:`Leg` values, the dialog state the switch keeps as the
user agent it is towards each peer (RFC 3261 §12): the customer leg (A), where the switch
is the UAS of the initial INVITE, and one leg per gateway attempt (B), where it is the
UAC. Gateways and trunk addresses are tried one at a time (``Call.attempt``); a call to
an account's registered contacts rings the contacts of one q value at once
(:class:`Forking`), and the fork that answers becomes ``Call.attempt``. A leg holds
where its messages go, its Call-ID, the two identities with their tags (``local`` is the
From of the requests the switch sends on it, ``remote`` their To), the CSeq, the route
set and remote target, and the transactions pending on it: requests the switch sent and
may retransmit (keyed by CSeq number and method) and in-dialog requests relayed onto it
whose responses go back to the other side (keyed by CSeq number).

Call and attempt states are tables (``_CALL_NEXT``, ``_ATTEMPT_NEXT``); entering a state
the table does not allow from the current one is a bug and raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

from tollguard.domain.cdr import Attempt, CallDirection, HangupSide
from tollguard.switch.wire import Peer, header_lines

if TYPE_CHECKING:
    from tollguard.domain import fraud
    from tollguard.domain.credit import CallCredit
    from tollguard.domain.plan import Account, Customer, Did, Gateway, Provider, Rate, RateCard
    from tollguard.domain.rating import Charge
    from tollguard.domain.routing import Plan, RouteCandidate
    from tollguard.media import MediaCounters
    from tollguard.switch.retransmit import Outgoing
    from tollguard.switch.timers import Cancellable

__all__ = [
    "AttemptState",
    "Call",
    "CallState",
    "Delivery",
    "FinalAnswer",
    "Forking",
    "GatewayAttempt",
    "Leg",
    "LegSession",
    "Relay",
    "TransactionKey",
    "preference",
]


class CallState(Enum):
    # Members are singletons compared by identity: hashing them by identity too keeps
    # the state tables' lookups in C (Enum's own __hash__ is Python code).
    __hash__ = object.__hash__

    ROUTING = "routing"  # trying gateways, nothing final sent to the customer
    ANSWERED = "answered"  # both legs confirmed or confirming
    ENDED = "ended"  # CDR written; kept only to absorb retransmissions


# RFC 3261 §13/§15: a call is answered at most once and ends once.
_CALL_NEXT: dict[CallState, frozenset[CallState]] = {
    CallState.ROUTING: frozenset({CallState.ANSWERED, CallState.ENDED}),
    CallState.ANSWERED: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class AttemptState(Enum):
    __hash__ = object.__hash__

    CALLING = "calling"  # INVITE sent, no response yet
    PROCEEDING = "proceeding"  # a provisional response came
    CANCEL_PENDING = "cancel-pending"  # abandoned before any provisional: CANCEL on one
    CANCELLED = "cancelled"  # CANCEL sent, waiting for 487
    FAILED = "failed"  # final non-2xx, a timeout, or a transport failure
    ANSWERED = "answered"  # 2xx (kept, or ended at once when it came too late)


_A = AttemptState
# RFC 3261 §9.1 and §17.1.1: a CANCEL may be sent only once a provisional response came,
# and a 2xx may still cross it; RFC 3261 §13.2.2.4: every 2xx is acknowledged, one that
# comes after the attempt was given up or failed is then ended with a BYE.
_ATTEMPT_NEXT: dict[AttemptState, frozenset[AttemptState]] = {
    _A.CALLING: frozenset({_A.PROCEEDING, _A.CANCEL_PENDING, _A.FAILED, _A.ANSWERED}),
    _A.PROCEEDING: frozenset({_A.CANCELLED, _A.FAILED, _A.ANSWERED}),
    _A.CANCEL_PENDING: frozenset({_A.CANCELLED, _A.FAILED, _A.ANSWERED}),
    _A.CANCELLED: frozenset({_A.FAILED, _A.ANSWERED}),
    _A.FAILED: frozenset({_A.ANSWERED}),
    _A.ANSWERED: frozenset(),
}
# Attempts the switch may still give up on (CANCEL) or fail over from.
LIVE_ATTEMPT = frozenset({_A.CALLING, _A.PROCEEDING})


class TransactionKey(NamedTuple):
    """A request the switch sent on a leg, as its responses name it (CSeq)."""

    cseq: int
    method: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """A place an inbound or internal call is offered to, instead of a provider's gateway:
    a phone's registered contact, reached over the path its REGISTER came by (its NAT's
    public address, its very TCP/TLS connection), or an address of a customer's trunk.

    Contacts are forked in parallel by ``q`` (thousandths, RFC 3261 §16.6 step 1): the
    contacts of one q ring at once, the highest q first (:mod:`.attempts`). ``fallback``
    is another flow of the same phone (RFC 5626 §5.2), tried when this one did not reach
    it (:meth:`flow_failed`); a phone is never rung over two flows at once.

    ``moves_on`` says which final failures try the next delivery: a contact, any but a
    6xx (RFC 3261 §16.7: the phone that is busy is not the only one); a trunk, 408 and
    5xx only (its failover address is for a trunk that is down, not one that refuses).
    """

    peer: Peer
    uri: str  # the Request-URI: the bound contact, or sip:<number>@<trunk>
    contact: bool  # a registered contact (else a trunk address)
    q: int = 1000  # the binding's q value in thousandths (1000: q=1)
    fallback: Delivery | None = None  # the phone's next flow, if it has another

    def moves_on(self, status: int) -> bool:
        if self.contact:
            return 300 <= status < 600
        return status == 408 or 500 <= status < 600

    @staticmethod
    def flow_failed(status: int) -> bool:
        """The flow did not reach the phone: no answer in time (408), the flow is broken
        (430 Flow Failed, RFC 5626 §5.3), or it could not be written to (503)."""
        return status in _FLOW_FAILURES


_FLOW_FAILURES = frozenset({408, 430, 503})


@dataclass(frozen=True, slots=True)
class Relay:
    """An in-dialog request relayed onto a leg: where its responses go back."""

    head: str  # Via..CSeq of the origin's request
    method: str
    peer: Peer


@dataclass(slots=True)
class LegSession:
    """The session timer (RFC 4028) negotiated on one leg: see :mod:`.session_timer`."""

    interval: int  # seconds
    switch_refreshes: bool
    peer_supports: bool  # the peer said Supported/Require: timer
    use_update: bool  # the switch refreshes with UPDATE (the peer allows it), else re-INVITE
    sdp: bytes = b""  # the session description last sent on the leg
    content_type: str | None = None
    handle: Cancellable | None = None
    refresh_cseq: int = 0  # CSeq of the switch's own refresh in progress, 0 when none

    def refresher_param(self, switch_is_uac: bool) -> str:
        """``uac`` or ``uas`` as seen from a request of which the switch is the UAC or not."""
        return "uac" if self.switch_refreshes == switch_is_uac else "uas"


class Leg:
    """One side of a call: the dialog state of the switch towards one peer."""

    __slots__ = (
        "call_id",
        "cseq",
        "local",
        "local_tag",
        "peer",
        "pending",
        "relays",
        "remote",
        "remote_target",
        "route_set",
        "session",
    )

    def __init__(  # noqa: PLR0917 (the dialog identifiers, in RFC 3261 §12 order)
        self,
        peer: Peer,
        call_id: str,
        local_tag: str,
        local: str,
        remote: str,
        remote_target: str,
        cseq: int,
    ) -> None:
        self.peer = peer
        self.call_id = call_id
        self.local_tag = local_tag
        self.local = local  # our identity with our tag: From of our requests
        self.remote = remote  # the peer's identity, with its tag once known: their To
        self.remote_target = remote_target
        self.route_set: tuple[str, ...] = ()
        self.cseq = cseq  # the last CSeq number the switch used on this leg
        self.pending: dict[TransactionKey, Outgoing] = {}
        self.relays: dict[int, Relay] = {}
        self.session: LegSession | None = None

    def request_head(self, via: str, method: str, cseq: int) -> str:
        """The Via..CSeq and Route lines of a request the switch sends on this leg."""
        route = header_lines("Route", [f"<{uri}>" for uri in self.route_set])
        return (
            f"Via: {via}\r\nMax-Forwards: 70\r\nFrom: {self.local}\r\nTo: {self.remote}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n{route}"
        )

    def relaying_invite(self) -> bool:
        """True while an INVITE relayed onto this leg is unanswered."""
        return any(relay.method == "INVITE" for relay in self.relays.values())


class GatewayAttempt:
    """One try of one gateway (or one :class:`Delivery`) for a call: its leg and its
    INVITE client transaction."""

    __slots__ = (
        "call",
        "candidate",
        "failure",
        "holds_channel",
        "invite",
        "invite_uri",
        "leg",
        "reasons",
        "record",
        "ring_timer",
        "setup_timer",
        "started_at",
        "state",
        "user_agent",
        "via",
        "why",
    )

    def __init__(  # noqa: PLR0917 (what the INVITE was sent with)
        self,
        call: Call,
        candidate: RouteCandidate | Delivery,
        leg: Leg,
        invite_uri: str,
        via: str,
        started_at: float,
    ) -> None:
        self.call = call
        self.candidate = candidate
        self.leg = leg
        self.invite_uri = invite_uri
        self.via = via  # the INVITE's, shared by its CANCEL and non-2xx ACK (§9.1, §17.1.1.3)
        self.started_at = started_at
        self.state = AttemptState.CALLING
        self.invite: Outgoing | None = None
        self.setup_timer: Cancellable | None = None
        self.ring_timer: Cancellable | None = None
        self.user_agent = ""
        # Reason values (RFC 3326) for the CANCEL or BYE that ends this attempt.
        self.reasons: tuple[str, ...] = ()
        # One of the gateway's channels, until it is given up (a delivery holds none).
        self.holds_channel = not isinstance(candidate, Delivery)
        # Why the switch gave up on it ("setup timeout", "cancelled" ...), if it did.
        self.why = ""
        # What the customer is told when this was the last attempt: (status, reason,
        # whether the switch gave up rather than the gateway refusing).
        self.failure: tuple[int, str, bool] | None = None
        # Its line in the CDR, once its INVITE transaction is over (a final response,
        # or nothing more to wait for).
        self.record: Attempt | None = None

    def enter(self, state: AttemptState) -> None:
        if state not in _ATTEMPT_NEXT[self.state]:
            raise RuntimeError(f"attempt {self.leg.call_id}: {self.state.value} -> {state.value}")
        self.state = state

    def stop_timers(self) -> None:
        if self.invite is not None:
            self.invite.cancel()
        if self.setup_timer is not None:
            self.setup_timer.cancel()
            self.setup_timer = None
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None


# A final answer for the caller: (status, reason phrase, who ended the call, extra
# header lines such as the callee's Reason).
FinalAnswer = tuple[int, str, HangupSide, tuple[str, ...]]


class Forking:
    """A call forked to an account's registered contacts (RFC 3261 §16.6, §16.7).

    The contacts of one q value ring at once: ``live`` holds the forks of the ringing
    group still waiting for their final response, ``ring_timer`` the group's ring
    timeout (armed at its first ringing), ``best`` the best final failure of every fork
    so far (what the caller is told when no fork answers).
    """

    __slots__ = ("best", "live", "ring_timer")

    def __init__(self) -> None:
        self.live: list[GatewayAttempt] = []
        self.ring_timer: Cancellable | None = None
        self.best: FinalAnswer | None = None

    def stop_timer(self) -> None:
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None

    def consider(self, answer: FinalAnswer) -> None:
        """A fork failed with ``answer``: keep it if it is the best so far."""
        if self.best is None or preference(answer[0]) < preference(self.best[0]):
            self.best = answer


# RFC 3261 §16.7 step 6: of the final failures of the forks, the caller gets a 6xx at
# once, else the one of the lowest class; within the 4xx class a busy phone (486) says
# most, a refusal of its own (403, 404, 488 ...) next, then a phone that is unavailable
# (480), and last one that never answered (408).
_WITHIN_CLASS = {486: 0, 480: 2, 408: 3}


def preference(status: int) -> tuple[int, int]:
    """How good a fork's final failure is for the caller: lower is better."""
    if status >= 600:
        return (0, 0)
    return (status // 100, _WITHIN_CLASS.get(status, 1))


class Call:
    """One customer call: the customer leg, its INVITE, and the gateway attempts."""

    __slots__ = (
        "a",
        "account",
        "admitted",
        "answered_at",
        "attempt",
        "body",
        "callee",
        "callee_raw",
        "caller",
        "caller_ua",
        "candidates",
        "charge",
        "content_type",
        "credit",
        "credit_timer",
        "customer",
        "destination",
        "detail",
        "did",
        "did_charge",
        "direction",
        "duration_timer",
        "final_out",
        "final_reason",
        "final_status",
        "forking",
        "fraud",
        "hangup_side",
        "inbound_cost",
        "inbound_gateway",
        "invite_head",
        "invite_via",
        "last_final",
        "max_forwards",
        "media",
        "next_candidate",
        "plan",
        "record_due",
        "sell_rate",
        "started_at",
        "state",
        "tried",
    )

    def __init__(self, a: Leg, plan: Plan, started_at: float) -> None:
        self.state = CallState.ROUTING
        self.a = a  # the customer leg
        self.plan = plan
        self.started_at = started_at
        self.customer: Customer | None = None
        self.account: Account | None = None
        self.admitted = False  # admission let it through: it releases at the end
        # What the fraud engine admitted (given back at the end).
        self.fraud: fraud.Admitted | None = None
        # Why the switch refused or ended the call, for the CDR's operator.
        self.detail = ""
        # The funds reserved for it (credit control), the timer that extends them, and
        # the charge settled at its end (the CDR's sell side).
        self.credit: CallCredit | None = None
        self.credit_timer: Cancellable | None = None
        self.charge: Charge | None = None
        # The customer's INVITE (the switch is its UAS): its top Via, which a CANCEL
        # must match (§9.2); the head of every response to it; the last final response
        # (resent when the INVITE is) and its retransmission (Timer G / §13.3.1.4).
        self.invite_via = ""
        self.invite_head = ""
        self.last_final = b""
        self.final_out: Outgoing | None = None
        self.caller = ""
        self.callee_raw = ""
        self.callee = ""
        self.destination = ""
        self.caller_ua = ""
        self.sell_rate: Rate | None = None
        self.candidates: tuple[RouteCandidate | Delivery, ...] = ()
        self.next_candidate = 0
        # The attempt in progress (gateways, trunk addresses: one at a time), or the
        # answered one (a fork too); the forks of a call to registered contacts.
        self.attempt: GatewayAttempt | None = None
        self.forking: Forking | None = None
        self.tried: list[GatewayAttempt] = []
        # Ended while an attempt still waited for its final response (the 487 to the
        # switch's CANCEL): the end time and Q.850 cause of the CDR to write once it came.
        self.record_due: tuple[float, int | None] | None = None
        self.body = b""
        self.content_type: str | None = None
        self.max_forwards = 70
        self.answered_at: float | None = None
        self.final_status = 0
        self.final_reason = ""
        self.hangup_side = HangupSide.SWITCH
        self.duration_timer: Cancellable | None = None
        # What the media backend counted, once the call has ended (for the CDR).
        self.media: MediaCounters | None = None
        # Inbound and internal calls (switch.inbound): which way the call goes, the DID
        # called, the gateway and provider that delivered it with the provider's inbound
        # rate and card, and the DID's per-minute price as the owner's rate and card.
        self.direction = CallDirection.OUTBOUND
        self.did: Did | None = None
        self.inbound_gateway: tuple[Provider, Gateway] | None = None
        self.inbound_cost: tuple[Rate, RateCard] | None = None
        self.did_charge: RateCard | None = None

    @property
    def call_id(self) -> str:
        return self.a.call_id

    def enter(self, state: CallState) -> None:
        if state not in _CALL_NEXT[self.state]:
            raise RuntimeError(f"call {self.a.call_id}: {self.state.value} -> {state.value}")
        self.state = state

    def ringing_fork(self, attempt: GatewayAttempt) -> bool:
        """True while ``attempt`` is a fork of the ringing group, waiting for its answer."""
        forking = self.forking
        return forking is not None and attempt in forking.live

    def settled(self) -> bool:
        """True once every attempt's outcome is known (the CDR can be written)."""
        return all(attempt.record is not None for attempt in self.tried)

    def answered_leg(self) -> Leg | None:
        """The gateway leg that answered, while the call is (or was) answered."""
        if self.answered_at is None or self.attempt is None:
            return None
        return self.attempt.leg
