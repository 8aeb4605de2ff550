"""A client and a server transaction talking over a lossy fake link with a fake clock.

Every message crosses the link as bytes and is parsed again, so the ACK the client
transaction builds must match the server transaction by its key, as on the wire.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from tollguard.sip.message import Request, Response, make_response
from tollguard.sip.parser import parse_message
from tollguard.sip.transaction import (
    Action,
    CancelTimer,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Send,
    ServerTransaction,
    StartTimer,
    State,
    Terminated,
    TimedOut,
    Timer,
    Transaction,
    TransactionTable,
    server_key,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


@dataclass
class Side:
    transaction: Transaction | None = None
    timers: dict[Timer, float] = field(default_factory=dict)
    delivered: list[Request | Response] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)


@dataclass
class Link:
    """Carries bytes between a UAC and a UAS; ``drops`` lists which sends get lost.

    Like an event loop, it queues what the actions cause (datagrams, the UAS core's
    answer) and runs the queue before the next timer, never re-entering a transaction.
    """

    drops: set[int]
    uas_status: int
    reliable: bool = False
    now: float = 0.0
    uac: Side = field(default_factory=Side)
    uas: Side = field(default_factory=Side)
    servers: TransactionTable[ServerTransaction] = field(
        default_factory=lambda: TransactionTable(server_key)
    )
    sends: int = 0
    wire: list[tuple[float, str, bytes]] = field(default_factory=list)
    queue: deque[Callable[[], None]] = field(default_factory=deque)

    def handle(self, side: Side, actions: tuple[Action, ...]) -> None:
        for action in actions:
            match action:
                case Send(message):
                    self.transmit(side, message.to_bytes())
                case StartTimer(timer, at):
                    side.timers[timer] = at
                case CancelTimer(timer):
                    side.timers.pop(timer)
                case Deliver(message):
                    side.delivered.append(message)
                    if side is self.uas and isinstance(message, Request):
                        self.queue.append(partial(self.answer, message))
                case TimedOut():
                    side.outcome.append("timed out")
                case Terminated():
                    side.outcome.append("terminated")
                    if side is self.uas and side.transaction is not None:
                        assert isinstance(side.transaction, ServerTransaction)
                        self.servers.remove(side.transaction)
                case _:
                    side.outcome.append(type(action).__name__)

    def answer(self, request: Request) -> None:
        """The UAS core answers the INVITE it gets (once) with ``uas_status``."""
        transaction = self.uas.transaction
        assert isinstance(transaction, InviteServerTransaction)
        final = make_response(request, self.uas_status, to_tag="uas-tag")
        self.handle(self.uas, transaction.send_response(final, self.now))

    def transmit(self, sender: Side, data: bytes) -> None:
        index = self.sends
        self.sends += 1
        direction = "uac->uas" if sender is self.uac else "uas->uac"
        if index in self.drops:
            self.wire.append((self.now, f"{direction} lost", data))
            return
        self.wire.append((self.now, direction, data))
        receive = self.to_uas if sender is self.uac else self.to_uac
        self.queue.append(partial(receive, data))

    def to_uas(self, data: bytes) -> None:
        message = parse_message(data)
        assert isinstance(message, Request)
        existing = self.servers.find(message)
        if existing is not None:
            self.handle(self.uas, existing.receive(message, self.now))
        elif message.method == "INVITE":
            server = InviteServerTransaction(message, self.reliable)
            self.servers.add(server)
            self.uas.transaction = server
            self.handle(self.uas, server.start(self.now))
        # Anything else (an ACK after the server transaction ended) goes to the core,
        # which has nothing to do with it here (RFC 3261 §17.2.3).

    def to_uac(self, data: bytes) -> None:
        message = parse_message(data)
        assert isinstance(message, Response)
        client = self.uac.transaction
        assert client is not None
        if not client.terminated:
            assert isinstance(client, InviteClientTransaction)
            self.handle(self.uac, client.receive(message, self.now))

    def run(self, until: float) -> None:
        while True:
            if self.queue:
                self.queue.popleft()()
                continue
            due = [
                (at, side, timer)
                for side in (self.uac, self.uas)
                for timer, at in side.timers.items()
            ]
            if not due:
                return
            at, side, timer = min(due, key=lambda item: item[0])
            if at > until:
                return
            self.now = at
            del side.timers[timer]
            assert side.transaction is not None
            self.handle(side, side.transaction.fire(timer, at))


def call(drops: set[int], status: int, reliable: bool = False) -> Link:
    link = Link(drops=drops, uas_status=status, reliable=reliable)
    invite = parse_message(INVITE)
    assert isinstance(invite, Request)
    client = InviteClientTransaction(invite, reliable)
    link.uac.transaction = client
    link.handle(link.uac, client.start(0.0))
    link.run(until=200.0)
    return link


def test_lost_invite_and_lost_final_are_recovered() -> None:
    # Send 0: INVITE (lost). 1: INVITE again at 0.5. 2: 100 Trying. 3: 486 (lost).
    # 4: 486 again by Timer G at 1.0. 5: the ACK.
    link = call(drops={0, 3}, status=486)
    directions = [(at, direction) for at, direction, _ in link.wire]
    assert directions == [
        (0.0, "uac->uas lost"),
        (0.5, "uac->uas"),
        (0.5, "uas->uac"),
        (0.5, "uas->uac lost"),
        (1.0, "uas->uac"),
        (1.0, "uac->uas"),
    ]
    assert [r.status for r in link.uac.delivered if isinstance(r, Response)] == [100, 486]
    assert link.uac.outcome == ["terminated"]
    assert link.uas.outcome == ["terminated"]
    assert len(link.uas.delivered) == 1  # the UAS core saw the INVITE once
    assert link.wire[-1][2].startswith(b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n")
    assert len(link.servers) == 0


def test_lost_ack_makes_the_server_retransmit_until_it_arrives() -> None:
    # 0 INVITE, 1 100, 2 486, 3 ACK (lost), 4 486 by Timer G, 5 ACK again.
    link = call(drops={3}, status=486)
    assert [direction for _, direction, _ in link.wire] == [
        "uac->uas",
        "uas->uac",
        "uas->uac",
        "uac->uas lost",
        "uas->uac",
        "uac->uas",
    ]
    # The client got the retransmitted final but passed it up only once.
    assert [r.status for r in link.uac.delivered if isinstance(r, Response)] == [100, 486]
    assert link.uas.outcome == ["terminated"]


def test_2xx_goes_through_accepted_on_both_sides() -> None:
    link = call(drops=set(), status=200)
    client, server = link.uac.transaction, link.uas.transaction
    assert client is not None and server is not None
    assert client.state is State.TERMINATED and server.state is State.TERMINATED
    assert [r.status for r in link.uac.delivered if isinstance(r, Response)] == [100, 200]
    # Timers M and L end the Accepted states 64*T1 after the 2xx.
    assert link.now == 32.0


def test_reliable_link_never_retransmits() -> None:
    link = call(drops=set(), status=404, reliable=True)
    assert len(link.wire) == 4  # INVITE, 100, 404, ACK
    assert link.uac.outcome == ["terminated"] and link.uas.outcome == ["terminated"]


@settings(max_examples=200)
@given(
    drops=st.sets(st.integers(0, 25), max_size=8),
    status=st.sampled_from([200, 486, 503]),
)
def test_any_loss_pattern_ends_cleanly(drops: set[int], status: int) -> None:
    link = call(drops=drops, status=status)
    client = link.uac.transaction
    assert client is not None
    assert not link.uac.timers and not link.uas.timers
    if not client.terminated:
        # A lost 2xx is for the UAS core to retransmit (§13.3.1.4), not the transaction:
        # the client waits in Proceeding for its TU to give up. Nothing else can hang.
        assert status == 200 and client.state is State.PROCEEDING
        assert all(r.status < 200 for r in link.uac.delivered if isinstance(r, Response))
        return
    finals = [r for r in link.uac.delivered if isinstance(r, Response) and r.status >= 200]
    if "timed out" in link.uac.outcome:
        assert not finals
    else:
        # Exactly one non-2xx reaches the client core; 2xx retransmissions all do.
        assert finals and {r.status for r in finals} == {status}
        if status >= 300:
            assert len(finals) == 1
    if link.uas.transaction is not None:
        assert link.uas.transaction.terminated
        assert len(link.uas.delivered) == 1
        assert len(link.servers) == 0


def test_non_invite_pair_over_the_link_by_hand() -> None:
    options = parse_message(INVITE.replace(b"INVITE", b"OPTIONS"))
    assert isinstance(options, Request)
    client = NonInviteClientTransaction(options, reliable=False)
    sent = [a for a in client.start(0.0) if isinstance(a, Send)]
    received = parse_message(sent[0].message.to_bytes())
    assert isinstance(received, Request)
    server = NonInviteServerTransaction(received, reliable=False)
    assert server.start(0.0) == (Deliver(received),)
    ok = make_response(received, 200, to_tag="x")
    reply = next(a for a in server.send_response(ok, 0.1) if isinstance(a, Send))
    back = parse_message(reply.message.to_bytes())
    assert isinstance(back, Response)
    actions = client.receive(back, 0.2)
    assert Deliver(back) in actions and CancelTimer(Timer.E) in actions
    assert client.state is State.COMPLETED
