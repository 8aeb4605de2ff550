"""The embedded relay with real sockets on loopback: anchoring, locking, counters, timeout.

The engine runs in a thread with a clock the tests move, so a media timeout is reached
by moving the clock, not by waiting for it.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator

import pytest

from tollguard.config import MediaSettings
from tollguard.media import MediaRefused, Party
from tollguard.media.relay import EmbeddedRelay
from tollguard.media.rtp import native_available
from tollguard.sip.sdp import parse_sdp

from .rtp_peers import Peer, rtp_packet, sdp

SDP = "application/sdp"
ATTACKER = "127.0.0.9"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _settings(**overrides: object) -> MediaSettings:
    low = random.Random().randrange(30000, 60000, 2)
    values: dict[str, object] = {
        "relay_host": "127.0.0.1",
        "port_min": low,
        "port_max": low + 199,
        "timeout_s": 5.0,
        "latch_window_s": 3.0,
    }
    values.update(overrides)
    return MediaSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=[True, False], ids=["c-path", "python-path"])
def native(request: pytest.FixtureRequest) -> bool:
    """Every relay test runs on the C packet path and on the Python one."""
    return bool(request.param)


@pytest.fixture
def relay(clock: Clock, native: bool) -> Iterator[EmbeddedRelay]:
    backend = EmbeddedRelay(_settings(relay_native=native))
    backend.start(process=False, clock=clock)
    yield backend
    backend.close()


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    caller, callee = Peer(), Peer()
    yield caller, callee
    caller.close()
    callee.close()


def _port(body: bytes) -> int:
    return parse_sdp(body).media[0].port


def _call(
    relay: EmbeddedRelay, caller: Peer, callee: Peer, session: str = "call-1"
) -> tuple[int, int]:
    """Offer and answer through the relay: the (customer-side, gateway-side) ports."""
    towards_callee = relay.offer(
        session, sdp("127.0.0.1", caller.port), SDP, Party("127.0.0.1", 5070, "udp")
    )
    towards_caller = relay.answer(
        session, sdp("127.0.0.1", callee.port), SDP, Party("127.0.0.1", 5080, "udp")
    )
    relay.answered(session)
    return _port(towards_caller), _port(towards_callee)


def test_offer_and_answer_point_each_side_at_the_relay(
    relay: EmbeddedRelay, peers: tuple[Peer, Peer]
) -> None:
    caller, callee = peers
    offer = parse_sdp(
        relay.offer(
            "c",
            sdp("127.0.0.1", caller.port, extra="a=rtcp-mux\r\n"),
            SDP,
            Party("127.0.0.1", 5070, "udp"),
        )
    )
    media = offer.media[0]
    a_port, b_port = relay.relay_ports("c")[0] or (0, 0)
    assert media.port == b_port != caller.port
    assert offer.connection is not None and offer.connection.address == "127.0.0.1"
    assert media.attribute("rtcp") == f"{b_port + 1} IN IP4 127.0.0.1"
    assert media.attribute("rtcp-mux") is None
    answer = parse_sdp(
        relay.answer("c", sdp("127.0.0.1", callee.port), SDP, Party("127.0.0.1", 1, "udp"))
    )
    assert answer.media[0].port == a_port != b_port


def test_the_c_path_is_built() -> None:
    """The test command installs a C compiler, so the relay's C path must be there."""
    assert native_available()


def test_rtp_flows_both_ways_and_is_counted(relay: EmbeddedRelay, peers: tuple[Peer, Peer]) -> None:
    caller, callee = peers
    a_port, b_port = _call(relay, caller, callee)
    for seq in range(10):
        caller.send(rtp_packet(seq), a_port)
        callee.send(rtp_packet(seq, ssrc=0x99), b_port)
    callee.collect(lambda: len(callee.received) >= 10)
    caller.collect(lambda: len(caller.received) >= 10)
    assert [data for data, _ in callee.received] == [rtp_packet(seq) for seq in range(10)]
    assert {source for _, source in callee.received} == {("127.0.0.1", b_port)}
    assert {source for _, source in caller.received} == {("127.0.0.1", a_port)}
    counters = relay.end("call-1")
    assert (counters.caller_packets, counters.callee_packets) == (10, 10)
    assert counters.caller_bytes == 10 * len(rtp_packet(0))
    assert (counters.caller_lost, counters.dropped, counters.timed_out) == (0, 0, False)


