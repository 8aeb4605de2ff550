"""The rtpengine backend against a real rtpengine (Debian's rtpengine-daemon) on loopback."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tollguard.bench.rtpengine import RtpengineNotFound, RtpengineProcess
from tollguard.bench.sippctl import free_udp_ports
from tollguard.media import MediaRefused, Party
from tollguard.media.rtpengine import NgClient, NgError, Rtpengine, parse_reply
from tollguard.sip.sdp import parse_sdp

from .rtp_peers import Peer, rtp_packet, sdp

SDP = "application/sdp"


@pytest.fixture(scope="module")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtpengineProcess]:
    (ng_port,) = free_udp_ports(1)
    low = random.Random().randrange(30000, 60000, 2)
    try:
        process = RtpengineProcess(
            ng_port, low, low + 199, log_path=tmp_path_factory.mktemp("rtpengine") / "log"
        )
    except RtpengineNotFound as exc:
        pytest.skip(str(exc))
    with process:
        yield process


@pytest.fixture
def backend(rtpengine: RtpengineProcess) -> Iterator[Rtpengine]:
    engine = Rtpengine(rtpengine.address, rtpengine.media_settings())
    engine.start()
    yield engine
    engine.close()


def test_call_through_rtpengine(backend: Rtpengine) -> None:
    caller, callee, stranger = Peer(), Peer(), Peer("127.0.0.9")
    try:
        party = Party("127.0.0.1", 5070, "udp")
        offer = parse_sdp(backend.offer("rt-1", sdp("127.0.0.1", caller.port), SDP, party))
        b_port = offer.media[0].port
        assert b_port != caller.port
        answer = parse_sdp(backend.answer("rt-1", sdp("127.0.0.1", callee.port), SDP, party))
        a_port = answer.media[0].port
        backend.answered("rt-1")
        for seq in range(10):
            caller.send(rtp_packet(seq), a_port)
            stranger.send(rtp_packet(seq, ssrc=0xBAD), a_port)
        callee.collect(lambda: len(callee.received) >= 10)
        callee.drain(0.2)
        counters = backend.end("rt-1")
    finally:
        for peer in (caller, callee, stranger):
            peer.close()
    assert [data for data, _ in callee.received] == [rtp_packet(seq) for seq in range(10)]
    assert {source for _, source in callee.received} == {("127.0.0.1", b_port)}
    assert counters.backend == "rtpengine"
    assert counters.caller_packets == 10
    assert counters.dropped == 10
    # rtpengine counts the bytes of every packet that reached the port, dropped ones too.
    assert counters.caller_bytes == 20 * len(rtp_packet(0))


def test_srtp_over_udp_is_refused(backend: Rtpengine) -> None:
    crypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "QUJD" * 10 + "\r\n"
    with pytest.raises(MediaRefused) as refused:
        backend.offer(
            "rt-2",
            sdp("127.0.0.1", 4000, proto="RTP/SAVP", extra=crypto),
            SDP,
            Party("127.0.0.1", 5070, "udp"),
        )
    assert refused.value.status == 488


def test_unreachable_rtpengine_refuses_the_call(rtpengine: RtpengineProcess) -> None:
    (port,) = free_udp_ports(1)
    engine = Rtpengine(("127.0.0.1", port), rtpengine.media_settings(rtpengine_timeout_s=0.2))
    try:
        with pytest.raises(MediaRefused) as refused:
            engine.offer("rt-3", sdp("127.0.0.1", 4000), SDP, Party("127.0.0.1", 5070, "udp"))
    finally:
        engine.close()
    assert refused.value.status == 503


def test_error_replies_are_errors(rtpengine: RtpengineProcess) -> None:
    client = NgClient(rtpengine.address, 1.0)
    try:
        with pytest.raises(NgError, match="rtpengine refused"):
            client.request({"command": "query", "call-id": "no-such-call"})
    finally:
        client.close()


def test_parse_reply_ignores_other_cookies() -> None:
    assert parse_reply(b"other d6:result2:oke", b"mine") is None
    with pytest.raises(NgError, match="malformed"):
        parse_reply(b"mine d6:result", b"mine")
