"""Parallel forking to an account's registered contacts (RFC 3261 §16.6, §16.7) and
calls to a customer's own DIDs, on a B2BUA driven one message at a time on a manual
clock.

No sockets: what the switch sends is collected with its destination; the provider, the
customers and the phones are addresses whose messages are built with ``tollguard.sip``
and handed to ``B2bua.on_message``. Bindings are put in the registrar's store directly
(REGISTER itself is ``test_registrar``'s).
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from tollguard.domain.cdr import Attempt, CallDirection, Cdr, HangupSide
from tollguard.domain.plan import (
    AclEntry,
    Customer,
    Did,
    DidTarget,
    Gateway,
    NumberRules,
    PlanData,
    Provider,
    SipAddress,
)
from tollguard.domain.registration import Binding
from tollguard.domain.routing import build_plan
from tollguard.media import Bypass, Party
from tollguard.sip import parse_message
from tollguard.sip.message import Request, Response, make_response
from tollguard.switch.b2bua import B2bua
from tollguard.switch.media import MediaHooks

from .clock import ManualClock
from .conftest import SDP_ANSWER, SDP_OFFER, make_settings, plan_data, request

Address = tuple[str, int]

SWITCH: Address = ("127.0.0.1", 5060)
PROVIDER: Address = ("127.0.0.8", 5060)  # carrier-in's gateway: its calls are inbound
GATEWAY_HOST = "127.0.0.2"  # the outbound gateways (not the customers' address)
ACME: Address = ("127.0.0.1", 5090)  # customer acme, by address (tech prefix 777)
OTHER: Address = ("127.0.0.3", 5090)  # customer other, by address
DID = "442071234567"  # rings bob (account 2)
TRUNK_DID = "442071230000"  # acme's trunk at 127.0.0.20
TRUNK: Address = ("127.0.0.20", 5060)
OTHERS_DID = "442071239999"  # other's, rings carol (account 3)
ELSEWHERE = 'Reason: SIP;cause=200;text="Call completed elsewhere"'
RING_GROUP_S = 3.0  # sip.fork_ring_timeout_s here
SETUP_S = 1.0  # sip.gateway_setup_timeout_s (make_settings)

_ids = itertools.count(1)


def _plan_data() -> PlanData:
    base = plan_data((40001, 40002))
    accounts = (*base.accounts, replace(base.accounts[1], id=3, customer_id=2, username="carol"))
    return replace(
        base,
        customers=(
            *base.customers,
            Customer(2, "other", sell_card_id=1, number_rules=NumberRules(country_code="44")),
        ),
        accounts=accounts,
        acl=(
            *base.acl,
            AclEntry(2, 2, ipaddress.ip_network(f"{OTHER[0]}/32")),
        ),
        providers=(*base.providers, Provider(3, "carrier-in")),
        gateways=(
            Gateway(1, 1, "gw-a", GATEWAY_HOST, 40001),
            Gateway(2, 2, "gw-b", GATEWAY_HOST, 40002),
            Gateway(3, 3, "in-gw", PROVIDER[0], PROVIDER[1]),
        ),
        dids=(
            Did(1, 1, DID, account_id=2),
            Did(2, 1, TRUNK_DID, target=DidTarget.TRUNK, trunk=(SipAddress(*TRUNK),)),
            Did(3, 2, OTHERS_DID, account_id=3),
        ),
    )


class Recorder(Bypass):
    """A media backend that passes bodies through and remembers whose answers it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.callees: list[Party] = []

    def answer(self, session: str, body: bytes, content_type: str | None, callee: Party) -> bytes:
        self.callees.append(callee)
        return body


