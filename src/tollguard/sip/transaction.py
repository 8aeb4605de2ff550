"""SIP transactions: the four state machines of RFC 3261 §17 with the RFC 6026 fixes.

RFC 3261 §17.1.1 (INVITE client), §17.1.2 (non-INVITE client), §17.2.1 (INVITE server),
§17.2.2 (non-INVITE server); RFC 6026 §7 adds the Accepted state to both INVITE machines
(timers L and M) so that 2xx retransmissions and their ACKs are never mistaken for new
requests. §17.1.3 and §17.2.3 define how messages are matched to transactions.

Sans-IO: a transaction takes messages and ``now`` (monotonic seconds supplied by the
caller) and returns a tuple of actions: :class:`Send`, :class:`StartTimer` (an absolute
deadline), :class:`CancelTimer`, :class:`Deliver` (to the transaction user),
:class:`TimedOut`, :class:`TransportFailed` and :class:`Terminated`. The caller performs
them in order; when a timer is due it calls ``fire(timer, now)``. A caller that loops a
message back synchronously must queue it, not feed a transaction from inside the
handling of that transaction's own actions (as an event loop does naturally).

Each machine is a table ``(state, input) -> (operations, next state)``. An input missing
from the table raises :class:`LocalProtocolError`; an input the RFC says to absorb
(a late provisional, a retransmitted ACK) is in the table with no operations, so nothing
is ignored by accident. Timers that RFC 3261 sets to zero on reliable transports (D, I,
J, K) fire within the same call; the retransmission timers (A, E, G) are never started
on a reliable transport.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Final, assert_never

from tollguard.sip.errors import LocalProtocolError
from tollguard.sip.headers import Headers, Via
from tollguard.sip.message import Request, Response, make_response

__all__ = [
    "MAGIC_COOKIE",
    "Action",
    "CancelTimer",
    "ClientTransaction",
    "Deliver",
    "Input",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Send",
    "ServerTransaction",
    "StartTimer",
    "State",
    "Terminated",
    "TimedOut",
    "Timer",
    "TimerConfig",
    "Transaction",
    "TransactionKey",
    "TransactionTable",
    "TransportFailed",
    "build_ack",
    "build_cancel",
    "cancel_target_key",
    "client_key",
    "client_transaction",
    "server_key",
    "server_transaction",
]

# RFC 3261 §8.1.1.7: branches starting with this were made by an RFC 3261 element.
MAGIC_COOKIE: Final = "z9hG4bK"


class _FastEnum(enum.Enum):
    # Members are singletons compared by identity; Enum's own __hash__ hashes the name
    # in Python code, which showed up as the top cost of the per-message table lookup.
    __hash__ = object.__hash__


class Timer(_FastEnum):
    """RFC 3261 §17 / RFC 6026 timers, named as in the RFCs (Table 4 of RFC 3261 §A)."""

    A = "A"  # INVITE request retransmit, unreliable only
    B = "B"  # INVITE transaction timeout
    D = "D"  # wait for response retransmits after a non-2xx final
    E = "E"  # non-INVITE request retransmit, unreliable only
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # INVITE final response retransmit, unreliable only
    H = "H"  # wait for ACK
    I = "I"  # noqa: E741 (the RFC's name) wait for ACK retransmits
    J = "J"  # wait for non-INVITE request retransmits
    K = "K"  # wait for non-INVITE response retransmits
    L = "L"  # RFC 6026: wait for INVITE retransmits after a 2xx
    M = "M"  # RFC 6026: wait for 2xx retransmits (forking)


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2 and T4 of RFC 3261 §17.1.1.1 and Table 4, in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError("timers need 0 < T1 <= T2")
        if self.t4 <= 0:
            raise ValueError("T4 must be positive")


DEFAULT_TIMERS: Final = TimerConfig()


# --- actions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send this message to the transaction's peer (a retransmission is also a Send)."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start ``timer`` to fire at ``at`` (the same clock as ``now``)."""

    timer: Timer
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Stop ``timer`` if it is pending."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Deliver:
    """Pass this message up to the transaction user."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer B, F or H fired: the transaction user treats it as a 408 (§8.1.3.1)."""


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport reported a failure: the transaction user treats it as a 503."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over: remove it from its table."""


Action = Send | StartTimer | CancelTimer | Deliver | TimedOut | TransportFailed | Terminated

