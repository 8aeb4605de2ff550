"""Inbound calls to DIDs and calls by extension, on a running switch over loopback UDP.

A provider gateway at 127.0.0.8 calls the customer's DIDs; phones register through the
registrar (test_registrar.Phone) from peers on 127.0.0.1 with private contact addresses,
as phones behind NAT do: the INVITE must reach the peer, with the contact as its
Request-URI.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

from tollguard.domain.cdr import CallDirection, HangupSide
from tollguard.domain.plan import (
    Account,
    Customer,
    Did,
    DidTarget,
    Gateway,
    NumberRules,
    PlanData,
    Provider,
    Rate,
    RateCard,
    SipAddress,
)
from tollguard.sip.digest import authorization, ha1
from tollguard.sip.message import Request, Response, make_response

from .conftest import PASSWORD, REALM, SDP_ANSWER, SDP_OFFER, Harness, Peer, plan_data, request
from .test_b2bua import advance
from .test_credit_control import _stores
from .test_registrar import Phone

Run = Callable[..., None]
Scenario = Callable[[Harness], Awaitable[None]]

PROVIDER_HOST = "127.0.0.8"  # the inbound provider's gateway
STRANGER_HOST = "127.0.0.9"  # nobody's address
# Accounts calling by digest; not 127.0.0.1, plan_data's outbound gateways' address
# (which takes inbound calls only, once the plan has DIDs).
ALICE_HOST = "127.0.0.5"
CAROL_HOST = "127.0.0.6"
BOB_DID = "442071234567"  # rings bob (account 2)
TRUNK_DID = "442071230000"  # the customer's trunk: gateway peers 1, then 2
RANGE = ("442079460000", "442079460099")  # forwards to BOB_DID
DISABLED_DID = "442071239999"
ALICE_DID = "442071238888"  # rings alice (account 1)
BOB_CONTACT = "sip:bob@192.168.1.20:5062"
DID_PRICE = Decimal("0.0120")  # per minute, billed per started minute
INBOUND_COST = Decimal("0.0060")  # the provider's inbound card, per second

_ids = itertools.count(1)


def did_plan(h: Harness, *, owner_enabled: bool = True, version: int = 2) -> PlanData:
    """plan_data, plus: an inbound provider, the customer's DIDs and extensions (alice
    201, bob 202), and a second customer ``other`` whose carol has extension 301."""
    base = plan_data((h.gw1.port, h.gw2.port))
    accounts = (
        replace(base.accounts[0], extension="201"),
        replace(base.accounts[1], extension="202"),
        Account(
            3,
            2,
            "carol",
            ha1("carol", REALM, PASSWORD, "MD5"),
            ha1("carol", REALM, PASSWORD, "SHA-256"),
            extension="301",
        ),
    )
    inbound_card = RateCard(
        9,
        "carrier-in",
        rates=(Rate("44", "UK DID", INBOUND_COST * 60, initial_increment=1, next_increment=1),),
    )
    trunk = (
        SipAddress("127.0.0.1", h.gw1.port),
        SipAddress("127.0.0.1", h.gw2.port),
    )
    dids = (
        Did(1, 1, BOB_DID, account_id=2, price_per_minute=DID_PRICE),
        Did(2, 1, TRUNK_DID, target=DidTarget.TRUNK, trunk=trunk),
        Did(3, 1, RANGE[0], RANGE[1], target=DidTarget.DID, forward_to=BOB_DID),
        Did(4, 1, DISABLED_DID, account_id=2, enabled=False),
        Did(5, 1, ALICE_DID, account_id=1),
    )
    return replace(
        base,
        version=version,
        customers=(
            replace(base.customers[0], enabled=owner_enabled),
            Customer(2, "other", sell_card_id=1, number_rules=NumberRules(country_code="44")),
        ),
        accounts=accounts,
        providers=(*base.providers, Provider(3, "carrier-in", inbound_card_id=9)),
        gateways=(*base.gateways, Gateway(3, 3, "in-gw", PROVIDER_HOST, 5060)),
        rate_cards=(*base.rate_cards, inbound_card),
        dids=dids,
    )


_opened: list[Peer] = []


async def _peer(host: str = "127.0.0.1") -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=(host, 0))
    _opened.append(peer)
    return peer


def _run(run_scenario: Run, scenario: Scenario, **kw: object) -> None:
    """``run_scenario``, closing the peers the scenario opened."""

    async def closing(h: Harness) -> None:
        try:
            await scenario(h)
        finally:
            for peer in _opened:
                if peer.transport is not None:
                    peer.transport.close()
            _opened.clear()

    run_scenario(closing, **kw)


def _invite(h: Harness, peer: Peer, number: str, extra: tuple[tuple[str, str], ...] = ()) -> str:
    call_id = f"in-{next(_ids)}@carrier.example"
    invite = request(
        "INVITE",
        f"sip:{number}@127.0.0.1:{h.switch[1]}",
        local_port=peer.port,
        call_id=call_id,
        from_tag=f"p{next(_ids)}",
        extra=extra,
        body=SDP_OFFER,
    )
    peer.send(invite, h.switch)
    return call_id


async def _registered(h: Harness, user: str, contact: str, peer: Peer | None = None) -> Peer:
    phone_peer = peer or await _peer()
    phone = Phone(h, phone_peer, user)
    assert (await phone.register((f"<{contact}>",), "600")).status == 200
    return phone_peer


def _reply(peer: Peer, invite: Request, addr: tuple[str, int], status: int) -> None:
    body = SDP_ANSWER if status == 200 else b""
    headers = [("Contact", f"<sip:phone@127.0.0.1:{peer.port}>")]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    peer.send(make_response(invite, status, to_tag="ph1", headers=headers, body=body), addr)


def _ack(provider: Peer, h: Harness, ok: Response, call_id: str, uri: str) -> None:
    ack = request(
        "ACK",
        uri,
        local_port=provider.port,
        call_id=call_id,
        from_tag=ok.from_.tag or "",
        to=ok.headers.get("To"),
    )
    provider.send(ack, h.switch)


async def _provider_hangs_up(
    h: Harness, provider: Peer, phone: Phone, ok: Response, call_id: str, called: str
) -> None:
    """The provider ends the answered call to ``called``; the phone confirms the BYE."""
    bye = request(
        "BYE",
        f"sip:{called}@127.0.0.1:{h.switch[1]}",
        local_port=provider.port,
        call_id=call_id,
        from_tag=ok.from_.tag or "",
        cseq=2,
        to=ok.headers.get("To"),
    )
    provider.send(bye, h.switch)
    phone_bye, addr = await phone.request("BYE")
    phone.send(make_response(phone_bye, 200), addr)
    await provider.response(200, method="BYE")


async def _handled(h: Harness, peer: Peer) -> None:
    """Once this returns, the switch has handled what ``peer`` sent before (in order)."""
    options = request(
        "OPTIONS",
        f"sip:127.0.0.1:{h.switch[1]}",
        local_port=peer.port,
        call_id=f"sync-{next(_ids)}",
        from_tag="s",
    )
    peer.send(options, h.switch)
    await peer.response(200, method="OPTIONS")


async def _digest_call(h: Harness, peer: Peer, user: str, number: str) -> str:
    _invite(h, peer, number)
    challenge = await peer.response(407)
    value = next(v for v in challenge.headers.get_all("Proxy-Authenticate") if "SHA-256" in v)
    uri = f"sip:{number}@127.0.0.1:{h.switch[1]}"
    creds = authorization(value, user, PASSWORD, "INVITE", uri, "c1")
    return _invite(h, peer, number, (("Proxy-Authorization", creds),))


def test_a_provider_calls_a_did_and_the_registered_phone_answers(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h))
        phone = await _registered(h, "bob", BOB_CONTACT)
        provider = await _peer(PROVIDER_HOST)
        call_id = _invite(h, provider, f"+{BOB_DID}")
        invite, addr = await phone.request("INVITE")
        # Sent to where the REGISTER came from, for the contact it bound.
        assert str(invite.uri) == BOB_CONTACT
        assert invite.body == SDP_OFFER
        _reply(phone, invite, addr, 180)
        await provider.response(180)
        _reply(phone, invite, addr, 200)
        ok = await provider.response(200)
        _ack(provider, h, ok, call_id, f"sip:{BOB_DID}@127.0.0.1:{h.switch[1]}")
        await phone.request("ACK")
        await _handled(h, provider)  # the ACK too: no 2xx is resent while time moves
        advance(h, 61)  # talk: 61 s
        await _provider_hangs_up(h, provider, phone, ok, call_id, BOB_DID)
        (cdr,) = await h.sink.wait()
        assert cdr.direction is CallDirection.INBOUND
        assert cdr.did == BOB_DID
        assert cdr.callee_raw == f"+{BOB_DID}"
        assert (cdr.customer_id, cdr.account_id) == (1, 2)
        assert (cdr.provider_id, cdr.gateway_id) == (3, 3)
        assert cdr.source_ip == PROVIDER_HOST
        assert cdr.hangup_side is HangupSide.CALLER
        # The provider's inbound rate per second; the DID's price per started minute.
        assert cdr.cost_amount == INBOUND_COST * 61
        assert cdr.cost_rate == INBOUND_COST * 60
        assert cdr.billed_s == 120
        assert cdr.sell_amount == DID_PRICE * 2
        assert cdr.sell_rate == DID_PRICE
        assert cdr.margin == DID_PRICE * 2 - INBOUND_COST * 61
        (attempt,) = cdr.attempts
        assert (attempt.provider_id, attempt.target, attempt.sip_code) == (None, BOB_CONTACT, 200)

    _run(run_scenario, scenario, clock=True)


def test_unknown_disabled_and_unregistered_dids(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h))
        provider = await _peer(PROVIDER_HOST)
        for number, status in (
            ("442070000000", 404),  # no DID holds it
            ("sip-not-a-number", 404),
            (DISABLED_DID, 404),
            (BOB_DID, 480),  # bob has not registered
        ):
            _invite(h, provider, number)
            assert (await provider.response()).status == status, number
        cdrs = await h.sink.wait(4)
        assert [c.sip_code for c in cdrs] == [404, 404, 404, 480]
        assert all(c.direction is CallDirection.INBOUND for c in cdrs)
        assert all(c.provider_id == 3 and c.sell_amount == 0 for c in cdrs)
        assert [c.customer_id for c in cdrs] == [None, None, None, 1]
        assert [c.did for c in cdrs] == ["", "", DISABLED_DID, BOB_DID]

    _run(run_scenario, scenario)


def test_a_disabled_owner_gets_403(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h, owner_enabled=False))
        provider = await _peer(PROVIDER_HOST)
        _invite(h, provider, TRUNK_DID)
        assert (await provider.response()).status == 403
        assert h.gw1.nothing(lambda m: isinstance(m, Request))

    _run(run_scenario, scenario)


def test_a_range_forwards_to_a_did_and_a_trunk_fails_over(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h))
        provider = await _peer(PROVIDER_HOST)
        _invite(h, provider, TRUNK_DID)
        invite, addr = await h.gw1.request("INVITE")
        assert str(invite.uri) == f"sip:{TRUNK_DID}@127.0.0.1:{h.gw1.port}"
        _reply(h.gw1, invite, addr, 503)
        invite, addr = await h.gw2.request("INVITE")
        _reply(h.gw2, invite, addr, 486)
        assert (await provider.response()).status == 486
        (cdr,) = await h.sink.wait()
        assert [a.sip_code for a in cdr.attempts] == [503, 486]
        # A number of the range reaches bob's DID: unregistered, 480.
        _invite(h, provider, "442079460042")
        assert (await provider.response()).status == 480
        cdrs = await h.sink.wait(2)
        assert cdrs[1].did == "442079460042"

    _run(run_scenario, scenario)


def test_contacts_ring_together(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h))
        first = await _registered(h, "bob", BOB_CONTACT)
        second = await _registered(h, "bob", "sip:bob@192.168.1.21:5062")
        provider = await _peer(PROVIDER_HOST)
        _invite(h, provider, BOB_DID)
        invite1, addr1 = await first.request("INVITE")
        invite2, addr2 = await second.request("INVITE")
        assert str(invite2.uri) == "sip:bob@192.168.1.21:5062"
        _reply(first, invite1, addr1, 486)  # this phone is busy: the other still rings
        _reply(second, invite2, addr2, 603)
        assert (await provider.response()).status == 603

    _run(run_scenario, scenario)


def test_a_stranger_cannot_call_a_did_as_a_provider(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h))
        phone = await _registered(h, "bob", BOB_CONTACT)
        stranger = await _peer(STRANGER_HOST)
        _invite(h, stranger, BOB_DID)
        # Not a gateway's address: a customer's call, to be authenticated first.
        assert (await stranger.response()).status == 407
        # Another customer's account dials it: the number is routed out like any other,
        # to a provider's gateway, never straight to the phone.
        carol = await _peer(CAROL_HOST)
        await _digest_call(h, carol, "carol", BOB_DID)
        invite, addr = await h.gw1.request("INVITE")
        assert str(invite.uri).startswith(f"sip:{BOB_DID}@127.0.0.1:")
        _reply(h.gw1, invite, addr, 486)
        assert (await carol.response()).status == 486
        assert phone.nothing(lambda m: isinstance(m, Request) and m.method == "INVITE")
        # The owner's own account dials it: on-net, to the phone, no provider.
        alice = await _peer(ALICE_HOST)
        await _digest_call(h, alice, "alice", BOB_DID)
        invite, addr = await phone.request("INVITE")
        assert str(invite.uri) == BOB_CONTACT
        _reply(phone, invite, addr, 486)
        assert (await alice.response()).status == 486
        assert h.gw1.nothing(lambda m: isinstance(m, Request) and m.method == "INVITE")
        cdrs = await h.sink.wait(2)
        assert [(c.direction, c.did) for c in cdrs] == [
            (CallDirection.OUTBOUND, ""),
            (CallDirection.INTERNAL, BOB_DID),
        ]

    _run(run_scenario, scenario)


def test_extension_calls_stay_within_the_customer(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h))
        phone = await _registered(h, "bob", BOB_CONTACT)
        alice = await _peer(ALICE_HOST)
        await _digest_call(h, alice, "alice", "202")
        invite, addr = await phone.request("INVITE")
        assert str(invite.uri) == BOB_CONTACT
        _reply(phone, invite, addr, 486)
        assert (await alice.response()).status == 486
        (cdr,) = await h.sink.wait()
        assert cdr.direction is CallDirection.INTERNAL
        assert (cdr.customer_id, cdr.account_id, cdr.provider_id) == (1, 1, None)
        assert cdr.sell_amount == cdr.cost_amount == 0
        assert h.gw1.nothing(lambda m: isinstance(m, Request))
        # Carol, of another customer, dials bob's extension: a number like any other
        # (no route: 404), never bob's phone.
        carol = await _peer(CAROL_HOST)
        await _digest_call(h, carol, "carol", "202")
        assert (await carol.response()).status == 404
        # Alice dials carol's extension: not one of her customer's; carol's contacts
        # would not be rung even if she had any.
        await _digest_call(h, alice, "alice", "301")
        assert (await alice.response()).status == 404
        assert phone.nothing(lambda m: isinstance(m, Request) and m.method == "INVITE")
        # An extension whose account is not registered: 480.
        await _digest_call(h, carol, "carol", "301")
        assert (await carol.response()).status == 480

    _run(run_scenario, scenario)


def test_a_prepaid_owner_who_cannot_pay_the_did_price_is_refused(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(did_plan(h))
        phone = await _registered(h, "bob", BOB_CONTACT)
        provider = await _peer(PROVIDER_HOST)
        _invite(h, provider, BOB_DID)
        assert (await provider.response()).status == 402
        # A free DID needs no money.
        await _registered(h, "alice", "sip:alice@192.168.1.30:5062", phone)
        _invite(h, provider, ALICE_DID)
        invite, addr = await phone.request("INVITE")
        assert str(invite.uri) == "sip:alice@192.168.1.30:5062"
        _reply(phone, invite, addr, 486)
        assert (await provider.response()).status == 486

    _run(run_scenario, scenario, live_stores=_stores(Decimal(0)))