def test_a_stranger_is_dropped_and_counted(relay: EmbeddedRelay, peers: tuple[Peer, Peer]) -> None:
    caller, callee = peers
    a_port, b_port = _call(relay, caller, callee)
    attacker = Peer(ATTACKER)
    try:
        for seq in range(5):
            attacker.send(rtp_packet(seq, ssrc=0xBAD, payload=b"evil" * 40), a_port)
            attacker.send(rtp_packet(seq, ssrc=0xBAD), b_port)
            caller.send(rtp_packet(seq), a_port)
        callee.collect(lambda: len(callee.received) >= 5)
        callee.drain()
        caller.drain()
        attacker.drain()
    finally:
        attacker.close()
    assert [data for data, _ in callee.received] == [rtp_packet(seq) for seq in range(5)]
    assert caller.received == []  # the attacker's packets to the gateway side went nowhere
    assert attacker.received == []
    counters = relay.end("call-1")
    assert counters.dropped == 10
    assert counters.caller_packets == 5


def test_a_flood_from_a_stranger_is_dropped_and_the_call_goes_on(
    relay: EmbeddedRelay, peers: tuple[Peer, Peer]
) -> None:
    """An attacker floods both of a call's relay ports, some of it spoofing RTP headers
    of the caller's stream, while the caller talks: every one of the attacker's packets
    is dropped and counted, every one of the caller's arrives, in order, from the relay."""
    caller, callee = peers
    a_port, b_port = _call(relay, caller, callee)
    attacker = Peer(ATTACKER)
    flood = 0
    try:
        for seq in range(20):
            for burst in range(50):
                attacker.send(rtp_packet(seq + burst, payload=b"evil" * 40), a_port)
                attacker.send(b"\x00" * (burst % 20), b_port)  # not RTP, and empty ones
                flood += 2
            caller.send(rtp_packet(seq), a_port)
            # Each round is taken in before the next: the kernel's socket buffers never
            # overflow, so every flood packet reaches the relay and must be counted.
            deadline = time.monotonic() + 5
            while relay.counters("call-1").dropped < flood and time.monotonic() < deadline:
                time.sleep(0.002)
        callee.collect(lambda: len(callee.received) >= 20)
        callee.drain()
        caller.drain()
        attacker.drain()
    finally:
        attacker.close()
    assert [data for data, _ in callee.received] == [rtp_packet(seq) for seq in range(20)]
    assert {source for _, source in callee.received} == {("127.0.0.1", b_port)}
    assert caller.received == attacker.received == []
    counters = relay.end("call-1")
    assert (counters.dropped, counters.caller_packets, counters.caller_lost) == (flood, 20, 0)


