"""Micro-benchmark of the SIP message hot path (run by hand, not collected by pytest).

.venv/bin/python tests/sip/bench_message.py
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

from tollguard.sip import Headers, Request, make_response, parse_message, parse_uri, read_message

INVITE = (
    b"INVITE sip:+14155550123@gw1.carrier.example.net;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:+12125550100@customer.example.com>;tag=1928301774\r\n'
    b"To: <sip:+14155550123@gw1.carrier.example.net;user=phone>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.customer.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:+12125550100@198.51.100.7:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n"
    b"Supported: timer, 100rel\r\n"
    b"User-Agent: Tollguard-Bench/1.0\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 130\r\n"
    b"\r\n"
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\n"
    b"c=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8\r\na=sendrecv\r\n"
)


def parse_and_read() -> None:
    message = parse_message(INVITE)
    _ = message.call_id, message.cseq, message.from_, message.to, message.vias[0]


def unique_invites(count: int) -> list[bytes]:
    """INVITEs of distinct calls: new called number, Call-ID, tag and branch each."""
    return [
        INVITE.replace(b"+14155550123", b"+1415%07d" % index)
        .replace(b"a84b4c76e66710", b"%014x" % (index * 7919))
        .replace(b"1928301774", b"%010d" % index)
        .replace(b"776asdhds", b"%09x" % (index * 104729))
        for index in range(count)
    ]


def cold_parse(messages: list[bytes]) -> float:
    """Mean CPU time to parse and read the key headers of messages never seen before."""
    start = time.process_time()
    for data in messages:
        message = parse_message(data)
        _ = message.call_id, message.cseq, message.from_, message.to, message.vias[0]
    return (time.process_time() - start) / len(messages)


def main() -> None:
    number = 20000
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    built = Request(
        "INVITE",
        parse_uri("sip:+14155550123@gw1.carrier.example.net"),
        Headers(list(request.headers)),
        request.body,
    )
    ok = make_response(request, 200, to_tag="8321234356")
    cases: dict[str, Callable[[], object]] = {
        "parse + key accessors, same call": parse_and_read,
        "read_message (parse + validate)": lambda: read_message(INVITE),
        "serialize parsed INVITE": request.to_bytes,
        "serialize built INVITE": built.to_bytes,
        "make_response 200": lambda: make_response(request, 200, to_tag="8321234356"),
        "serialize 200 OK": ok.to_bytes,
    }
    # CPU time of this process, so that other load on the machine does not count;
    # the calibration line tells how fast this machine runs plain Python.
    numbers = list(range(100))
    cases["calibration: sum of 100 ints"] = lambda: sum(numbers)
    print(f"INVITE size: {len(INVITE)} octets")
    cold = min(cold_parse(unique_invites(number)) for _ in range(3))
    print(f"{'parse + key accessors, new calls':34} {cold * 1e6:7.2f} us")
    for label, func in cases.items():
        timer = timeit.Timer(func, timer=time.process_time)
        best = min(timer.repeat(number=number, repeat=7)) / number
        print(f"{label:34} {best * 1e6:7.2f} us")


if __name__ == "__main__":
    main()
