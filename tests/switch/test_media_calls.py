"""Calls whose media the switch anchors: the B2BUA with its embedded relay, end to end.

A customer and a gateway on loopback exchange session descriptions through the switch
and RTP through the relay; the CDR carries the relay's counters. The relay's engine runs
in a thread of the test's process (``media.relay_process = false``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from tollguard.domain.cdr import HangupSide
from tollguard.domain.plan import Gateway, MediaChoice, Provider, Rate
from tollguard.domain.routing import RouteCandidate
from tollguard.sip.message import Request, make_response
from tollguard.sip.sdp import parse_sdp
from tollguard.switch.media import MediaHooks

from ..media.rtp_peers import Peer as MediaPeer
from ..media.rtp_peers import rtp_packet, sdp
from .conftest import TECH_PREFIX, Dialog, Harness, answer, request

Run = Callable[..., None]
RELAY = {"media": MediaChoice.RELAY}


def _invite(h: Harness, body: bytes) -> Dialog:
    uri = f"sip:{TECH_PREFIX}442071234567@127.0.0.1:{h.switch[1]}"
    invite = request(
        "INVITE", uri, local_port=h.uac.port, call_id="media-1@customer", from_tag="m1", body=body
    )
    h.uac.send(invite, h.switch)
    return Dialog(h.uac, h.switch, "media-1@customer", "m1", uri, invite)


def test_relayed_call_carries_rtp_and_counts_it(run_scenario: Run) -> None:
    caller, callee, stranger = MediaPeer(), MediaPeer(), MediaPeer("127.0.0.9")
    gateway_side: list[int] = []

    async def scenario(h: Harness) -> None:
        dialog = _invite(h, sdp("127.0.0.1", caller.port))
        invite, addr = await h.gw1.request("INVITE")
        offered = parse_sdp(invite.body).media[0]
        assert offered.port != caller.port
        gateway_side.append(offered.port)
        answer(h.gw1, invite, addr, 200, body=sdp("127.0.0.1", callee.port))
        ok = await h.uac.response(200)
        relay_port = parse_sdp(ok.body).media[0].port
        assert relay_port not in (callee.port, offered.port)
        dialog.ack(ok)
        await h.gw1.request("ACK")
        for seq in range(20):
            caller.send(rtp_packet(seq), relay_port)
            stranger.send(rtp_packet(seq, ssrc=0xBAD), relay_port)
        callee.collect(lambda: len(callee.received) >= 20)
        callee.drain(0.1)
        h.uac.send(dialog.in_dialog("BYE"), h.switch)
        bye, addr = await h.gw1.request("BYE")
        h.gw1.send(make_response(bye, 200), addr)
        (cdr,) = await h.sink.wait()
        assert cdr.media == "relay"
        assert cdr.caller_rtp_packets == 20
        assert cdr.rtp_dropped == 20
        assert not cdr.media_timeout

    try:
        run_scenario(scenario, customer=RELAY)
    finally:
        for peer in (caller, callee, stranger):
            peer.close()
    assert [data for data, _ in callee.received] == [rtp_packet(seq) for seq in range(20)]
    # The callee hears the relay only, from the port it was offered.
    assert {source for _, source in callee.received} == {("127.0.0.1", gateway_side[0])}


def test_no_rtp_ends_the_call_on_both_legs(run_scenario: Run) -> None:
    caller, callee = MediaPeer(), MediaPeer()

    async def scenario(h: Harness) -> None:
        dialog = _invite(h, sdp("127.0.0.1", caller.port))
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 200, body=sdp("127.0.0.1", callee.port))
        ok = await h.uac.response(200)
        dialog.ack(ok)
        await h.gw1.request("ACK")
        caller.send(rtp_packet(1), parse_sdp(ok.body).media[0].port)
        # Then nothing: the relay's media timeout ends the call.
        bye_gw, addr = await h.gw1.request("BYE", timeout=10)
        h.gw1.send(make_response(bye_gw, 200), addr)
        bye_uac, uac_addr = await h.uac.request("BYE", timeout=10)
        h.uac.send(make_response(bye_uac, 200), uac_addr)
        assert 'text="Media timeout"' in (bye_gw.headers.get("Reason") or "")
        (cdr,) = await h.sink.wait()
        assert cdr.media_timeout
        assert cdr.hangup_side is HangupSide.SWITCH
        assert cdr.q850_cause == 102
        assert cdr.caller_rtp_packets == 1

    try:
        run_scenario(scenario, customer=RELAY, media={"timeout_s": 1.0})
    finally:
        caller.close()
        callee.close()


def test_srtp_offered_over_udp_is_refused_with_488(run_scenario: Run) -> None:
    crypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "QUJD" * 10 + "\r\n"

    async def scenario(h: Harness) -> None:
        _invite(h, sdp("127.0.0.1", 4000, proto="RTP/SAVP", extra=crypto))
        refused = await h.uac.response(488)
        assert refused.status == 488
        assert h.gw1.nothing(lambda m: isinstance(m, Request) and m.method == "INVITE")
        (cdr,) = await h.sink.wait()
        assert cdr.sip_code == 488
        assert cdr.media == "relay"

    run_scenario(scenario, customer=RELAY)


def test_bypass_passes_bodies_unchanged(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        body = sdp("127.0.0.1", 40000)
        _invite(h, body)
        invite, _ = await h.gw1.request("INVITE")
        assert invite.body == body

    run_scenario(scenario)


def _call(customer: str, *providers: str, inbound: str | None = None) -> Any:
    def provider(media: str) -> Any:
        return RouteCandidate(
            Provider(1, "p", media=MediaChoice(media)),
            Gateway(1, 1, "gw", "127.0.0.1"),
            Rate("44", "UK", Decimal(0)),
            "44",
        )

    return SimpleNamespace(
        customer=SimpleNamespace(media=MediaChoice(customer)),
        candidates=tuple(provider(media) for media in providers),
        # An inbound call: the provider delivering it.
        inbound_gateway=None
        if inbound is None
        else (Provider(2, "in", media=MediaChoice(inbound)), Gateway(2, 2, "in", "127.0.0.8")),
    )


@pytest.mark.parametrize(
    ("customer", "providers", "default", "chosen"),
    [
        ("default", (), "bypass", "bypass"),
        ("default", (), "relay", "relay"),
        ("relay", ("bypass",), "bypass", "relay"),
        ("bypass", ("rtpengine",), "relay", "bypass"),
        ("default", ("default", "relay"), "bypass", "relay"),
        ("default", ("bypass", "rtpengine", "relay"), "bypass", "rtpengine"),
        ("default", ("bypass", "default"), "relay", "bypass"),
    ],
    ids=[
        "switch-default",
        "switch-default-relay",
        "customer-wins",
        "customer-bypass-wins",
        "provider-anchors",
        "first-anchoring-provider",
        "provider-bypass-over-default",
    ],
)
def test_backend_choice(
    customer: str, providers: tuple[str, ...], default: str, chosen: str
) -> None:
    assert MediaHooks(default=default).choose(_call(customer, *providers)) == chosen


@pytest.mark.parametrize(
    ("customer", "inbound", "chosen"),
    [
        ("default", "relay", "relay"),
        ("bypass", "relay", "bypass"),
        ("default", "default", "bypass"),
    ],
    ids=["delivering-provider-anchors", "owner-wins", "switch-default"],
)
def test_backend_choice_of_an_inbound_call(customer: str, inbound: str, chosen: str) -> None:
    # The DID's owner is the customer; the provider delivering the call is the route.
    assert MediaHooks().choose(_call(customer, inbound=inbound)) == chosen