def test_nat_latches_on_the_signalling_address_once(
    relay: EmbeddedRelay, peers: tuple[Peer, Peer]
) -> None:
    caller, callee = peers
    # The caller announces an address it does not send from (behind NAT); its
    # signalling came from 127.0.0.1, where its packets come from.
    relay.offer("n", sdp("127.0.0.77", 4000), SDP, Party("127.0.0.1", 5070, "udp"))
    answer = relay.answer("n", sdp("127.0.0.1", callee.port), SDP, Party("127.0.0.1", 1, "udp"))
    a_port = _port(answer)
    b_port = relay.relay_ports("n")[0][1]  # type: ignore[index]
    caller.send(rtp_packet(1), a_port)
    callee.collect(lambda: len(callee.received) >= 1)
    # The callee's media now goes to where the caller really is.
    callee.send(rtp_packet(1, ssrc=7), b_port)
    caller.collect(lambda: len(caller.received) >= 1)
    assert caller.received[0][0] == rtp_packet(1, ssrc=7)
    # Another socket of the same host does not take the lock over.
    other = Peer()
    try:
        other.send(rtp_packet(2, ssrc=0xBAD), a_port)
        caller.send(rtp_packet(2), a_port)
        callee.collect(lambda: len(callee.received) >= 2)
        callee.drain()
    finally:
        other.close()
    assert [data for data, _ in callee.received] == [rtp_packet(1), rtp_packet(2)]
    assert relay.end("n").dropped == 1


def test_nat_window_closes(relay: EmbeddedRelay, clock: Clock, peers: tuple[Peer, Peer]) -> None:
    caller, callee = peers
    relay.offer("w", sdp("127.0.0.77", 4000), SDP, Party("127.0.0.1", 5070, "udp"))
    a_port = _port(
        relay.answer("w", sdp("127.0.0.1", callee.port), SDP, Party("127.0.0.1", 1, "udp"))
    )
    assert relay.ping()
    clock.now += 3.5  # past latch_window_s
    caller.send(rtp_packet(1), a_port)
    callee.drain()
    assert callee.received == []
    assert relay.counters("w").dropped == 1


def test_losses_are_counted_from_sequence_numbers(
    relay: EmbeddedRelay, peers: tuple[Peer, Peer]
) -> None:
    caller, callee = peers
    a_port, _ = _call(relay, caller, callee)
    sent = [0, 1, 2, 5, 6, 4, 7]  # 3 lost, 4 late
    for seq in sent:
        caller.send(rtp_packet(seq), a_port)
    callee.collect(lambda: len(callee.received) >= len(sent))
    counters = relay.end("call-1")
    assert counters.caller_packets == len(sent)
    assert counters.caller_lost == 1