class Net:
    """The switch on a manual clock, and everything it sent, by destination."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock()
        self.cdrs: list[Cdr] = []
        self.media = Recorder()
        plan = build_plan(_plan_data())
        self.b2bua = B2bua(
            make_settings(tmp_path, fork_ring_timeout_s=RING_GROUP_S),
            lambda: plan,
            self,
            nonce_secret=b"s" * 32,
            scheduler=self.clock,
            wall_clock=self.clock.wall,
            media=MediaHooks({"relay": self.media}, default="relay"),
        )
        self.sent: list[tuple[Request | Response, Address]] = []
        self.b2bua.bind(self._send, {"udp": SWITCH[1]})

    def submit(self, cdr: Cdr) -> None:  # the CDR queue
        self.cdrs.append(cdr)

    def _send(self, data: bytes, transport: str, address: Address, connection: int) -> None:
        self.sent.append((parse_message(data), address))

    def register(self, account: int, contact: str, address: Address, **kw: object) -> None:
        """A binding of ``account`` at ``contact``, registered from ``address``."""
        store = self.b2bua.registrar.bindings
        wall = self.clock.wall()
        binding = Binding(account, contact, wall + 3600, f"r{next(_ids)}", 1, address, "udp", 0)
        store.put(account, (*store.of(account, wall), replace(binding, **kw)))  # type: ignore[arg-type]

    def deliver(self, message: Request | Response, source: Address) -> None:
        self.b2bua.on_message(message.to_bytes(), source, "udp", 0)

    def call(self, source: Address, number: str) -> Request:
        """An INVITE for ``number`` from ``source`` (the provider, or a customer)."""
        invite = request(
            "INVITE",
            f"sip:{number}@{SWITCH[0]}:{SWITCH[1]}",
            local_port=source[1],
            call_id=f"call-{next(_ids)}@example.net",
            from_tag=f"c{next(_ids)}",
            body=SDP_OFFER,
        )
        self.deliver(invite, source)
        return invite

    def take(self, address: Address, method: str = "", status: int = 0) -> Request | Response:
        """The first message sent to ``address`` that is request ``method`` or response
        ``status`` (removed); fails when there is none."""
        for index, (message, to) in enumerate(self.sent):
            if to != address:
                continue
            if (method and isinstance(message, Request) and message.method == method) or (
                status and isinstance(message, Response) and message.status == status
            ):
                del self.sent[index]
                return message
        raise AssertionError(f"nothing ({method or status}) sent to {address}: {self.sent}")

    def invite_to(self, address: Address) -> Request:
        invite = self.take(address, "INVITE")
        assert isinstance(invite, Request)
        return invite

    def nothing_to(self, address: Address, method: str = "INVITE") -> bool:
        return not any(
            to == address and isinstance(m, Request) and m.method == method for m, to in self.sent
        )

    def reply(
        self, phone: Address, invite: Request, status: int, *, sdp: bytes = b"", server: str = ""
    ) -> None:
        headers = [("Contact", f"<sip:phone@{phone[0]}:{phone[1]}>")]
        if server:
            headers.append(("Server", server))
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        tag = f"t-{phone[0]}-{phone[1]}"
        self.deliver(make_response(invite, status, to_tag=tag, headers=headers, body=sdp), phone)

    def ack(self, source: Address, invite: Request, ok: Response) -> None:
        ack = request(
            "ACK",
            str(invite.uri),
            local_port=source[1],
            call_id=invite.call_id,
            from_tag=invite.from_.tag or "",
            to=ok.headers.get("To"),
        )
        self.deliver(ack, source)

    def bye(self, source: Address, invite: Request, ok: Response) -> None:
        bye = request(
            "BYE",
            str(invite.uri),
            local_port=source[1],
            call_id=invite.call_id,
            from_tag=invite.from_.tag or "",
            cseq=2,
            to=ok.headers.get("To"),
        )
        self.deliver(bye, source)

    def final(self, address: Address) -> Response:
        """The final response the caller at ``address`` got to its INVITE."""
        for index, (message, to) in enumerate(self.sent):
            if (
                to == address
                and isinstance(message, Response)
                and message.status >= 200
                and message.cseq.method == "INVITE"
            ):
                del self.sent[index]
                return message
        raise AssertionError(f"no final response to {address}")


@pytest.fixture
def net(tmp_path: Path) -> Net:
    return Net(tmp_path)


def _phone(n: int) -> tuple[str, Address]:
    """Phone ``n``: its contact (a private address, as behind NAT) and its public address."""
    return f"sip:bob@10.0.0.{n}:5060", (f"192.0.2.{n}", 5060 + n)


def _lines(cdr: Cdr) -> list[tuple[str, int, str]]:
    return [(a.target, a.sip_code, a.reason) for a in cdr.attempts]


def _answered(cdr: Cdr) -> Attempt:
    """The CDR's attempt line of the fork that answered."""
    (line,) = [a for a in cdr.attempts if 200 <= a.sip_code < 300 and "too late" not in a.reason]
    return line


