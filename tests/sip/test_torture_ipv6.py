"""RFC 5118 (SIP torture tests for IPv6), §4.5: the Via ``received`` parameter.

RFC 3261 §25.1 writes ``via-received = "received" EQUAL (IPv4address / IPv6address)``:
an IPv6 address there has no brackets, yet many implementations send them. RFC 5118
§4.5 calls both messages below valid and asks parsers to accept either form.
"""

from __future__ import annotations

import pytest

from tollguard.sip import LocalProtocolError, Request, parse_via, read_message

# RFC 5118 §4.5, "via-received-param-with-delim".
WITH_DELIM = (
    b"BYE sip:[2001:db8::10] SIP/2.0\r\n"
    b"To: sip:user@example.com;tag=bd76ya\r\n"
    b"From: sip:user@example.com;tag=81x2\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111\r\n"
    b"Call-ID: SSG9559905523997077@hlau_4100\r\n"
    b"Max-Forwards: 70\r\n"
    b"CSeq: 321 BYE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# RFC 5118 §4.5, "via-received-param-no-delim".
NO_DELIM = (
    b"OPTIONS sip:[2001:db8::10] SIP/2.0\r\n"
    b"To: sip:user@example.com\r\n"
    b"From: sip:user@example.com;tag=81x2\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3\r\n"
    b"Call-ID: SSG95523997077@hlau_4100\r\n"
    b"Max-Forwards: 70\r\n"
    b'Contact: "Caller" <sip:caller@[2001:db8::9:1]>\r\n'
    b"CSeq: 921 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


@pytest.mark.parametrize(
    ("data", "received", "branch"),
    [
        (WITH_DELIM, "[2001:db8::9:255]", "z9hG4bKas3-111"),
        (NO_DELIM, "2001:db8::9:255", "z9hG4bKas3"),
    ],
    ids=["with-delim", "no-delim"],
)
def test_received_ipv6_with_or_without_brackets_is_valid(
    data: bytes, received: str, branch: str
) -> None:
    request = read_message(data)
    assert isinstance(request, Request)
    (via,) = request.vias
    assert (via.host, via.received, via.branch) == ("[2001:db8::9:1]", received, branch)
    # The value goes back out as it came in.
    assert str(via) == request.headers.get("Via")


@pytest.mark.parametrize(
    "value",
    [
        # Only an address may go unbracketed, and only in received (RFC 3261 §25.1:
        # maddr is a host, so an IPv6 maddr keeps its brackets).
        "SIP/2.0/UDP [2001:db8::9:1];received=2001:zz::1",
        "SIP/2.0/UDP [2001:db8::9:1];received=2001:db8:::1",
        "SIP/2.0/UDP [2001:db8::9:1];maddr=2001:db8::1",
        "SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::1:",
    ],
    ids=["not-hex", "three-colons", "maddr", "trailing-colon"],
)
def test_unbracketed_values_that_are_not_an_ipv6_received_stay_malformed(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        parse_via(value)


def test_received_ipv6_among_other_params_and_vias() -> None:
    (first, second) = parse_via(
        "SIP/2.0/TCP [2001:db8::1]:5070;rport=5071;received=2001:db8::2 , "
        "SIP/2.0/UDP 192.0.2.1;received=192.0.2.9;branch=z9hG4bKx"
    )
    assert (first.port, first.rport, first.received) == (5070, 5071, "2001:db8::2")
    assert (second.received, second.branch) == ("192.0.2.9", "z9hG4bKx")