_TIMED_OUT: Final = TimedOut()
_TRANSPORT_FAILED: Final = TransportFailed()
_TERMINATED: Final = Terminated()
_CANCEL: Final = {timer: CancelTimer(timer) for timer in Timer}


# --- states, inputs and operations ---------------------------------------------------


class State(_FastEnum):
    """Union of the states of the four machines; each table uses its own subset."""

    INITIAL = "initial"  # constructed, start() not called yet (not an RFC state)
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Input(_FastEnum):
    """What can happen to a transaction."""

    START = "start"
    # Responses received (client) or passed down by the TU (server), by class.
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    # Requests received by a server transaction.
    REQUEST = "request"  # a retransmission of the request that created it
    ACK = "ack"
    TIMER_A = "timer A"
    TIMER_B = "timer B"
    TIMER_D = "timer D"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_K = "timer K"
    TIMER_L = "timer L"
    TIMER_M = "timer M"
    TRANSPORT_ERROR = "transport error"


_TIMER_INPUT: Final = {timer: Input[f"TIMER_{timer.value}"] for timer in Timer}
_RETRANSMIT_TIMERS: Final = frozenset({Timer.A, Timer.E, Timer.G})


class _Op(_FastEnum):
    DELIVER_REQUEST = "deliver request"  # pass the original request to the TU
    DELIVER = "deliver"  # pass the input message to the TU
    SEND_REQUEST = "send request"  # (re)send the original request
    SEND_ACK = "send ack"  # build (once) and send the ACK for a non-2xx final
    SEND_TRYING = "send 100"  # INVITE server: 100 Trying at once (§17.2.1)
    SEND = "send"  # send the response the TU passed down, remember it
    RESEND_LAST = "resend last"  # resend the last response sent, if any
    TIMED_OUT = "timed out"
    TRANSPORT_FAILED = "transport failed"


@dataclass(frozen=True, slots=True)
class _Start:
    timer: Timer
    at_t2: bool = False  # non-INVITE Proceeding: retransmit every T2 (§17.1.2.2)


@dataclass(frozen=True, slots=True)
class _Backoff:
    """Restart a retransmission timer with its interval doubled, capped at T2 if given."""

    timer: Timer
    capped: bool


@dataclass(frozen=True, slots=True)
class _Cancel:
    timer: Timer


_Operation = _Op | _Start | _Backoff | _Cancel
_Table = dict[tuple[State, Input], tuple[tuple[_Operation, ...], State]]

S, I = State, Input  # noqa: E741 (short names keep the tables readable)
_NONE: tuple[_Operation, ...] = ()

