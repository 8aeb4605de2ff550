"""SDES-SRTP on the customer's leg, terminated by the embedded relay (TLS signalling only)."""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Iterator

import pytest
from pylibsrtp import Policy, Session

from tollguard.config import MediaSettings
from tollguard.media import Party
from tollguard.media.relay import EmbeddedRelay
from tollguard.media.srtp import Crypto, parse_crypto
from tollguard.sip.sdp import parse_sdp

from .rtp_peers import Peer, rtp_packet, sdp

SDP = "application/sdp"
SUITE = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture
def relay() -> Iterator[EmbeddedRelay]:
    low = random.Random().randrange(30000, 60000, 2)
    backend = EmbeddedRelay(
        MediaSettings(relay_host="127.0.0.1", port_min=low, port_max=low + 99, timeout_s=0)
    )
    backend.start(process=False)
    yield backend
    backend.close()


def _session(key: bytes, outbound: bool) -> Session:
    kind = Policy.SSRC_ANY_OUTBOUND if outbound else Policy.SSRC_ANY_INBOUND
    return Session(
        Policy(key=key, ssrc_type=kind, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    )


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        (f"1 {SUITE} inline:" + base64.b64encode(bytes(30)).decode(), True),
        ("2 AES_CM_128_HMAC_SHA1_32 inline:" + base64.b64encode(bytes(30)).decode(), True),
        (f"1 {SUITE} inline:" + base64.b64encode(bytes(30)).decode() + "|2^20|1:4", False),
        (f"1 {SUITE} inline:" + base64.b64encode(bytes(16)).decode(), False),
        ("1 AEAD_AES_256_GCM inline:" + base64.b64encode(bytes(44)).decode(), False),
        (f"1 {SUITE} inline:not*base64", False),
        (f"x {SUITE} inline:" + base64.b64encode(bytes(30)).decode(), False),
    ],
    ids=["sha1-80", "sha1-32", "mki", "short-key", "gcm", "bad-base64", "bad-tag"],
)
def test_parse_crypto(value: str, usable: bool) -> None:
    assert (parse_crypto(value) is not None) is usable


def test_srtp_customer_over_tls(relay: EmbeddedRelay) -> None:
    caller, callee = Peer(), Peer()
    caller_key = os.urandom(30)
    crypto = Crypto(1, SUITE, caller_key).attribute_value()
    tls = Party("127.0.0.1", 5061, "tls")
    try:
        towards_callee = parse_sdp(
            relay.offer(
                "s",
                sdp("127.0.0.1", caller.port, proto="RTP/SAVP", extra=f"a=crypto:{crypto}\r\n"),
                SDP,
                tls,
            )
        )
        # The gateway is offered plain RTP, without the customer's key.
        assert towards_callee.media[0].proto == "RTP/AVP"
        assert towards_callee.media[0].attribute("crypto") is None
        answer = parse_sdp(relay.answer("s", sdp("127.0.0.1", callee.port), SDP, tls))
        media = answer.media[0]
        assert media.proto == "RTP/SAVP"
        ours = parse_crypto(media.attribute("crypto") or "")
        assert ours is not None and ours.tag == 1 and ours.key != caller_key
        protect = _session(caller_key, outbound=True)
        unprotect = _session(ours.key, outbound=False)
        plain = [rtp_packet(seq) for seq in range(5)]
        for packet in plain:
            caller.send(protect.protect(packet), media.port)
        callee.collect(lambda: len(callee.received) >= 5)
        assert [data for data, _ in callee.received] == plain
        b_port = towards_callee.media[0].port
        for seq in range(3):
            callee.send(rtp_packet(seq, ssrc=9), b_port)
        caller.collect(lambda: len(caller.received) >= 3)
        assert [unprotect.unprotect(data) for data, _ in caller.received] == [
            rtp_packet(seq, ssrc=9) for seq in range(3)
        ]
        # A packet that fails authentication is dropped and counted, not relayed.
        forged = bytearray(protect.protect(rtp_packet(99)))
        forged[-1] ^= 0xFF
        caller.send(bytes(forged), media.port)
        callee.drain()
        assert len(callee.received) == 5
        assert relay.end("s").dropped == 1
    finally:
        caller.close()
        callee.close()