def _wait_for(condition: object, relay: EmbeddedRelay, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        relay.poll()
        if callable(condition) and condition():
            return
        time.sleep(0.02)


def test_no_rtp_in_an_answered_call_is_reported(
    relay: EmbeddedRelay, clock: Clock, peers: tuple[Peer, Peer]
) -> None:
    caller, callee = peers
    dead: list[str] = []
    relay.on_timeout = dead.append
    a_port, _ = _call(relay, caller, callee)
    caller.send(rtp_packet(1), a_port)
    callee.collect(lambda: len(callee.received) >= 1)
    assert relay.ping()
    clock.now += 4.0
    _wait_for(lambda: bool(dead), relay, timeout_s=1.5)
    assert dead == []  # within the timeout
    clock.now += 1.5
    _wait_for(lambda: bool(dead), relay)
    assert dead == ["call-1"]
    assert relay.end("call-1").timed_out


def test_hold_does_not_time_out(
    relay: EmbeddedRelay, clock: Clock, peers: tuple[Peer, Peer]
) -> None:
    caller, callee = peers
    dead: list[str] = []
    relay.on_timeout = dead.append
    _call(relay, caller, callee)
    relay.reoffer("call-1", True, sdp("127.0.0.1", caller.port, extra="a=sendonly\r\n"), SDP)
    relay.reoffer("call-1", False, sdp("127.0.0.1", callee.port, extra="a=recvonly\r\n"), SDP)
    assert relay.ping()
    clock.now += 60
    _wait_for(lambda: bool(dead), relay, timeout_s=1.5)
    assert dead == []
    # Back from hold: the timeout runs again.
    relay.reoffer("call-1", True, sdp("127.0.0.1", caller.port), SDP)
    relay.reoffer("call-1", False, sdp("127.0.0.1", callee.port), SDP)
    assert relay.ping()
    clock.now += 6
    _wait_for(lambda: bool(dead), relay)
    assert dead == ["call-1"]


def test_reoffer_moves_the_lock_to_the_new_description(
    relay: EmbeddedRelay, peers: tuple[Peer, Peer]
) -> None:
    caller, callee = peers
    a_port, _ = _call(relay, caller, callee)
    moved = Peer()
    try:
        body = relay.reoffer("call-1", True, sdp("127.0.0.1", moved.port), SDP)
        assert _port(body) == relay.relay_ports("call-1")[0][1]  # type: ignore[index]
        caller.send(rtp_packet(1, ssrc=1), a_port)  # the old address: now a stranger
        moved.send(rtp_packet(2, ssrc=2), a_port)
        callee.collect(lambda: len(callee.received) >= 1)
        callee.drain()
    finally:
        moved.close()
    assert [data for data, _ in callee.received] == [rtp_packet(2, ssrc=2)]


def test_srtp_offered_over_udp_is_refused(relay: EmbeddedRelay) -> None:
    crypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 40 + "\r\n"
    with pytest.raises(MediaRefused) as refused:
        relay.offer(
            "s",
            sdp("127.0.0.1", 4000, proto="RTP/SAVP", extra=crypto),
            SDP,
            Party("127.0.0.1", 5070, "udp"),
        )
    assert refused.value.status == 488
    assert relay.calls == 0


def test_port_range_exhaustion_refuses_and_releases(clock: Clock) -> None:
    low = random.Random().randrange(30000, 60000, 2)
    backend = EmbeddedRelay(_settings(port_min=low, port_max=low + 7))  # two calls' worth
    backend.start(process=False, clock=clock)
    try:
        party = Party("127.0.0.1", 5070, "udp")
        backend.offer("1", sdp("127.0.0.1", 4000), SDP, party)
        backend.offer("2", sdp("127.0.0.1", 4002), SDP, party)
        with pytest.raises(MediaRefused) as refused:
            backend.offer("3", sdp("127.0.0.1", 4004), SDP, party)
        assert refused.value.status == 503
        backend.end("1")
        assert backend.ping()  # the engine has closed the ended call's sockets
        backend.offer("3", sdp("127.0.0.1", 4004), SDP, party)
        assert backend.calls == 2
    finally:
        backend.close()


def test_many_media_lines_take_a_bounded_number_of_ports(relay: EmbeddedRelay) -> None:
    lines = "".join(f"m=audio {4000 + 2 * i} RTP/AVP 8\r\n" for i in range(40))
    body = relay.offer(
        "m", sdp("127.0.0.1", 3998, extra=lines), SDP, Party("127.0.0.1", 5070, "udp")
    )
    ports = [media.port for media in parse_sdp(body).media]
    assert sum(port != 0 for port in ports) == 8
    assert relay.pool.in_use == 16


def test_engine_in_its_own_process(peers: tuple[Peer, Peer], native: bool) -> None:
    backend = EmbeddedRelay(_settings(relay_native=native))
    backend.start(process=True)
    try:
        caller, callee = peers
        a_port, _ = _call(backend, caller, callee)
        for seq in range(3):
            caller.send(rtp_packet(seq), a_port)
        callee.collect(lambda: len(callee.received) >= 3)
        assert backend.end("call-1").caller_packets == 3
        assert backend.native is native
    finally:
        backend.close()


def test_a_dead_engine_refuses_new_calls(peers: tuple[Peer, Peer]) -> None:
    backend = EmbeddedRelay(_settings())
    backend.start(process=True)
    try:
        pid = backend.engine_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        caller, _ = peers
        with pytest.raises(MediaRefused) as refused:
            backend.offer("d", sdp("127.0.0.1", caller.port), SDP, Party("127.0.0.1", 5070, "udp"))
        assert refused.value.status == 503
        assert (backend.calls, backend.pool.in_use) == (0, 0)
    finally:
        backend.close()
