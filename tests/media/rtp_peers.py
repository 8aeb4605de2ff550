"""RTP endpoints for the media tests: loopback sockets that send and collect packets."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def rtp_packet(seq: int, *, ssrc: int = 0x1234, payload: bytes = b"\xd5" * 160) -> bytes:
    """An RTP packet (RFC 3550 §5.1): version 2, PCMA (8), 20 ms of audio."""
    return struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, seq * 160, ssrc) + payload


@dataclass
class Peer:
    """One side's media socket on ``host`` (a port chosen by the kernel)."""

    host: str = "127.0.0.1"
    sock: socket.socket = field(init=False)
    received: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.setblocking(False)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send(self, data: bytes, port: int, host: str = "127.0.0.1") -> None:
        self.sock.sendto(data, (host, port))

    def collect(self, until: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Read packets until ``until()`` holds (or the timeout: the test then fails)."""
        deadline = time.monotonic() + timeout_s
        while not until() and time.monotonic() < deadline:
            try:
                self.received.append(self.sock.recvfrom(4096))
            except BlockingIOError:
                time.sleep(0.005)

    def drain(self, quiet_s: float = 0.2) -> None:
        """Read whatever arrives until nothing came for ``quiet_s``."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            try:
                self.received.append(self.sock.recvfrom(4096))
                last = time.monotonic()
            except BlockingIOError:
                time.sleep(0.005)

    def close(self) -> None:
        self.sock.close()


def sdp(host: str, port: int, *, extra: str = "", proto: str = "RTP/AVP") -> bytes:
    return (
        "v=0\r\n"
        f"o=- 1 1 IN IP4 {host}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} {proto} 8\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        f"{extra}"
    ).encode()