def test_contacts_of_one_q_ring_at_once_and_the_first_answer_wins(net: Net) -> None:
    (uri1, phone1), (uri2, phone2) = _phone(1), _phone(2)
    net.register(2, uri1, phone1)
    net.register(2, uri2, phone2)
    invite = net.call(PROVIDER, DID)
    # Both phones have the INVITE before either has answered anything.
    first, second = net.invite_to(phone1), net.invite_to(phone2)
    assert (str(first.uri), str(second.uri)) == (uri1, uri2)
    assert first.call_id != second.call_id  # a leg of its own each
    assert first.body == second.body == SDP_OFFER
    net.take(PROVIDER, status=100)
    # Provisional responses of every fork reach the caller, under the switch's To tag;
    # early media is not relayed while two forks ring (the caller has one dialog).
    net.reply(phone1, first, 180)
    net.reply(phone2, second, 183, sdp=SDP_ANSWER)
    ringing, progress = net.take(PROVIDER, status=180), net.take(PROVIDER, status=183)
    assert isinstance(ringing, Response) and isinstance(progress, Response)
    assert ringing.to.tag == progress.to.tag
    assert progress.body == b""
    assert net.media.callees == []
    # Phone 2 answers: the caller gets its 200, phone 1 a CANCEL saying why.
    net.reply(phone2, second, 200, sdp=SDP_ANSWER, server="desk-2")
    ok = net.take(PROVIDER, status=200)
    assert isinstance(ok, Response)
    assert ok.body == SDP_ANSWER
    assert ok.to.tag == ringing.to.tag
    assert net.media.callees == [Party(*phone2, "udp")]  # the answering fork's alone
    net.take(phone2, "ACK")
    cancel = net.take(phone1, "CANCEL")
    assert isinstance(cancel, Request)
    assert cancel.headers.get_all("Reason") == (ELSEWHERE.removeprefix("Reason: "),)
    net.deliver(make_response(cancel, 200), phone1)
    net.reply(phone1, first, 487)
    net.take(phone1, "ACK")
    # The call is phone 2's: the BYE goes there, not to phone 1.
    net.ack(PROVIDER, invite, ok)
    net.clock.advance(30)
    net.bye(PROVIDER, invite, ok)
    net.take(phone2, "BYE")
    assert net.nothing_to(phone1, "BYE")
    (cdr,) = net.cdrs
    assert cdr.sip_code == 200
    assert cdr.hangup_side is HangupSide.CALLER
    assert cdr.duration_ms == 30_000
    assert cdr.callee_user_agent == "desk-2"
    assert _lines(cdr) == [(uri1, 487, "call completed elsewhere"), (uri2, 200, "OK")]
    assert _answered(cdr).target == uri2


