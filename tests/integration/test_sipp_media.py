"""Calls with media through a real ``tollguard serve``: the embedded relay and rtpengine.

SIPp callers play Debian's G.711 capture (``play_pcap_audio``) towards the switch's
answer; the gateway, a SIPp UAS, announces a port the test listens on, so the test sees
exactly what reaches the callee. An attacker on another loopback address (127.0.0.9)
sends RTP to the port the caller was given, during the call: the callee must get the
caller's packets only, and the CDR counts both. A caller that falls silent has its call
ended by the media timeout.

``relayed`` (SIPp bound to 127.0.0.4) is anchored on the embedded relay, ``engine``
(127.0.0.5) on rtpengine (started here, on loopback).
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.bench.calls import TollguardServer
from tollguard.bench.rtpengine import RtpengineNotFound, RtpengineProcess
from tollguard.bench.sippctl import (
    LOOPBACK,
    Sipp,
    SippResult,
    free_udp_ports,
    wait_until_listening,
)

from .harness import close_shell, export_cdrs, number, rate

pytestmark = pytest.mark.integration

PCAP_PACKETS = 236  # RTP packets in /usr/share/sip-tester/g711a.pcap
PCAP_FIRST_SEQ = 59133
MEDIA_TIMEOUT_S = 3
ATTACKER = "127.0.0.9"
CALLERS = {"relay": "127.0.0.4", "rtpengine": "127.0.0.5"}
_MEDIA_LINE = re.compile(r"^media (\S+) (\d+)\s*$", re.MULTILINE)


class Callee:
    """The callee's media socket: every datagram with its source, read in a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append((data, source))

    def take(self) -> list[tuple[bytes, tuple[str, int]]]:
        with self._lock:
            taken, self.received = self.received, []
        return taken

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class MediaSwitch:
    server: TollguardServer
    workdir: Path
    callee: Callee
    runs: Iterator[int] = field(default_factory=lambda: iter(range(1, 1000)))

    def caller(self, backend: str, scenario: str) -> tuple[Sipp, str]:
        host = CALLERS[backend]
        run = next(self.runs)
        tag = f"m{run}x{time.monotonic_ns() % 1_000_000}"
        sip_port, media_port = free_udp_ports(2, host=host)
        sipp = Sipp(
            scenario,
            workdir=self.workdir,
            name=f"caller-{run:02d}-{backend}",
            local_host=host,
            local_port=sip_port,
            remote=(LOOPBACK, self.server.sip_port),
            service=number("4410"),
            calls=1,
            # Hold the call a little past the capture's 7 s before hanging up.
            pause_ms=8500,
            recv_timeout_ms=60_000,
            call_id=f"%u-{tag}@%s",
            extra_args=["-mp", str(media_port)],
        )
        return sipp, tag

    def cdr(self, tag: str, timeout_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            mine = [c for c in export_cdrs(self.server) if f"-{tag}@" in str(c.get("call_id", ""))]
            if mine:
                return mine[0]
            time.sleep(0.1)
        raise AssertionError(f"no CDR for {tag}: {self.server.log()[-3000:]}")


def _relay_port(sipp: Sipp, tag: str, timeout_s: float = 20) -> int:
    """The port the caller was told to send its media to (logged by the scenario)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            text = (sipp.workdir / "media-ports.txt").read_text(errors="replace")
            found = next((m for m in _MEDIA_LINE.finditer(text) if tag in m.group(1)), None)
            if found:
                return int(found.group(2))
        time.sleep(0.05)
    raise AssertionError(f"the caller got no answer: {sipp.result().errors}")


def _attack(port: int, packets: int = 50) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.bind((ATTACKER, 0))
        for seq in range(packets):
            header = struct.pack("!BBHII", 0x80, 8, seq, seq * 160, 0xBAD)
            attacker.sendto(header + b"evil" * 40, (LOOPBACK, port))
            time.sleep(0.01)


def _rtp(data: bytes) -> tuple[int, int, int]:
    """(payload type, sequence number, SSRC) of an RTP packet."""
    _, payload_type, seq, _, ssrc = struct.unpack("!BBHII", data[:12])
    return payload_type & 0x7F, seq, ssrc


@pytest.fixture(scope="module")
def media_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaSwitch]:
    root = tmp_path_factory.mktemp("sipp-media")
    callee = Callee()
    gateway: Sipp | None = None
    server: TollguardServer | None = None
    try:
        ng_port, gateway_port, sip_port = free_udp_ports(3)
        low = random.Random().randrange(30000, 50000, 2)
        engine = RtpengineProcess(ng_port, low + 1000, low + 1999, log_path=root / "rtpengine.log")
    except RtpengineNotFound as exc:
        callee.close()
        pytest.skip(str(exc))
    try:
        engine.start()
        gateway = Sipp(
            "uas_answer_media",
            workdir=root / "gateway",
            name="gw-media",
            local_port=gateway_port,
            keys={"rtp_port": str(callee.port)},
        ).start()
        assert wait_until_listening(gateway_port), "the gateway did not start"
        server = TollguardServer(
            root / "data",
            sip_port=sip_port,
            settings={
                "media": engine.settings(
                    relay_host=LOOPBACK,
                    port_min=low,
                    port_max=low + 999,
                    timeout_s=float(MEDIA_TIMEOUT_S),
                ),
                "cdr": {"flush_interval_s": 0.2},
            },
        )
        server.init()
        server.load(_plan(gateway_port))
        server.start()
        yield MediaSwitch(server, root / "callers", callee)
    finally:
        if server is not None:
            server.stop()
            close_shell(server)
        if gateway is not None:
            gateway.kill()
        engine.stop()
        callee.close()


def _plan(gateway_port: int) -> dict[str, Any]:
    customer = {
        "sell_card": "sell",
        "numbering": {"country_code": "44"},
        # Credit control admits only what a customer can pay for.
        "credit": {"mode": "postpaid", "credit_limit": "1000000"},
    }
    return {
        "rate_cards": [
            {"name": "sell", "kind": "sell", "rates": [rate("44", Decimal("0.6"))]},
            {"name": "cost", "kind": "cost", "rates": [rate("4410", Decimal("0.3"))]},
        ],
        "providers": [
            {
                "name": "carrier",
                "cost_card": "cost",
                "gateways": [{"name": "carrier-gw", "host": LOOPBACK, "port": gateway_port}],
            }
        ],
        "customers": [
            {
                "name": f"via-{backend}",
                "media": backend,
                "acl": [{"network": f"{host}/32"}],
                **customer,
            }
            for backend, host in CALLERS.items()
        ],
    }


def _finish(sipp: Sipp, timeout_s: float = 90) -> SippResult:
    return sipp.wait(timeout_s)


@pytest.mark.parametrize("backend", ["relay", "rtpengine"])
def test_media_reaches_the_callee_and_an_attacker_does_not(
    media_switch: MediaSwitch, backend: str
) -> None:
    media_switch.callee.take()
    sipp, tag = media_switch.caller(backend, "uac_media")
    with sipp:
        port = _relay_port(sipp, tag)
        _attack(port)
        result = _finish(sipp)
    assert result.ok, result.errors
    time.sleep(0.3)  # the last packets' way through the relay
    received = media_switch.callee.take()
    packets = [_rtp(data) for data, _ in received]
    assert {ssrc for _, _, ssrc in packets} == {packets[0][2]} != {0xBAD}
    seqs = sorted(seq for _, seq, _ in packets)
    assert seqs == list(range(PCAP_FIRST_SEQ, PCAP_FIRST_SEQ + PCAP_PACKETS))
    assert {payload_type for payload_type, _, _ in packets} == {8}
    # The callee sees one source: the anchor, not the caller.
    assert len({source for _, source in received}) == 1
    assert received[0][1][0] == LOOPBACK
    cdr = media_switch.cdr(tag)
    assert cdr["media"] == backend
    assert cdr["caller_rtp_packets"] == PCAP_PACKETS
    assert cdr["rtp_dropped"] == 50
    assert cdr["callee_rtp_packets"] == 0
    assert cdr["media_timeout"] is False
    assert cdr["sip_code"] == 200


@pytest.mark.parametrize("backend", ["relay", "rtpengine"])
def test_a_silent_caller_is_hung_up_after_the_media_timeout(
    media_switch: MediaSwitch, backend: str
) -> None:
    sipp, tag = media_switch.caller(backend, "uac_media_timeout")
    with sipp:
        result = _finish(sipp)
    assert result.ok, result.errors
    assert f"bye {sipp.log_path.read_text().split()[1]}" in sipp.log_path.read_text()
    cdr = media_switch.cdr(tag)
    assert cdr["media"] == backend
    assert cdr["media_timeout"] is True
    assert cdr["hangup_side"] == "switch"
    assert cdr["q850_cause"] == 102
    assert cdr["caller_rtp_packets"] == PCAP_PACKETS
    # Answered for the capture's 7 s, then the timeout; the SIPp caller never hung up.
    assert cdr["duration_ms"] >= MEDIA_TIMEOUT_S * 1000
