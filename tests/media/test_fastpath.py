"""The relay's C packet path on its own: what it refuses, what it hands back.

The relay tests (test_relay.py) run every call flow on it; these check the edges of the
module itself with real sockets on loopback.
"""

from __future__ import annotations

import array
import select
import socket
from collections.abc import Iterator

import pytest

from tollguard.media.rtp import SLOT_SIZE

from .rtp_peers import rtp_packet

fastpath = pytest.importorskip("tollguard.media._fastpath")


def _udp(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


class Rig:
    """Two relay sockets (one stream's RTP, both sides) on one epoll, and a control pair."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.counters = memoryview(array.array("q", bytes(8 * SLOT_SIZE * 2))).cast("B").cast("q")
        self.now = 50.0
        self.forwarder = fastpath.Forwarder(self.counters, 2, lambda: self.now)
        self.a, self.b = _udp(host), _udp(host)
        self.control, self.switch = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.epoll = select.epoll()
        for sock in (self.a, self.b, self.control):
            self.epoll.register(sock.fileno(), select.EPOLLIN)
        slot = 1
        base = slot * SLOT_SIZE
        self.forwarder.add(self.a.fileno(), self.b.fileno(), True, base, slot)
        self.forwarder.add(self.b.fileno(), self.a.fileno(), True, base + 3, slot)

    def poll(self) -> list[tuple[int, bytes, tuple[object, ...]]] | None:
        result: list[tuple[int, bytes, tuple[object, ...]]] | None = self.forwarder.poll(
            self.epoll.fileno(), self.control.fileno(), 1000
        )
        return result

    def close(self) -> None:
        self.forwarder.close()
        for sock in (self.a, self.b, self.control, self.switch):
            sock.close()
        self.epoll.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.close()


def test_counters_smaller_than_the_slots_are_refused() -> None:
    counters = memoryview(bytearray(8 * SLOT_SIZE)).cast("q")
    with pytest.raises(ValueError, match="smaller"):
        fastpath.Forwarder(counters, 2, lambda: 0.0)
    with pytest.raises(BufferError, match="not writable"):
        fastpath.Forwarder(bytes(8 * SLOT_SIZE), 1, lambda: 0.0)
    with pytest.raises(TypeError, match="callable"):
        fastpath.Forwarder(counters, 1, 0.0)


def test_bad_arguments_are_errors_not_crashes(rig: Rig) -> None:
    forwarder = rig.forwarder
    with pytest.raises(ValueError, match="numeric"):
        forwarder.peer(rig.a.fileno(), ("localhost", 4000), None)
    with pytest.raises(ValueError, match="range"):
        forwarder.peer(rig.a.fileno(), ("127.0.0.1", 70000), None)
    with pytest.raises(ValueError):
        forwarder.add(rig.a.fileno(), rig.b.fileno(), True, 0, 5)  # no such slot
    with pytest.raises(ValueError):
        forwarder.add(rig.a.fileno(), rig.b.fileno(), True, SLOT_SIZE - 1, 0)  # past the slot
    with pytest.raises(KeyError):
        forwarder.lock(9999, ("127.0.0.1", 1))
    forwarder.remove(9999)  # unknown: nothing to forget
    forwarder.remove(-1)


def test_an_unlocked_source_is_handed_back(rig: Rig) -> None:
    sender = _udp()
    try:
        sender.sendto(rtp_packet(1), rig.a.getsockname())
        handed = rig.poll()
        assert handed == [(rig.a.fileno(), rtp_packet(1), sender.getsockname())]
        assert rig.counters.tolist() == [0] * (2 * SLOT_SIZE)
    finally:
        sender.close()


def test_a_locked_stream_is_relayed_and_counted_in_c(rig: Rig) -> None:
    caller, callee = _udp(), _udp()
    try:
        forwarder = rig.forwarder
        forwarder.peer(rig.a.fileno(), caller.getsockname(), caller.getsockname())
        forwarder.peer(rig.b.fileno(), callee.getsockname(), callee.getsockname())
        stranger = _udp("127.0.0.9")
        try:
            stranger.sendto(rtp_packet(7, ssrc=0xBAD), rig.a.getsockname())
            for seq in (1, 2, 4):
                caller.sendto(rtp_packet(seq), rig.a.getsockname())
            while rig.counters[SLOT_SIZE] < 3 or rig.counters[SLOT_SIZE + 6] < 1:
                # The stranger is dropped and counted in C: nothing is handed back.
                assert rig.poll() == []
        finally:
            stranger.close()
        select.select([callee], [], [], 2)
        received = []
        while True:
            try:
                received.append(callee.recvfrom(2048))
            except BlockingIOError:
                break
        assert [data for data, _ in received] == [rtp_packet(seq) for seq in (1, 2, 4)]
        assert {source for _, source in received} == {rig.b.getsockname()}
        packets, size, lost = rig.counters[SLOT_SIZE : SLOT_SIZE + 3].tolist()
        assert (packets, size, lost) == (3, 3 * len(rtp_packet(1)), 1)
        assert forwarder.last_rx(1) == rig.now
        forwarder.clear(1)
        assert forwarder.last_rx(1) == 0.0
    finally:
        caller.close()
        callee.close()


def test_a_readable_control_socket_comes_first(rig: Rig) -> None:
    sender = _udp()
    try:
        sender.sendto(rtp_packet(1), rig.a.getsockname())
        rig.switch.send(b"{}")
        assert rig.poll() is None  # nothing read: the packet is still waiting
        rig.control.recv(100)
        assert rig.poll() == [(rig.a.fileno(), rtp_packet(1), sender.getsockname())]
    finally:
        sender.close()


def test_not_rtp_is_dropped_and_counted(rig: Rig) -> None:
    caller = _udp()
    try:
        rig.forwarder.peer(rig.a.fileno(), caller.getsockname(), None)
        caller.sendto(b"\x00" * 20, rig.a.getsockname())  # version 0
        caller.sendto(b"\x80\x00", rig.a.getsockname())  # too short
        while rig.counters[SLOT_SIZE + 6] < 2:
            assert rig.poll() == []
    finally:
        caller.close()


def test_ipv6_addresses(rig: Rig) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        six = Rig("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    caller = _udp("::1")
    try:
        source = caller.getsockname()
        six.forwarder.lock(six.a.fileno(), source)
        caller.sendto(rtp_packet(1), six.a.getsockname())
        while six.counters[SLOT_SIZE] < 1:
            assert six.poll() == []
    finally:
        caller.close()
        six.close()


def test_a_closed_forwarder_refuses_work(rig: Rig) -> None:
    rig.forwarder.close()
    with pytest.raises(ValueError, match="closed"):
        rig.poll()
    with pytest.raises(ValueError, match="closed"):
        rig.forwarder.add(rig.a.fileno(), rig.b.fileno(), True, SLOT_SIZE, 1)
