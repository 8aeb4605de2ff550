"""In-process CPU profile of complete calls through the B2BUA (run by hand, not collected).

    .venv/bin/python -m tests.switch.profile_calls [--calls N] [--auth acl|digest]
        [--repeat R] [--profile] [--guarded | --prepaid]

A fake transport stands in for the sockets: the customer (shaped like SIPp's
``uac_auth.xml``) and the gateway (``uas_answer.xml``) are byte templates, so almost all
CPU time measured is the switch's. Each call is INVITE/100/180/200/ACK/BYE/200 on both
legs, with ACL authentication, or with digest (407, ACK, INVITE with credentials) when
``--auth digest``. Printed: microseconds of thread CPU inside ``B2bua.on_message`` per call
(mean, then the 10th percentile and median of batches of 100 calls, which a shared
machine disturbs less), the same per message, and the whole loop's CPU per call
(including the fake peers).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from tests.switch.conftest import PASSWORD, TECH_PREFIX, make_settings, plan_data
from tollguard.domain.cdr import Cdr
from tollguard.domain.credit import CreditControl
from tollguard.domain.plan import BillingMode, CreditTerms
from tollguard.domain.routing import build_plan
from tollguard.sip.digest import authorization
from tollguard.state.memory import MemoryReservations
from tollguard.switch.b2bua import B2bua
from tollguard.switch.cdr_writer import CdrWriter
from tollguard.switch.server import _guard

SWITCH = ("127.0.0.1", 15060)
GATEWAY_PORT = 15070
# ACL customers come from 127.0.0.1; anything else must authenticate by digest.
ACL_SOURCE = ("127.0.0.1", 15080)
DIGEST_SOURCE = ("127.0.0.2", 15080)
GATEWAY = ("127.0.0.1", GATEWAY_PORT)

SDP = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
    "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
)


class NullSink:
    def __init__(self) -> None:
        self.count = 0

    def write_batch(self, cdrs: list[Cdr]) -> None:
        self.count += len(cdrs)


def header(data: bytes, name: bytes) -> bytes:
    """The whole ``name:`` line of ``data`` without its CRLF (first occurrence)."""
    start = data.find(b"\r\n" + name + b":") + 2
    return data[start : data.index(b"\r\n", start)]


def uac_invite(call: int, number: str, source: tuple[str, int], cseq: int, auth: str) -> bytes:
    host, port = source
    uri = f"sip:{number}@{SWITCH[0]}:{SWITCH[1]}"
    auth_line = f"Proxy-Authorization: {auth}\r\n" if auth else ""
    return (
        f"INVITE {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-{call}-{cseq}\r\n"
        f'From: "sipp" <sip:alice@{host}:{port}>;tag=1SIPpTag00{call}\r\n'
        f"To: <{uri}>\r\n"
        f"Call-ID: {call}-1@{host}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:alice@{host}:{port}>\r\n"
        f"{auth_line}"
        "Max-Forwards: 70\r\nUser-Agent: SIPp\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n{SDP}"
    ).encode()


def uac_in_dialog(
    method: str, call: int, number: str, source: tuple[str, int], cseq: int, to: bytes
) -> bytes:
    host, port = source
    return (
        f"{method} sip:alice@127.0.0.1:{SWITCH[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-{call}-{cseq}{method}\r\n"
        f'From: "sipp" <sip:alice@{host}:{port}>;tag=1SIPpTag00{call}\r\n'
        f"{to.decode()}\r\n"
        f"Call-ID: {call}-1@{host}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: <sip:alice@{host}:{port}>\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def gw_response(request: bytes, status: str, tag: str, body: str = "") -> bytes:
    to = header(request, b"To")
    if tag:
        to += f";tag={tag}".encode()
    lines = [
        f"SIP/2.0 {status}".encode(),
        header(request, b"Via"),
        header(request, b"From"),
        to,
        header(request, b"Call-ID"),
        header(request, b"CSeq"),
    ]
    if tag:
        lines.append(f"Contact: <sip:127.0.0.1:{GATEWAY_PORT}>".encode())
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    return b"\r\n".join(lines)


class Driver:
    """Plays both peers of every call against one B2BUA and times its callback."""

    def __init__(self, b2bua: B2bua, auth: str) -> None:
        self.b2bua = b2bua
        self.auth = auth
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.inside_ns = 0
        self.messages = 0

    def send(self, data: bytes, transport: str, address: tuple[str, int], connection: int) -> None:
        self.sent.append((data, address))

    def deliver(self, data: bytes, source: tuple[str, int]) -> list[tuple[bytes, tuple[str, int]]]:
        self.sent.clear()
        start = time.thread_time_ns()
        self.b2bua.on_message(data, source, "udp", 0)
        self.inside_ns += time.thread_time_ns() - start
        self.messages += 1
        return list(self.sent)

    def to(self, out: list[tuple[bytes, tuple[str, int]]], prefix: bytes) -> bytes:
        for data, _ in out:
            if data.startswith(prefix):
                return data
        raise AssertionError(f"switch sent no {prefix!r}: {[d[:40] for d, _ in out]}")

    def call(self, index: int) -> None:
        if self.auth == "acl":
            source = ACL_SOURCE
            number = f"{TECH_PREFIX}44207{index:07d}"
            out = self.deliver(uac_invite(index, number, source, 1, ""), source)
        else:
            source = DIGEST_SOURCE
            number = f"44207{index:07d}"
            out = self.deliver(uac_invite(index, number, source, 1, ""), source)
            challenge = self.to(out, b"SIP/2.0 407")
            value = header(challenge, b"Proxy-Authenticate").split(b": ", 1)[1].decode()
            self.deliver(
                uac_in_dialog("ACK", index, number, source, 1, header(challenge, b"To")), source
            )
            uri = f"sip:{number}@{SWITCH[0]}:{SWITCH[1]}"
            creds = authorization(value, "alice", PASSWORD, "INVITE", uri, f"c{index}")
            out = self.deliver(uac_invite(index, number, source, 2, creds), source)
        invite = self.to(out, b"INVITE ")
        tag = f"gw{index}"
        self.deliver(gw_response(invite, "100 Trying", ""), GATEWAY)
        self.to(self.deliver(gw_response(invite, "180 Ringing", tag), GATEWAY), b"SIP/2.0 180")
        out = self.deliver(gw_response(invite, "200 OK", tag, SDP[:-10]), GATEWAY)
        ok = self.to(out, b"SIP/2.0 200")
        self.to(out, b"ACK ")
        cseq = 1 if self.auth == "acl" else 2
        to = header(ok, b"To")
        self.deliver(uac_in_dialog("ACK", index, number, source, cseq, to), source)
        out = self.deliver(uac_in_dialog("BYE", index, number, source, cseq + 1, to), source)
        bye = self.to(out, b"BYE ")
        self.deliver(gw_response(bye, "200 OK", ""), GATEWAY)


async def run(
    calls: int, auth: str, profile: bool, guarded: bool = False, prepaid: bool = False
) -> tuple[float, float, float, float, float]:
    settings = make_settings(Path("/nonexistent"), digest_algorithms=("MD5", "SHA-256"))
    if guarded:
        # The caller is not on the shield's allow-list: every check runs for it.
        settings = replace(
            settings,
            shield=replace(settings.shield, trust_acl=False, source_rate=1e9, source_burst=1e9),
        )
    if guarded or prepaid:
        data = plan_data(
            (GATEWAY_PORT, GATEWAY_PORT + 1),
            credit=CreditTerms(mode=BillingMode.PREPAID),
        )
    else:
        data = plan_data((GATEWAY_PORT, GATEWAY_PORT + 1))
    plan = build_plan(data)
    sink = NullSink()
    writer = CdrWriter(sink, batch_size=500, flush_interval_s=0.2)
    guard = credit = None
    if guarded:
        guard, _ = _guard(settings, None)
        guard.use_plan(plan)  # as the switch's loader does at each plan
    if guarded or prepaid:
        credit = CreditControl(MemoryReservations())
        credit.store.open(1, Decimal(10) ** 9, 0)
    b2bua = B2bua(
        settings, lambda: plan, writer, nonce_secret=b"k" * 32, guard=guard, credit=credit
    )
    driver = Driver(b2bua, auth)
    b2bua.bind(driver.send, {"udp": SWITCH[1]}, SWITCH[0])
    for index in range(200):  # warm the memos and caches as a running switch has them
        driver.call(1_000_000 + index)
    driver.inside_ns = driver.messages = 0
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler is not None:
        profiler.enable()
    batches: list[float] = []
    mark = 0
    for index in range(calls):
        driver.call(index)
        if index % 100 == 99:
            batches.append((driver.inside_ns - mark) / 100_000)
            mark = driver.inside_ns
            await asyncio.sleep(0)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu
    b2bua.close()
    writer.close()
    if profiler is not None:
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(35)
    batches.sort()
    return (
        driver.inside_ns / 1000 / calls,
        driver.inside_ns / 1000 / driver.messages,
        cpu * 1e6 / calls,
        batches[len(batches) // 10],
        batches[len(batches) // 2],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--auth", choices=("acl", "digest"), default="acl")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the cProfile top")
    parser.add_argument(
        "--guarded",
        action="store_true",
        help="with the shield, the fraud engine and prepaid credit control on the call path",
    )
    parser.add_argument(
        "--prepaid", action="store_true", help="with prepaid credit control only on the call path"
    )
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    for _ in range(args.repeat):
        per_call, per_message, total, p10, p50 = runner(
            run(args.calls, args.auth, args.profile, args.guarded, args.prepaid)
        )
        print(
            f"auth={args.auth} calls={args.calls}: {per_call:.1f} us/call in on_message "
            f"({per_message:.1f} us/message; batches of 100 calls: p10 {p10:.1f}, "
            f"median {p50:.1f}), {total:.1f} us/call CPU overall"
        )


if __name__ == "__main__":
    main()