def test_an_answer_that_crosses_the_cancel_is_acknowledged_and_ended(net: Net) -> None:
    (uri1, phone1), (uri2, phone2), (uri3, phone3) = _phone(1), _phone(2), _phone(3)
    for uri, phone in ((uri1, phone1), (uri2, phone2), (uri3, phone3)):
        net.register(2, uri, phone)
    invite = net.call(PROVIDER, DID)
    first, second, third = (net.invite_to(p) for p in (phone1, phone2, phone3))
    net.reply(phone1, first, 180)
    net.reply(phone2, second, 180)
    net.reply(phone1, first, 200, sdp=SDP_ANSWER)
    ok = net.take(PROVIDER, status=200)
    assert isinstance(ok, Response)
    net.take(phone2, "CANCEL")
    # Phone 3 had sent nothing: its CANCEL waits for a provisional (RFC 3261 §9.1).
    assert net.nothing_to(phone3, "CANCEL")
    # Phone 2 and phone 3 answer anyway: each 200 is acknowledged, then ended with a BYE.
    net.reply(phone2, second, 200, sdp=SDP_ANSWER)
    net.reply(phone3, third, 200, sdp=SDP_ANSWER)
    for phone in (phone2, phone3):
        net.take(phone, "ACK")
        bye = net.take(phone, "BYE")
        assert isinstance(bye, Request)
        assert bye.headers.get_all("Reason") == (ELSEWHERE.removeprefix("Reason: "),)
    # The caller saw one answer only.
    with pytest.raises(AssertionError):
        net.take(PROVIDER, status=200)
    assert net.media.callees == [Party(*phone1, "udp")]
    net.ack(PROVIDER, invite, ok)
    net.bye(PROVIDER, invite, ok)
    net.take(phone1, "BYE")
    (cdr,) = net.cdrs
    assert _lines(cdr) == [
        (uri1, 200, "OK"),
        (uri2, 200, "call completed elsewhere, answered too late: BYE"),
        (uri3, 0, "call completed elsewhere"),
    ]
    assert _answered(cdr).target == uri1


def test_groups_of_q_values_ring_in_turn_highest_first(net: Net) -> None:
    # Registered lowest first: the order of registration does not matter, q does.
    (low_uri, low), (mid1_uri, mid1), (mid2_uri, mid2), (high_uri, high) = (
        _phone(n) for n in (1, 2, 3, 4)
    )
    net.register(2, low_uri, low, q=100)
    net.register(2, mid1_uri, mid1, q=500)
    net.register(2, mid2_uri, mid2, q=500)
    net.register(2, high_uri, high)  # q=1.0
    invite = net.call(PROVIDER, DID)
    top = net.invite_to(high)
    assert all(net.nothing_to(p) for p in (mid1, mid2, low))
    net.reply(high, top, 486)  # busy: the next group rings, both of its phones at once
    net.take(high, "ACK")
    second, third = net.invite_to(mid1), net.invite_to(mid2)
    assert net.nothing_to(low)
    net.reply(mid1, second, 180)
    net.clock.advance(0.5)
    net.reply(mid2, third, 180)
    # The group rings for sip.fork_ring_timeout_s from its first ringing, then gives way.
    net.clock.advance(RING_GROUP_S - 0.5 - 0.01)
    assert net.nothing_to(low)
    net.clock.advance(0.02)
    for phone in (mid1, mid2):
        cancel = net.take(phone, "CANCEL")
        assert isinstance(cancel, Request)
        assert cancel.headers.get("Reason") == 'Q.850;cause=19;text="No answer from user"'
    net.deliver(make_response(cancel, 200), mid2)
    net.reply(mid2, third, 487)
    bottom = net.invite_to(low)
    net.reply(low, bottom, 200, sdp=SDP_ANSWER)
    ok = net.take(PROVIDER, status=200)
    assert isinstance(ok, Response)
    net.bye(PROVIDER, invite, ok)
    # mid1 never answered its CANCEL: its line is written when the call is forgotten.
    net.clock.advance(64 * 0.1 + 1)
    (cdr,) = net.cdrs
    assert _lines(cdr) == [
        (high_uri, 486, "Busy Here"),
        (mid1_uri, 408, "ring timeout, no final response"),
        (mid2_uri, 487, "ring timeout"),
        (low_uri, 200, "OK"),
    ]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ((480, 486), 486),
        ((486, 480), 486),
        ((503, 480), 480),
        ((None, 404), 404),  # None: the phone never answers (setup timeout, 408)
        ((408, 503), 408),
        ((408, 480), 480),
        ((480, 404), 404),
        ((500, 503), 500),
        ((302, 404), 302),
    ],
    ids=["busy-over-unavailable", "busy-first", "4xx-over-5xx", "refusal-over-timeout",
         "timeout-over-5xx", "unavailable-over-timeout", "refusal-over-unavailable",
         "first-of-a-class", "3xx-lowest-class"],
)  # fmt: skip
def test_when_every_fork_fails_the_caller_gets_the_best_answer(
    net: Net, answers: tuple[int | None, int], expected: int
) -> None:
    (uri1, phone1), (uri2, phone2) = _phone(1), _phone(2)
    net.register(2, uri1, phone1)
    net.register(2, uri2, phone2)
    net.call(PROVIDER, DID)
    invites = [net.invite_to(phone1), net.invite_to(phone2)]
    for phone, invite, status in zip((phone1, phone2), invites, answers, strict=True):
        if status is not None:
            net.reply(phone, invite, status)
    net.clock.advance(SETUP_S)
    assert net.final(PROVIDER).status == expected