# RFC 3261 §17.1.1.2 Figure 5, as amended by RFC 6026 §7.2 / §8.4.
INVITE_CLIENT_TABLE: Final[_Table] = {
    (S.INITIAL, I.START): ((_Op.SEND_REQUEST, _Start(Timer.A), _Start(Timer.B)), S.CALLING),
    (S.CALLING, I.TIMER_A): ((_Op.SEND_REQUEST, _Backoff(Timer.A, capped=False)), S.CALLING),
    (S.CALLING, I.TIMER_B): ((_Op.TIMED_OUT,), S.TERMINATED),
    (S.CALLING, I.PROVISIONAL): ((_Cancel(Timer.A), _Cancel(Timer.B), _Op.DELIVER), S.PROCEEDING),
    (S.CALLING, I.SUCCESS): (
        (_Cancel(Timer.A), _Cancel(Timer.B), _Op.DELIVER, _Start(Timer.M)),
        S.ACCEPTED,
    ),
    (S.CALLING, I.FAILURE): (
        (_Cancel(Timer.A), _Cancel(Timer.B), _Op.DELIVER, _Op.SEND_ACK, _Start(Timer.D)),
        S.COMPLETED,
    ),
    (S.CALLING, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
    (S.PROCEEDING, I.PROVISIONAL): ((_Op.DELIVER,), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS): ((_Op.DELIVER, _Start(Timer.M)), S.ACCEPTED),
    (S.PROCEEDING, I.FAILURE): ((_Op.DELIVER, _Op.SEND_ACK, _Start(Timer.D)), S.COMPLETED),
    # A stream transport can break while we wait for the final response.
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
    # RFC 6026 §8.4: every 2xx (retransmissions, other forks) goes up so the TU ACKs it.
    (S.ACCEPTED, I.SUCCESS): ((_Op.DELIVER,), S.ACCEPTED),
    # A provisional or non-2xx arriving after a 2xx means nothing any more.
    (S.ACCEPTED, I.PROVISIONAL): (_NONE, S.ACCEPTED),
    (S.ACCEPTED, I.FAILURE): (_NONE, S.ACCEPTED),
    # The TU sends the ACK for 2xx itself; a transport error is its business then.
    (S.ACCEPTED, I.TRANSPORT_ERROR): (_NONE, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): (_NONE, S.TERMINATED),
    # §17.1.1.2: a retransmitted final is answered with the same ACK, not passed up.
    (S.COMPLETED, I.FAILURE): ((_Op.SEND_ACK,), S.COMPLETED),
    (S.COMPLETED, I.PROVISIONAL): (_NONE, S.COMPLETED),
    (S.COMPLETED, I.SUCCESS): (_NONE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_D): (_NONE, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
}

# RFC 3261 §17.1.2.2 Figure 6.
NON_INVITE_CLIENT_TABLE: Final[_Table] = {
    (S.INITIAL, I.START): ((_Op.SEND_REQUEST, _Start(Timer.E), _Start(Timer.F)), S.TRYING),
    (S.TRYING, I.TIMER_E): ((_Op.SEND_REQUEST, _Backoff(Timer.E, capped=True)), S.TRYING),
    (S.TRYING, I.TIMER_F): ((_Op.TIMED_OUT,), S.TERMINATED),
    (S.TRYING, I.PROVISIONAL): ((_Op.DELIVER,), S.PROCEEDING),
    (S.TRYING, I.SUCCESS): (
        (_Cancel(Timer.E), _Cancel(Timer.F), _Op.DELIVER, _Start(Timer.K)),
        S.COMPLETED,
    ),
    (S.TRYING, I.FAILURE): (
        (_Cancel(Timer.E), _Cancel(Timer.F), _Op.DELIVER, _Start(Timer.K)),
        S.COMPLETED,
    ),
    (S.TRYING, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
    # §17.1.2.2: in Proceeding, retransmit every T2.
    (S.PROCEEDING, I.TIMER_E): ((_Op.SEND_REQUEST, _Start(Timer.E, at_t2=True)), S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): ((_Op.TIMED_OUT,), S.TERMINATED),
    (S.PROCEEDING, I.PROVISIONAL): ((_Op.DELIVER,), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS): (
        (_Cancel(Timer.E), _Cancel(Timer.F), _Op.DELIVER, _Start(Timer.K)),
        S.COMPLETED,
    ),
    (S.PROCEEDING, I.FAILURE): (
        (_Cancel(Timer.E), _Cancel(Timer.F), _Op.DELIVER, _Start(Timer.K)),
        S.COMPLETED,
    ),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
    # Completed only buffers response retransmissions.
    (S.COMPLETED, I.PROVISIONAL): (_NONE, S.COMPLETED),
    (S.COMPLETED, I.SUCCESS): (_NONE, S.COMPLETED),
    (S.COMPLETED, I.FAILURE): (_NONE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_K): (_NONE, S.TERMINATED),
}

# RFC 3261 §17.2.1 Figure 7, as amended by RFC 6026 §7.1 / §8.5-8.7.
INVITE_SERVER_TABLE: Final[_Table] = {
    (S.INITIAL, I.START): ((_Op.DELIVER_REQUEST, _Op.SEND_TRYING), S.PROCEEDING),
    (S.PROCEEDING, I.REQUEST): ((_Op.RESEND_LAST,), S.PROCEEDING),
    (S.PROCEEDING, I.PROVISIONAL): ((_Op.SEND,), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS): ((_Op.SEND, _Start(Timer.L)), S.ACCEPTED),
    (S.PROCEEDING, I.FAILURE): ((_Op.SEND, _Start(Timer.G), _Start(Timer.H)), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
    # RFC 6026 §8.5-8.7: the TU retransmits the 2xx; INVITE retransmissions are absorbed;
    # an ACK that matches (an RFC 2543 peer reusing the branch) goes to the TU.
    (S.ACCEPTED, I.REQUEST): (_NONE, S.ACCEPTED),
    (S.ACCEPTED, I.SUCCESS): ((_Op.SEND,), S.ACCEPTED),
    (S.ACCEPTED, I.ACK): ((_Op.DELIVER,), S.ACCEPTED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): (_NONE, S.TERMINATED),
    (S.COMPLETED, I.REQUEST): ((_Op.RESEND_LAST,), S.COMPLETED),
    (S.COMPLETED, I.TIMER_G): ((_Op.RESEND_LAST, _Backoff(Timer.G, capped=True)), S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): ((_Cancel(Timer.G), _Op.TIMED_OUT), S.TERMINATED),
    (S.COMPLETED, I.ACK): ((_Cancel(Timer.G), _Cancel(Timer.H), _Start(Timer.I)), S.CONFIRMED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
    # §17.2.1: Confirmed only absorbs ACK retransmissions.
    (S.CONFIRMED, I.ACK): (_NONE, S.CONFIRMED),
    (S.CONFIRMED, I.REQUEST): (_NONE, S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I): (_NONE, S.TERMINATED),
}

# RFC 3261 §17.2.2 Figure 8.
NON_INVITE_SERVER_TABLE: Final[_Table] = {
    (S.INITIAL, I.START): ((_Op.DELIVER_REQUEST,), S.TRYING),
    # "any further request retransmissions are discarded" until the TU answers.
    (S.TRYING, I.REQUEST): (_NONE, S.TRYING),
    (S.TRYING, I.PROVISIONAL): ((_Op.SEND,), S.PROCEEDING),
    (S.TRYING, I.SUCCESS): ((_Op.SEND, _Start(Timer.J)), S.COMPLETED),
    (S.TRYING, I.FAILURE): ((_Op.SEND, _Start(Timer.J)), S.COMPLETED),
    (S.PROCEEDING, I.REQUEST): ((_Op.RESEND_LAST,), S.PROCEEDING),
    (S.PROCEEDING, I.PROVISIONAL): ((_Op.SEND,), S.PROCEEDING),
    (S.PROCEEDING, I.SUCCESS): ((_Op.SEND, _Start(Timer.J)), S.COMPLETED),
    (S.PROCEEDING, I.FAILURE): ((_Op.SEND, _Start(Timer.J)), S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
    (S.COMPLETED, I.REQUEST): ((_Op.RESEND_LAST,), S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): (_NONE, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): ((_Op.TRANSPORT_FAILED,), S.TERMINATED),
}

del S, I


# --- machines --------------------------------------------------------------------------


def _response_input(status: int) -> Input:
    if 100 <= status <= 199:
        return Input.PROVISIONAL
    if 200 <= status <= 299:
        return Input.SUCCESS
    if 300 <= status <= 699:
        return Input.FAILURE
    raise LocalProtocolError(f"status {status} is not a SIP response class")


class Transaction:
    """Shared engine: state, running timers and the table interpreter.

    Small and mutable on purpose: one object per transaction, changed only through
    ``start``/``receive``/``fire``/``transport_error`` (and ``send_response`` on
    servers), each returning the actions to perform.
    """

    __slots__ = (
        "_interval",
        "_last_response",
        "_running",
        "reliable",
        "request",
        "state",
        "timers",
    )

    TABLE: ClassVar[_Table] = {}

    def __init__(
        self, request: Request, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = State.INITIAL
        self._running: set[Timer] = set()
        self._interval = timers.t1
        self._last_response: Response | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.name}>"

    @property
    def last_response(self) -> Response | None:
        """The last response passed to the TU (client) or sent (server)."""
        return self._last_response

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def start(self, now: float) -> tuple[Action, ...]:
        """Begin: a client sends its request, a server passes its request to the TU."""
        return self._handle(Input.START, None, now)

    def fire(self, timer: Timer, now: float) -> tuple[Action, ...]:
        """``timer`` is due. Raises if it is not running (it was cancelled or never set)."""
        if timer not in self._running:
            raise LocalProtocolError(f"timer {timer.value} is not running in {self!r}")
        self._running.discard(timer)
        return self._handle(_TIMER_INPUT[timer], None, now)

    def transport_error(self, now: float) -> tuple[Action, ...]:
        """The transport could not deliver a message of this transaction."""
        return self._handle(Input.TRANSPORT_ERROR, None, now)

    # Durations per RFC 3261 §17 and Table 4; None means "not used on this transport".
    def _duration(self, timer: Timer) -> float | None:
        t = self.timers
        match timer:
            case Timer.A | Timer.E | Timer.G:
                # §17.1.1.2, §17.1.2.2, §17.2.1: retransmit only over unreliable transports.
                return None if self.reliable else t.t1
            case Timer.B | Timer.F | Timer.H | Timer.L | Timer.M:
                return 64 * t.t1
            case Timer.D:
                # "at least 32 seconds for unreliable transports" (§17.1.1.2).
                return 0.0 if self.reliable else max(32.0, 64 * t.t1)
            case Timer.I | Timer.K:
                return 0.0 if self.reliable else t.t4
            case Timer.J:
                return 0.0 if self.reliable else 64 * t.t1
            case _:
                assert_never(timer)

    def _handle(
        self, event: Input, message: Request | Response | None, now: float
    ) -> tuple[Action, ...]:
        try:
            operations, next_state = self.TABLE[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"{event.value} is not allowed in state {self.state.name} of {self!r}"
            ) from None
        actions: list[Action] = []
        due: Timer | None = None
        for operation in operations:
            if isinstance(operation, _Op):
                self._perform(operation, message, actions)
            elif isinstance(operation, _Start):
                duration = self._duration(operation.timer)
                if duration is None:
                    continue
                if operation.at_t2:
                    duration = self.timers.t2
                if operation.timer in _RETRANSMIT_TIMERS:
                    self._interval = duration
                if duration == 0.0:
                    due = operation.timer
                    continue
                self._running.add(operation.timer)
                actions.append(StartTimer(operation.timer, now + duration))
            elif isinstance(operation, _Backoff):
                interval = self._interval * 2
                if operation.capped:
                    interval = min(interval, self.timers.t2)
                self._interval = interval
                self._running.add(operation.timer)
                actions.append(StartTimer(operation.timer, now + interval))
            elif operation.timer in self._running:
                self._running.discard(operation.timer)
                actions.append(_CANCEL[operation.timer])
        self.state = next_state
        if next_state is State.TERMINATED:
            actions.extend(_CANCEL[timer] for timer in sorted(self._running, key=_timer_order))
            self._running.clear()
            actions.append(_TERMINATED)
        elif due is not None:
            # A zero timer on a reliable transport: fire it now (RFC 3261 §17, Table 4).
            actions.extend(self._handle(_TIMER_INPUT[due], None, now))
        return tuple(actions)

    def _perform(
        self, operation: _Op, message: Request | Response | None, actions: list[Action]
    ) -> None:
        match operation:
            case _Op.DELIVER_REQUEST:
                actions.append(Deliver(self.request))
            case _Op.DELIVER:
                assert message is not None
                if isinstance(message, Response):
                    self._last_response = message
                actions.append(Deliver(message))
            case _Op.SEND_REQUEST:
                actions.append(Send(self.request))
            case _Op.SEND_ACK:
                actions.append(Send(self._ack(message)))
            case _Op.SEND_TRYING:
                trying = make_response(self.request, 100)
                self._last_response = trying
                actions.append(Send(trying))
            case _Op.SEND:
                assert isinstance(message, Response)
                self._last_response = message
                actions.append(Send(message))
            case _Op.RESEND_LAST:
                if self._last_response is not None:
                    actions.append(Send(self._last_response))
            case _Op.TIMED_OUT:
                actions.append(_TIMED_OUT)
            case _Op.TRANSPORT_FAILED:
                actions.append(_TRANSPORT_FAILED)
            case _:
                assert_never(operation)

    def _ack(self, message: Request | Response | None) -> Request:
        raise LocalProtocolError(f"{self!r} does not send ACKs")


def _timer_order(timer: Timer) -> str:
    return timer.value


class ClientTransaction(Transaction):
    """A client transaction: ``start``, then ``receive(response)`` and ``fire``."""

    __slots__ = ()

    def receive(self, response: Response, now: float) -> tuple[Action, ...]:
        """A response matched to this transaction by :func:`client_key`."""
        if not isinstance(response, Response):
            raise LocalProtocolError(f"{self!r} receives responses, not {type(response).__name__}")
        event = _response_input(response.status)
        return self._handle(event, response, now)


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 with RFC 6026: Calling, Proceeding, Accepted, Completed."""

    __slots__ = ("_ack_request",)
    TABLE = INVITE_CLIENT_TABLE

    def __init__(
        self, request: Request, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"an INVITE client transaction cannot send {request.method}")
        super().__init__(request, reliable, timers)
        self._ack_request: Request | None = None

    def _ack(self, message: Request | Response | None) -> Request:
        # Built from the first non-2xx final; its retransmissions get the same ACK.
        if self._ack_request is None:
            assert isinstance(message, Response)
            self._ack_request = build_ack(self.request, message)
        return self._ack_request


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2: Trying, Proceeding, Completed."""

    __slots__ = ()
    TABLE = NON_INVITE_CLIENT_TABLE

    def __init__(
        self, request: Request, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE client transaction cannot send {request.method}"
            )
        super().__init__(request, reliable, timers)


class ServerTransaction(Transaction):
    """A server transaction: ``start``, ``receive(request)``, ``send_response``, ``fire``."""

    __slots__ = ()

    def receive(self, request: Request, now: float) -> tuple[Action, ...]:
        """A request matched to this transaction by :func:`server_key`."""
        if not isinstance(request, Request):
            raise LocalProtocolError(f"{self!r} receives requests, not {type(request).__name__}")
        event = Input.ACK if request.method == "ACK" else Input.REQUEST
        if event is Input.REQUEST and request.method != self.request.method:
            raise LocalProtocolError(f"{request.method} does not belong to {self!r}")
        return self._handle(event, request, now)

    def send_response(self, response: Response, now: float) -> tuple[Action, ...]:
        """The transaction user answers the request."""
        return self._handle(_response_input(response.status), response, now)


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with RFC 6026: Proceeding, Accepted, Completed, Confirmed.

    ``start`` passes the INVITE up and sends 100 Trying at once, which §17.2.1 always
    allows and which stops the caller's Timer A retransmissions early.
    """

    __slots__ = ()
    TABLE = INVITE_SERVER_TABLE

    def __init__(
        self, request: Request, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"an INVITE server transaction cannot take {request.method}")
        super().__init__(request, reliable, timers)


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2: Trying, Proceeding, Completed."""

    __slots__ = ()
    TABLE = NON_INVITE_SERVER_TABLE

    def __init__(
        self, request: Request, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE server transaction cannot take {request.method}"
            )
        super().__init__(request, reliable, timers)

    def receive(self, request: Request, now: float) -> tuple[Action, ...]:
        if isinstance(request, Request) and request.method == "ACK":
            raise LocalProtocolError(f"ACK does not belong to {self!r}")
        return super().receive(request, now)


def client_transaction(
    request: Request, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS
) -> ClientTransaction:
    """The right client machine for ``request`` (ACK has none: §17.1.1.3, §13.2.2.4)."""
    if request.method == "INVITE":
        return InviteClientTransaction(request, reliable, timers)
    return NonInviteClientTransaction(request, reliable, timers)


def server_transaction(
    request: Request, reliable: bool, timers: TimerConfig = DEFAULT_TIMERS
) -> ServerTransaction:
    """The right server machine for ``request`` (an unmatched ACK goes to the TU instead)."""
    if request.method == "INVITE":
        return InviteServerTransaction(request, reliable, timers)
    return NonInviteServerTransaction(request, reliable, timers)


# --- the ACK for a non-2xx final ---------------------------------------------------------


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK the INVITE client transaction sends for a 300-699 (RFC 3261 §17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and top Via (so it matches the server
    transaction), To from the response (with its tag), and the INVITE's Route set.
    """
    source = invite.headers
    top_via = source.get_all("Via")
    if not top_via:
        raise LocalProtocolError("INVITE without Via cannot be acknowledged")
    fields: list[tuple[str, str]] = [("Via", top_via[0])]
    fields.extend(("Route", value) for value in source.values("Route"))
    fields.append(("Max-Forwards", source.get("Max-Forwards") or "70"))
    for name, value in (
        ("From", source.get("From")),
        ("To", response.headers.get("To")),
        ("Call-ID", source.get("Call-ID")),
    ):
        if value is None:
            raise LocalProtocolError(f"cannot build ACK without {name}")
        fields.append((name, value))
    fields.append(("CSeq", f"{invite.cseq.seq} ACK"))
    fields.append(("Content-Length", "0"))
    return Request("ACK", invite.uri, Headers(fields))


def build_cancel(invite: Request) -> Request:
    """The CANCEL for a pending INVITE (RFC 3261 §9.1).

    Same Request-URI, Call-ID, To, From, CSeq number and top Via as the INVITE (so the
    far end matches it with :func:`cancel_target_key`), and its Route set. It runs in its
    own non-INVITE client transaction; §9.1 allows sending it only once a provisional
    response has arrived, which the caller checks (``state is State.PROCEEDING``).
    """
    if invite.method != "INVITE":
        raise LocalProtocolError(f"only an INVITE can be cancelled, not {invite.method}")
    source = invite.headers
    top_via = source.get_all("Via")
    if not top_via:
        raise LocalProtocolError("INVITE without Via cannot be cancelled")
    fields: list[tuple[str, str]] = [("Via", top_via[0])]
    fields.extend(("Route", value) for value in source.values("Route"))
    fields.append(("Max-Forwards", source.get("Max-Forwards") or "70"))
    for name in ("From", "To", "Call-ID"):
        value = source.get(name)
        if value is None:
            raise LocalProtocolError(f"cannot build CANCEL without {name}")
        fields.append((name, value))
    fields.append(("CSeq", f"{invite.cseq.seq} CANCEL"))
    return Request("CANCEL", invite.uri, Headers(fields))


# --- matching (RFC 3261 §17.1.3, §17.2.3) ----------------------------------------------------

type TransactionKey = tuple[Hashable, ...]


def client_key(message: Request | Response) -> TransactionKey:
    """Top Via branch and CSeq method (§17.1.3): a request's key, and its responses'.

    The method matters because a CANCEL shares its INVITE's branch.
    """
    branch = _top_via(message).branch
    if not branch:
        raise LocalProtocolError("top Via has no branch")
    return (branch, message.cseq.method)


def server_key(request: Request) -> TransactionKey:
    """The key of the server transaction a request belongs to (§17.2.3).

    RFC 3261 branches (magic cookie): branch, sent-by and method, with ACK matching the
    INVITE. Older peers (RFC 2543): Request-URI, From tag, Call-ID, CSeq number, top Via
    and method. The To tag is left out of the fallback key so that the ACK of a non-2xx
    (which carries our tag) finds its INVITE; two requests differing only in To tag are
    then treated as retransmissions, which RFC 2543 peers do not produce.
    """
    return _server_key(request, "INVITE" if request.method == "ACK" else request.method)


def cancel_target_key(cancel: Request) -> TransactionKey:
    """The server key of the INVITE a CANCEL refers to (RFC 3261 §9.2)."""
    if cancel.method != "CANCEL":
        raise LocalProtocolError(f"{cancel.method} is not a CANCEL")
    return _server_key(cancel, "INVITE")


def _top_via(message: Request | Response) -> Via:
    vias = message.vias
    if not vias:
        raise LocalProtocolError("message has no Via")
    return vias[0]


def _server_key(request: Request, method: str) -> TransactionKey:
    via = _top_via(request)
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, via.host.lower(), via.port, method)
    return (
        "rfc2543",
        str(request.uri),
        request.from_.tag,
        request.call_id,
        request.cseq.seq,
        str(via),
        method,
    )


class TransactionTable[T: Transaction]:
    """Live transactions by key, for O(1) routing of incoming messages.

    One table per side: ``TransactionTable(client_key)`` finds the client transaction
    of a response, ``TransactionTable(server_key)`` the server transaction of a request
    (an ACK finds its INVITE; an ACK for a 2xx finds nothing and goes to the dialog).
    """

    __slots__ = ("_by_key", "_key")

    def __init__(self, key: Callable[[Request], TransactionKey]) -> None:
        self._key = key
        self._by_key: dict[TransactionKey, T] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._by_key.values()))

    def key_of(self, message: Request | Response) -> TransactionKey:
        return self._key(message)  # type: ignore[arg-type]

    def add(self, transaction: T) -> TransactionKey:
        """Register ``transaction`` under its request's key; a live duplicate is an error."""
        key = self._key(transaction.request)
        existing = self._by_key.get(key)
        if existing is not None and not existing.terminated:
            raise LocalProtocolError(f"a transaction with key {key!r} already exists")
        self._by_key[key] = transaction
        return key

    def find(self, message: Request | Response) -> T | None:
        """The live transaction ``message`` belongs to, if any."""
        return self._by_key.get(self._key(message))  # type: ignore[arg-type]

    def get(self, key: TransactionKey) -> T | None:
        return self._by_key.get(key)

    def remove(self, transaction: T) -> None:
        """Forget ``transaction`` (after its Terminated action). Unknown ones are an error."""
        key = self._key(transaction.request)
        if self._by_key.get(key) is not transaction:
            raise LocalProtocolError(f"{transaction!r} is not in the table")
        del self._by_key[key]
