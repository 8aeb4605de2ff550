"""Transaction state machines driven by a fake clock, keys and the transaction table."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollguard.sip.errors import LocalProtocolError
from tollguard.sip.headers import Headers
from tollguard.sip.message import Request, Response, make_response
from tollguard.sip.transaction import (
    INVITE_CLIENT_TABLE,
    INVITE_SERVER_TABLE,
    NON_INVITE_CLIENT_TABLE,
    NON_INVITE_SERVER_TABLE,
    Action,
    CancelTimer,
    ClientTransaction,
    Deliver,
    Input,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Send,
    StartTimer,
    State,
    Terminated,
    TimedOut,
    Timer,
    TimerConfig,
    Transaction,
    TransactionTable,
    TransportFailed,
    build_cancel,
    cancel_target_key,
    client_key,
    client_transaction,
    server_key,
    server_transaction,
)
from tollguard.sip.uri import parse_uri

BRANCH = "z9hG4bK776asdhds"


def request(
    method: str = "INVITE",
    *,
    branch: str = BRANCH,
    cseq: int = 1,
    cseq_method: str | None = None,
    routes: tuple[str, ...] = (),
    via_host: str = "pc33.example.com",
) -> Request:
    fields = [
        ("Via", f"SIP/2.0/UDP {via_host}:5062;branch={branch}"),
        *(("Route", route) for route in routes),
        ("Max-Forwards", "70"),
        ("To", "Bob <sip:bob@example.com>"),
        ("From", "Alice <sip:alice@example.com>;tag=1928301774"),
        ("Call-ID", "a84b4c76e66710@pc33.example.com"),
        ("CSeq", f"{cseq} {cseq_method or method}"),
    ]
    return Request(method, parse_uri("sip:bob@example.com"), Headers(fields))


def response(req: Request, status: int, to_tag: str | None = "b-tag") -> Response:
    return make_response(req, status, to_tag=to_tag)


@dataclass
class Harness:
    """Plays the transport: keeps timer deadlines and a fake clock, records actions."""

    transaction: Transaction
    now: float = 0.0
    timers: dict[Timer, float] = field(default_factory=dict)
    sent: list[tuple[float, Request | Response]] = field(default_factory=list)
    delivered: list[Request | Response] = field(default_factory=list)
    events: list[Action] = field(default_factory=list)

    def apply(self, actions: tuple[Action, ...]) -> tuple[Action, ...]:
        for action in actions:
            assert not self.terminated, f"action {action} after Terminated"
            match action:
                case Send(message):
                    self.sent.append((self.now, message))
                case StartTimer(timer, at):
                    assert at >= self.now
                    self.timers[timer] = at
                case CancelTimer(timer):
                    assert timer in self.timers, f"cancel of idle timer {timer}"
                    del self.timers[timer]
                case Deliver(message):
                    self.delivered.append(message)
                case TimedOut() | TransportFailed() | Terminated():
                    self.events.append(action)
        if self.terminated:
            assert not self.timers, f"timers left running: {self.timers}"
        return actions

    def state(self) -> State:
        return self.transaction.state

    @property
    def terminated(self) -> bool:
        return any(isinstance(event, Terminated) for event in self.events)

    def advance(self, to: float) -> None:
        """Move the clock to ``to``, firing due timers in deadline order."""
        while self.timers:
            timer, at = min(self.timers.items(), key=lambda item: item[1])
            if at > to:
                break
            del self.timers[timer]
            self.now = at
            self.apply(self.transaction.fire(timer, at))
        self.now = to

    def start(self) -> None:
        self.apply(self.transaction.start(self.now))

    def receive(self, message: Request | Response) -> tuple[Action, ...]:
        transaction = self.transaction
        if isinstance(transaction, ClientTransaction):
            assert isinstance(message, Response)
            return self.apply(transaction.receive(message, self.now))
        assert isinstance(message, Request)
        assert isinstance(transaction, InviteServerTransaction | NonInviteServerTransaction)
        return self.apply(transaction.receive(message, self.now))

    def respond(self, message: Response) -> tuple[Action, ...]:
        transaction = self.transaction
        assert isinstance(transaction, InviteServerTransaction | NonInviteServerTransaction)
        return self.apply(transaction.send_response(message, self.now))

    def send_times(self) -> list[float]:
        return [at for at, _ in self.sent]


# --- INVITE client -------------------------------------------------------------------


def test_invite_client_retransmits_with_doubling_until_timer_b() -> None:
    harness = Harness(InviteClientTransaction(request(), reliable=False))
    harness.start()
    harness.advance(40.0)
    # Timer A doubles without a cap (§17.1.1.2); Timer B fires at 64*T1 = 32 s.
    assert harness.send_times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert harness.events == [TimedOut(), Terminated()]
    assert harness.transaction.state is State.TERMINATED


def test_invite_client_on_reliable_transport_sends_once() -> None:
    harness = Harness(InviteClientTransaction(request(), reliable=True))
    harness.start()
    assert harness.timers == {Timer.B: 32.0}
    harness.advance(40.0)
    assert harness.send_times() == [0.0]
    assert harness.events == [TimedOut(), Terminated()]


def test_invite_client_custom_timers() -> None:
    timers = TimerConfig(t1=0.1, t2=1.0, t4=2.0)
    harness = Harness(InviteClientTransaction(request(), reliable=False, timers=timers))
    harness.start()
    assert harness.timers == {Timer.A: 0.1, Timer.B: pytest.approx(6.4)}


def test_invite_client_provisional_stops_retransmissions() -> None:
    invite = request()
    harness = Harness(InviteClientTransaction(invite, reliable=False))
    harness.start()
    harness.advance(0.7)
    ringing = response(invite, 180)
    harness.receive(ringing)
    assert harness.transaction.state is State.PROCEEDING
    assert harness.timers == {}
    harness.advance(100.0)
    assert harness.send_times() == [0.0, 0.5]
    assert harness.delivered == [ringing]
    assert harness.events == []


@pytest.mark.parametrize(("reliable", "d_at"), [(False, 32.0), (True, None)], ids=["udp", "tcp"])
def test_invite_client_acks_non_2xx_final(reliable: bool, d_at: float | None) -> None:
    invite = request(routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    harness = Harness(InviteClientTransaction(invite, reliable=reliable))
    harness.start()
    busy = response(invite, 486)
    harness.receive(busy)
    assert harness.delivered == [busy]
    ack = harness.sent[-1][1]
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.cseq.seq == 1 and ack.cseq.method == "ACK"
    assert ack.to.tag == "b-tag"
    assert ack.from_ == invite.from_ and ack.call_id == invite.call_id
    assert [via.branch for via in ack.vias] == [BRANCH]
    assert ack.headers.get_all("Route") == ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")
    if d_at is None:
        assert harness.events == [Terminated()]
        return
    assert harness.transaction.state is State.COMPLETED
    assert harness.timers == {Timer.D: d_at}
    # A retransmitted final gets the very same ACK and is not passed up again.
    harness.advance(5.0)
    harness.receive(busy)
    assert harness.sent[-1] == (5.0, ack)
    assert harness.delivered == [busy]
    harness.advance(40.0)
    assert harness.events == [Terminated()]


def test_invite_client_accepted_state_passes_2xx_and_absorbs_the_rest() -> None:
    invite = request()
    harness = Harness(InviteClientTransaction(invite, reliable=False))
    harness.start()
    ok = response(invite, 200)
    harness.receive(ok)
    assert harness.transaction.state is State.ACCEPTED
    assert harness.timers == {Timer.M: 32.0}
    harness.advance(1.0)
    other_fork = response(invite, 200, to_tag="fork-2")
    harness.receive(other_fork)
    assert harness.receive(response(invite, 180)) == ()
    assert harness.receive(response(invite, 503)) == ()
    # The TU sends the ACK for 2xx; the transaction sends nothing but the INVITE.
    assert [message for _, message in harness.sent] == [invite]
    assert harness.delivered == [ok, other_fork]
    harness.advance(33.0)
    assert harness.events == [Terminated()]


def test_invite_client_transport_error() -> None:
    harness = Harness(InviteClientTransaction(request(), reliable=False))
    harness.start()
    harness.apply(harness.transaction.transport_error(0.1))
    assert harness.events == [TransportFailed(), Terminated()]


# --- non-INVITE client ----------------------------------------------------------------


def test_non_invite_client_backs_off_to_t2_then_timer_f() -> None:
    harness = Harness(NonInviteClientTransaction(request("OPTIONS"), reliable=False))
    harness.start()
    harness.advance(40.0)
    assert harness.send_times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert harness.events == [TimedOut(), Terminated()]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    options = request("OPTIONS")
    harness = Harness(NonInviteClientTransaction(options, reliable=False))
    harness.start()
    harness.advance(0.2)
    harness.receive(response(options, 100, to_tag=None))
    assert harness.transaction.state is State.PROCEEDING
    harness.advance(10.0)
    # The pending E (due at 0.5) fires, then every T2.
    assert harness.send_times() == [0.0, 0.5, 4.5, 8.5]


@pytest.mark.parametrize(("reliable", "k_at"), [(False, 6.0), (True, None)], ids=["udp", "tcp"])
def test_non_invite_client_final_then_timer_k(reliable: bool, k_at: float | None) -> None:
    options = request("OPTIONS")
    harness = Harness(NonInviteClientTransaction(options, reliable=reliable))
    harness.start()
    harness.advance(1.0)
    ok = response(options, 200)
    harness.receive(ok)
    assert harness.delivered == [ok]
    assert harness.transaction.last_response == ok
    if k_at is None:
        assert harness.events == [Terminated()]
        return
    assert harness.timers == {Timer.K: k_at}
    assert harness.receive(ok) == ()
    harness.advance(k_at)
    assert harness.events == [Terminated()]
    assert harness.delivered == [ok]


# --- INVITE server ----------------------------------------------------------------------


def test_invite_server_trying_and_retransmitted_final_until_ack() -> None:
    invite = request()
    harness = Harness(InviteServerTransaction(invite, reliable=False))
    harness.start()
    assert harness.delivered == [invite]
    trying = harness.sent[0][1]
    assert isinstance(trying, Response) and trying.status == 100 and trying.to.tag is None
    harness.receive(invite)
    assert harness.sent[-1][1] == trying
    ringing = response(invite, 180)
    harness.respond(ringing)
    harness.receive(invite)
    assert harness.sent[-1][1] == ringing
    busy = response(invite, 486)
    harness.advance(1.0)
    harness.respond(busy)
    assert harness.transaction.state is State.COMPLETED
    assert harness.timers == {Timer.G: 1.5, Timer.H: 33.0}
    harness.advance(13.0)
    # Timer G doubles up to T2 (§17.2.1).
    assert [at for at, message in harness.sent if message == busy] == [
        1.0,
        1.5,
        2.5,
        4.5,
        8.5,
        12.5,
    ]
    harness.receive(invite)
    assert harness.sent[-1] == (13.0, busy)
    ack = request("ACK", cseq_method="ACK")
    harness.receive(ack)
    assert harness.state() is State.CONFIRMED
    assert harness.timers == {Timer.I: 18.0}
    assert harness.receive(ack) == ()
    assert harness.receive(invite) == ()
    harness.advance(20.0)
    assert harness.events == [Terminated()]
    assert harness.delivered == [invite]


def test_invite_server_timer_h_without_ack() -> None:
    invite = request()
    harness = Harness(InviteServerTransaction(invite, reliable=True))
    harness.start()
    harness.respond(response(invite, 503))
    assert harness.timers == {Timer.H: 32.0}
    harness.advance(32.0)
    assert harness.events == [TimedOut(), Terminated()]
    assert len(harness.sent) == 2


def test_invite_server_ack_on_reliable_transport_terminates_at_once() -> None:
    invite = request()
    harness = Harness(InviteServerTransaction(invite, reliable=True))
    harness.start()
    harness.respond(response(invite, 404))
    harness.receive(request("ACK", cseq_method="ACK"))
    assert harness.events == [Terminated()]


def test_invite_server_accepted_absorbs_invite_and_sends_2xx_from_tu() -> None:
    invite = request()
    harness = Harness(InviteServerTransaction(invite, reliable=False))
    harness.start()
    ok = response(invite, 200)
    harness.respond(ok)
    assert harness.transaction.state is State.ACCEPTED
    assert harness.timers == {Timer.L: 32.0}
    assert harness.receive(invite) == ()
    harness.advance(0.5)
    harness.respond(ok)
    assert harness.sent[-1] == (0.5, ok)
    with pytest.raises(LocalProtocolError, match="3xx-6xx is not allowed in state ACCEPTED"):
        harness.respond(response(invite, 500))
    harness.advance(32.0)
    assert harness.events == [Terminated()]


# --- non-INVITE server ---------------------------------------------------------------


@pytest.mark.parametrize(("reliable", "j_at"), [(False, 32.0), (True, None)], ids=["udp", "tcp"])
def test_non_invite_server(reliable: bool, j_at: float | None) -> None:
    bye = request("BYE", cseq=2)
    harness = Harness(NonInviteServerTransaction(bye, reliable=reliable))
    harness.start()
    assert harness.delivered == [bye]
    # Trying: retransmissions are absorbed until the TU answers.
    assert harness.receive(bye) == ()
    ok = response(bye, 200)
    harness.respond(ok)
    if j_at is None:
        assert harness.events == [Terminated()]
        return
    assert harness.timers == {Timer.J: j_at}
    harness.advance(3.0)
    harness.receive(bye)
    assert harness.sent == [(0.0, ok), (3.0, ok)]
    with pytest.raises(LocalProtocolError, match="not allowed in state COMPLETED"):
        harness.respond(response(bye, 500))
    harness.advance(j_at)
    assert harness.events == [Terminated()]


def test_non_invite_server_proceeding_resends_provisional() -> None:
    register = request("REGISTER")
    harness = Harness(NonInviteServerTransaction(register, reliable=False))
    harness.start()
    trying = response(register, 100, to_tag=None)
    harness.respond(trying)
    harness.receive(register)
    assert [message for _, message in harness.sent] == [trying, trying]


# --- misuse ------------------------------------------------------------------------------


def test_firing_an_idle_timer_is_an_error() -> None:
    transaction = InviteClientTransaction(request(), reliable=True)
    transaction.start(0.0)
    with pytest.raises(LocalProtocolError, match="timer A is not running"):
        transaction.fire(Timer.A, 0.5)


def test_start_twice_is_an_error() -> None:
    transaction = NonInviteClientTransaction(request("OPTIONS"), reliable=True)
    transaction.start(0.0)
    with pytest.raises(LocalProtocolError, match="start is not allowed in state TRYING"):
        transaction.start(0.0)


@pytest.mark.parametrize(
    ("factory", "method"),
    [
        (InviteClientTransaction, "OPTIONS"),
        (NonInviteClientTransaction, "INVITE"),
        (NonInviteClientTransaction, "ACK"),
        (InviteServerTransaction, "BYE"),
        (NonInviteServerTransaction, "ACK"),
    ],
    ids=["ict-options", "nict-invite", "nict-ack", "ist-bye", "nist-ack"],
)
def test_wrong_method_for_machine(factory: type[Transaction], method: str) -> None:
    with pytest.raises(LocalProtocolError, match=method):
        factory(request(method), reliable=False)


def test_factories_pick_the_machine() -> None:
    assert isinstance(client_transaction(request(), True), InviteClientTransaction)
    assert isinstance(client_transaction(request("BYE"), True), NonInviteClientTransaction)
    assert isinstance(server_transaction(request(), True), InviteServerTransaction)
    assert isinstance(server_transaction(request("CANCEL"), True), NonInviteServerTransaction)


def test_server_rejects_foreign_requests() -> None:
    transaction = NonInviteServerTransaction(request("BYE"), reliable=False)
    transaction.start(0.0)
    with pytest.raises(LocalProtocolError, match="ACK does not belong"):
        transaction.receive(request("ACK", cseq_method="ACK"), 0.1)
    with pytest.raises(LocalProtocolError, match="INFO does not belong"):
        transaction.receive(request("INFO"), 0.1)


def test_timer_config_validation() -> None:
    with pytest.raises(ValueError, match="T1 <= T2"):
        TimerConfig(t1=5.0, t2=4.0)


# --- matching and the table --------------------------------------------------------------


def test_client_key_matches_responses_and_separates_cancel() -> None:
    invite = request()
    cancel = request("CANCEL")
    assert client_key(invite) == client_key(response(invite, 180)) == (BRANCH, "INVITE")
    assert client_key(cancel) == (BRANCH, "CANCEL") != client_key(invite)


def test_server_key_rfc3261() -> None:
    invite = request()
    ack = request("ACK", cseq_method="ACK")
    assert server_key(invite) == server_key(ack) == (BRANCH, "pc33.example.com", 5062, "INVITE")
    assert cancel_target_key(request("CANCEL")) == server_key(invite)
    assert server_key(request("CANCEL")) != server_key(invite)
    assert server_key(request(via_host="other.example.com")) != server_key(invite)
    with pytest.raises(LocalProtocolError, match="not a CANCEL"):
        cancel_target_key(invite)


def test_server_key_rfc2543_fallback() -> None:
    invite = request(branch="old-style-1")
    ack = request("ACK", branch="old-style-1", cseq_method="ACK")
    assert server_key(invite)[0] == "rfc2543"
    assert server_key(invite) == server_key(ack)
    assert server_key(invite) != server_key(request(branch="old-style-1", cseq=2))


def test_keys_need_a_branch() -> None:
    invite = request()
    bare = Request("INVITE", invite.uri, invite.headers.replace("Via", "SIP/2.0/UDP h"))
    with pytest.raises(LocalProtocolError, match="no branch"):
        client_key(bare)
    no_via = Request("INVITE", invite.uri, invite.headers.remove("Via"))
    with pytest.raises(LocalProtocolError, match="no Via"):
        server_key(no_via)


def test_build_cancel_matches_the_invite() -> None:
    invite = request(routes=("<sip:p1.example.com;lr>",))
    cancel = build_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.cseq.seq == invite.cseq.seq and cancel.cseq.method == "CANCEL"
    assert cancel.to == invite.to and cancel.from_ == invite.from_
    assert cancel.vias == invite.vias[:1]
    assert cancel.headers.get_all("Route") == ("<sip:p1.example.com;lr>",)
    assert cancel_target_key(cancel) == server_key(invite)
    assert client_key(cancel) == (BRANCH, "CANCEL")
    with pytest.raises(LocalProtocolError, match="only an INVITE"):
        build_cancel(request("BYE"))


def test_transaction_table_routes_and_forgets() -> None:
    servers: TransactionTable[InviteServerTransaction | NonInviteServerTransaction] = (
        TransactionTable(server_key)
    )
    invite = request()
    transaction = InviteServerTransaction(invite, reliable=False)
    key = servers.add(transaction)
    assert servers.get(key) is transaction
    assert servers.find(request("ACK", cseq_method="ACK")) is transaction
    assert servers.find(request("ACK", branch="z9hG4bKnew", cseq_method="ACK")) is None
    with pytest.raises(LocalProtocolError, match="already exists"):
        servers.add(InviteServerTransaction(invite, reliable=False))
    assert len(servers) == 1 and list(servers) == [transaction]
    servers.remove(transaction)
    assert servers.find(invite) is None
    with pytest.raises(LocalProtocolError, match="not in the table"):
        servers.remove(transaction)

    clients: TransactionTable[ClientTransaction] = TransactionTable(client_key)
    outgoing = client_transaction(invite, reliable=True)
    clients.add(outgoing)
    assert clients.find(response(invite, 180)) is outgoing
    assert clients.find(response(request("CANCEL"), 200)) is None


# --- every (state, input) pair ------------------------------------------------------------

MACHINES: dict[type[Transaction], str] = {
    InviteClientTransaction: "INVITE",
    NonInviteClientTransaction: "OPTIONS",
    InviteServerTransaction: "INVITE",
    NonInviteServerTransaction: "OPTIONS",
}
TABLES = {
    InviteClientTransaction: INVITE_CLIENT_TABLE,
    NonInviteClientTransaction: NON_INVITE_CLIENT_TABLE,
    InviteServerTransaction: INVITE_SERVER_TABLE,
    NonInviteServerTransaction: NON_INVITE_SERVER_TABLE,
}
TIMER_OF = {Input[f"TIMER_{timer.value}"]: timer for timer in Timer}


def feed(transaction: Transaction, event: Input, now: float) -> tuple[Action, ...]:
    """Drive ``event`` through the public interface of ``transaction``."""
    req = transaction.request
    statuses = {Input.PROVISIONAL: 180, Input.SUCCESS: 200, Input.FAILURE: 486}
    if event is Input.START:
        return transaction.start(now)
    if event is Input.TRANSPORT_ERROR:
        return transaction.transport_error(now)
    if event in TIMER_OF:
        return transaction.fire(TIMER_OF[event], now)
    if event in statuses:
        message = response(req, statuses[event])
        if isinstance(transaction, ClientTransaction):
            return transaction.receive(message, now)
        assert isinstance(transaction, InviteServerTransaction | NonInviteServerTransaction)
        return transaction.send_response(message, now)
    incoming = request("ACK", cseq_method="ACK") if event is Input.ACK else req
    if isinstance(transaction, ClientTransaction):
        return transaction.receive(incoming, now)  # type: ignore[arg-type]
    assert isinstance(transaction, InviteServerTransaction | NonInviteServerTransaction)
    return transaction.receive(incoming, now)


def check_step(transaction: Transaction, event: Input, now: float) -> None:
    table = TABLES[type(transaction)]
    before = transaction.state
    entry = table.get((before, event))
    timer = TIMER_OF.get(event)
    timer_idle = timer is not None and timer not in transaction._running
    if entry is None or timer_idle:
        with pytest.raises(LocalProtocolError):
            feed(transaction, event, now)
        assert transaction.state is before
        return
    actions = feed(transaction, event, now)
    _, expected = entry
    terminated = [action for action in actions if isinstance(action, Terminated)]
    if transaction.state is not expected:
        # Only a zero timer (D, I, J, K) on a reliable transport may carry it straight on.
        assert transaction.reliable and transaction.state is State.TERMINATED
        assert expected.name in ("COMPLETED", "CONFIRMED")
    assert len(terminated) == (1 if transaction.state is State.TERMINATED else 0)
    if terminated:
        assert actions[-1] == Terminated()
        assert not transaction._running
    for action in actions:
        if isinstance(action, StartTimer):
            assert action.at >= now
            assert action.timer in transaction._running


PAIRS = [
    (machine, reliable, state, event)
    for machine in MACHINES
    for reliable in (False, True)
    for state in State
    for event in Input
]


@pytest.mark.parametrize(
    ("machine", "reliable", "state", "event"),
    PAIRS,
    ids=[f"{m.__name__}-{'tcp' if r else 'udp'}-{s.name}-{e.name}" for m, r, s, e in PAIRS],
)
def test_every_state_input_pair(
    machine: type[Transaction], reliable: bool, state: State, event: Input
) -> None:
    transaction = machine(request(MACHINES[machine]), reliable=reliable)
    transaction.state = state
    # Pretend every timer is pending so that timer inputs reach the table.
    transaction._running.update(Timer)
    check_step(transaction, event, 1.0)


@settings(max_examples=300)
@given(
    machine=st.sampled_from(list(MACHINES)),
    reliable=st.booleans(),
    events=st.lists(st.sampled_from(list(Input)), max_size=12),
)
def test_random_walks_follow_the_table(
    machine: type[Transaction], reliable: bool, events: list[Input]
) -> None:
    transaction = machine(request(MACHINES[machine]), reliable=reliable)
    now = 0.0
    for event in [Input.START, *events]:
        now += 0.25
        check_step(transaction, event, now)