def test_the_best_answer_is_taken_across_groups(net: Net) -> None:
    (uri1, phone1), (uri2, phone2) = _phone(1), _phone(2)
    net.register(2, uri1, phone1)
    net.register(2, uri2, phone2, q=200)
    net.call(PROVIDER, DID)
    net.reply(phone1, net.invite_to(phone1), 486)
    net.reply(phone2, net.invite_to(phone2), 480)
    final = net.final(PROVIDER)
    assert (final.status, final.reason) == (486, "Busy Here")


def test_a_6xx_ends_the_search_and_cancels_the_other_forks(net: Net) -> None:
    (uri1, phone1), (uri2, phone2), (uri3, phone3) = _phone(1), _phone(2), _phone(3)
    net.register(2, uri1, phone1)
    net.register(2, uri2, phone2)
    net.register(2, uri3, phone3, q=500)
    net.call(PROVIDER, DID)
    first, second = net.invite_to(phone1), net.invite_to(phone2)
    net.reply(phone1, first, 180)
    net.reply(phone2, second, 603)
    cancel = net.take(phone1, "CANCEL")
    assert isinstance(cancel, Request)
    assert cancel.headers.get("Reason") == 'SIP;cause=603;text="Decline"'
    assert net.final(PROVIDER).status == 603
    assert net.nothing_to(phone3)  # the lower group is not tried either
    net.reply(phone1, first, 487)
    (cdr,) = net.cdrs
    assert _lines(cdr) == [(uri1, 487, "declined elsewhere"), (uri2, 603, "Decline")]
    assert cdr.hangup_side is HangupSide.CALLEE


def test_a_cancel_from_the_caller_cancels_every_fork(net: Net) -> None:
    (uri1, phone1), (uri2, phone2), (uri3, phone3) = _phone(1), _phone(2), _phone(3)
    net.register(2, uri1, phone1)
    net.register(2, uri2, phone2)
    net.register(2, uri3, phone3, q=500)
    invite = net.call(PROVIDER, DID)
    first, second = net.invite_to(phone1), net.invite_to(phone2)
    net.reply(phone1, first, 180)
    net.reply(phone2, second, 180)
    cancel = request(
        "CANCEL",
        str(invite.uri),
        local_port=PROVIDER[1],
        call_id=invite.call_id,
        from_tag=invite.from_.tag or "",
        branch=invite.vias[0].branch,
        extra=(("Reason", 'Q.850;cause=16;text="Normal call clearing"'),),
    )
    net.deliver(cancel, PROVIDER)
    net.take(PROVIDER, status=200)
    assert net.final(PROVIDER).status == 487
    for phone, fork in ((phone1, first), (phone2, second)):
        sent = net.take(phone, "CANCEL")
        assert isinstance(sent, Request)
        assert sent.headers.get("Reason") == 'Q.850;cause=16;text="Normal call clearing"'
        net.reply(phone, fork, 487)
    assert net.nothing_to(phone3)
    (cdr,) = net.cdrs
    assert _lines(cdr) == [(uri1, 487, "cancelled"), (uri2, 487, "cancelled")]
    assert cdr.hangup_side is HangupSide.CALLER


def test_a_phone_rings_over_one_flow_and_over_the_next_when_it_fails(net: Net) -> None:
    """RFC 5626 §5.2: one phone (one instance) with two flows is one fork, over its most
    recently registered flow; when that one does not reach it, over the other."""
    instance = "<urn:uuid:00000000-0000-1000-8000-00a0c91e6bf6>"
    flow1, flow2 = ("192.0.2.31", 5071), ("192.0.2.32", 5072)
    net.register(2, "sip:bob@10.0.0.31:5060", flow1, instance=instance, reg_id=1)
    net.register(2, "sip:bob@10.0.0.32:5060", flow2, instance=instance, reg_id=2)
    uri, other = _phone(5)
    net.register(2, uri, other)
    net.call(PROVIDER, DID)
    net.invite_to(flow2)
    net.invite_to(other)
    assert net.nothing_to(flow1)
    net.clock.advance(SETUP_S)  # flow 2 carries nothing back: the phone is tried on flow 1
    retry = net.invite_to(flow1)
    net.reply(flow1, retry, 200, sdp=SDP_ANSWER)
    net.take(PROVIDER, status=200)
    assert net.media.callees == [Party(*flow1, "udp")]


def test_a_lone_fork_relays_its_early_media(net: Net) -> None:
    uri, phone = _phone(1)
    net.register(2, uri, phone)
    net.call(PROVIDER, DID)
    invite = net.invite_to(phone)
    net.reply(phone, invite, 183, sdp=SDP_ANSWER)
    progress = net.take(PROVIDER, status=183)
    assert isinstance(progress, Response)
    assert progress.body == SDP_ANSWER
    assert net.media.callees == [Party(*phone, "udp")]


def test_a_customer_calling_its_own_did_is_delivered_on_net(net: Net) -> None:
    uri, phone = _phone(1)
    net.register(2, uri, phone)
    invite = net.call(ACME, f"777{DID}")
    ring = net.invite_to(phone)
    assert str(ring.uri) == uri
    net.reply(phone, ring, 200, sdp=SDP_ANSWER)
    ok = net.take(ACME, status=200)
    assert isinstance(ok, Response)
    net.ack(ACME, invite, ok)
    net.clock.advance(61)
    net.bye(ACME, invite, ok)
    net.take(phone, "BYE")
    # Its trunk DID goes to the trunk, on-net too.
    net.call(ACME, f"777{TRUNK_DID}")
    trunk = net.invite_to(TRUNK)
    assert str(trunk.uri) == f"sip:{TRUNK_DID}@{TRUNK[0]}:{TRUNK[1]}"
    net.reply(TRUNK, trunk, 486)
    assert net.final(ACME).status == 486
    # No provider saw either call.
    assert not any(to[0] == GATEWAY_HOST for _, to in net.sent)
    own, to_trunk = net.cdrs
    assert own.direction is CallDirection.INTERNAL
    assert (own.did, own.destination, own.customer_id) == (DID, f"DID {DID}", 1)
    assert (own.provider_id, own.gateway_id) == (None, None)
    assert own.sell_amount == own.cost_amount == 0
    assert own.duration_ms == 61_000
    assert _lines(own) == [(uri, 200, "OK")]
    assert (to_trunk.direction, to_trunk.did, to_trunk.sip_code) == (
        CallDirection.INTERNAL,
        TRUNK_DID,
        486,
    )


def test_another_customers_did_is_routed_out(net: Net) -> None:
    uri, phone = _phone(1)
    net.register(2, uri, phone)
    # other dials acme's DID: routed to a provider like any number, not to bob's phone.
    net.call(OTHER, DID)
    out = net.invite_to((GATEWAY_HOST, 40001))
    assert str(out.uri).startswith(f"sip:{DID}@{GATEWAY_HOST}:")
    assert net.nothing_to(phone)
    net.reply((GATEWAY_HOST, 40001), out, 486)
    assert net.final(OTHER).status == 486
    (cdr,) = net.cdrs
    assert (cdr.direction, cdr.did, cdr.provider_id) == (CallDirection.OUTBOUND, "", 1)


def test_an_own_did_without_a_registered_phone_is_refused_and_recorded(net: Net) -> None:
    net.call(ACME, f"777{DID}")
    assert net.final(ACME).status == 480
    assert not any(to[0] == GATEWAY_HOST for _, to in net.sent)
    (cdr,) = net.cdrs
    assert (cdr.direction, cdr.did, cdr.sip_code) == (CallDirection.INTERNAL, DID, 480)
    assert cdr.detail == f"own DID {DID}: not registered"
