"""The receive boundary: parse_message, validate_request, read_message, StreamFramer."""

from __future__ import annotations

import pytest

from tollguard.sip import (
    Headers,
    MessageDropped,
    RemoteProtocolError,
    Request,
    Response,
    StreamFramer,
    error_response,
    parse_message,
    read_message,
    validate_request,
    validate_response,
)

OPTIONS = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: opt1@192.0.2.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

OK_200 = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "To: <sip:bob@example.com>;tag=2\r\n"
    "Call-ID: opt1@192.0.2.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def _edit(text: str, old: str, new: str) -> bytes:
    assert old in text
    return text.replace(old, new, 1).encode()


def test_parse_request_and_response() -> None:
    request = parse_message(OPTIONS.encode())
    assert isinstance(request, Request)
    assert (request.method, str(request.uri), request.call_id) == (
        "OPTIONS",
        "sip:bob@example.com",
        "opt1@192.0.2.1",
    )
    response = parse_message(OK_200.encode())
    assert isinstance(response, Response)
    assert (response.status, response.reason, response.to.tag) == (200, "OK", "2")


def test_parsed_message_serializes_byte_exact() -> None:
    assert parse_message(OPTIONS.encode()).to_bytes() == OPTIONS.encode()
    assert parse_message(OK_200.encode()).to_bytes() == OK_200.encode()


def test_leading_crlf_is_ignored() -> None:
    assert isinstance(parse_message(b"\r\n\r\n" + OPTIONS.encode()), Request)


def test_body_without_content_length_runs_to_the_end() -> None:
    data = _edit(OPTIONS, "Content-Length: 0\r\n", "Content-Type: text/plain\r\n") + b"hello"
    assert parse_message(data).body == b"hello"


def test_octets_past_content_length_are_ignored() -> None:
    data = _edit(OPTIONS, "Content-Length: 0", "Content-Length: 2\r\nContent-Type: text/plain")
    assert parse_message(data + b"hi there").body == b"hi"


def test_header_section_without_empty_line() -> None:
    data = OPTIONS.encode()[:-2]
    assert parse_message(data).body == b""


def test_non_utf8_octets_survive_a_round_trip() -> None:
    data = _edit(OPTIONS, "Max-Forwards: 70\r\n", "Subject: cafe\r\nMax-Forwards: 70\r\n")
    data = data.replace(b"cafe", b"caf\xe9")
    message = parse_message(data)
    assert message.headers.get("Subject") == "caf\udce9"
    assert message.to_bytes() == data


def test_lower_case_version_is_accepted_and_normalized() -> None:
    assert parse_message(_edit(OPTIONS, " SIP/2.0\r\n", " sip/2.0\r\n")).version == "SIP/2.0"


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (_edit(OPTIONS, " SIP/2.0\r\n", " SIP/3.0\r\n"), 505, "SIP version not supported: SIP/3.0"),
        (_edit(OPTIONS, " SIP/2.0\r\n", " SIP/2\r\n"), 400, "malformed SIP version: 'SIP/2'"),
        (
            _edit(OPTIONS, "Max-Forwards: 70", "Max-Forwards 70"),
            400,
            "header line without ':': 'Max-Forwards 70'",
        ),
        (
            _edit(OPTIONS, "Max-Forwards: 70", "Max Forwards: 70"),
            400,
            "invalid header name: 'Max Forwards'",
        ),
        (
            _edit(OPTIONS, "Max-Forwards: 70", "Max-Forwards: seventy"),
            400,
            "malformed Max-Forwards: 'seventy'",
        ),
        (
            _edit(OPTIONS, "Call-ID: opt1@192.0.2.1", "Call-ID: a b"),
            400,
            "malformed Call-ID: 'a b'",
        ),
        (
            _edit(OPTIONS, "sip:bob@example.com SIP", "sip:bob@example.com?x=y SIP"),
            400,
            "Request-URI carries URI headers",
        ),
        (
            _edit(OPTIONS, "OPTIONS sip:", "OPTIONS  sip:"),
            400,
            "malformed request line: 'OPTIONS  sip:bob@example.com SIP/2.0'",
        ),
        (
            _edit(OPTIONS, "Content-Length: 0", "Content-Length: 10"),
            400,
            "Content-Length 10 exceeds the 0 octets received",
        ),
        (
            _edit(OPTIONS, "Content-Length: 0", "Content-Length: 0\r\nl: 0"),
            400,
            "more than one Content-Length header",
        ),
        (
            _edit(OPTIONS, "CSeq: 1 OPTIONS", "CSeq: 4294967296 OPTIONS"),
            400,
            "CSeq number out of range: 4294967296",
        ),
        (OPTIONS.encode()[:-4], 400, "header section not ended by an empty line"),
    ],
    ids=[
        "version-505",
        "version-malformed",
        "no-colon",
        "bad-name",
        "max-forwards",
        "call-id",
        "ruri-headers",
        "double-space",
        "short-body",
        "two-lengths",
        "cseq-range",
        "no-end",
    ],
)
def test_broken_requests_are_answered(data: bytes, status: int, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_message(data)
    assert (caught.value.status_code, caught.value.message) == (status, message)
    assert caught.value.headers is not None
    assert caught.value.headers.get("Via") == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"\x00\xff garbage",
        b"hello world\r\n\r\n",
        OPTIONS.replace("\r\n", "\n").encode(),
        _edit(
            OPTIONS, "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc", "Via: nonsense"
        ).replace(b"Max-Forwards: 70", b"Max-Forwards: x"),
        _edit(OPTIONS, "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n", "").replace(
            b"CSeq: 1", b"CSeq: x"
        ),
        _edit(OPTIONS, "OPTIONS sip", "ACK sip").replace(b"CSeq: 1 OPTIONS", b"CSeq: x"),
        _edit(OK_200, "SIP/2.0 200 OK", "SIP/2.0 2000 OK"),
        _edit(OK_200, "SIP/2.0 200 OK", "SIP/3.0 200 OK"),
        _edit(OK_200, "SIP/2.0 200 OK", "SIP/2.0 200"),
        _edit(OK_200, "SIP/2.0 200 OK", "SIP/2.0 200 O\x01K"),
        _edit(OK_200, "CSeq: 1 OPTIONS", "CSeq: OPTIONS"),
    ],
    ids=[
        "empty",
        "only-crlf",
        "binary",
        "no-version",
        "lf-only",
        "bad-via",
        "no-via",
        "broken-ack",
        "status-4-digits",
        "response-version",
        "no-reason-sp",
        "control-in-reason",
        "response-cseq",
    ],
)
def test_unanswerable_messages_are_dropped(data: bytes) -> None:
    with pytest.raises(MessageDropped):
        parse_message(data)


VALIDATION_CASES = [
    (_edit(OPTIONS, "Call-ID: opt1@192.0.2.1\r\n", ""), 400, "missing Call-ID header"),
    (_edit(OPTIONS, "To: <sip:bob@example.com>\r\n", ""), 400, "missing To header"),
    (
        _edit(OPTIONS, "To: <sip:bob@example.com>", "To: <sip:bob@example.com>\r\nt: <sip:c@d>"),
        400,
        "more than one To header",
    ),
    (
        _edit(OPTIONS, "Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"),
        400,
        "more than one Max-Forwards header",
    ),
    (
        _edit(OPTIONS, "Max-Forwards: 70", "Max-Forwards: 256"),
        400,
        "Max-Forwards out of range: 256",
    ),
    (
        _edit(OPTIONS, "CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
        400,
        "CSeq method INVITE does not match the request method",
    ),
    (
        _edit(OPTIONS, "CSeq: 1 OPTIONS", "CSeq: 1 options"),
        400,
        "CSeq method options does not match the request method",
    ),
    (
        _edit(OPTIONS, "Content-Length: 0", "Contact: *\r\nContent-Length: 0"),
        400,
        "Contact '*' outside REGISTER",
    ),
    (
        _edit(OPTIONS, "Content-Length: 0", "Contact: sip:a@b?x=y\r\nContent-Length: 0"),
        400,
        "URI with '?' or ',' must be enclosed in <>: 'sip:a@b?x=y'",
    ),
    (
        _edit(
            OPTIONS, "Content-Length: 0", "Date: Sat, 13 Nov 2010 23:29:00 EST\r\nContent-Length: 0"
        ),
        400,
        "malformed Date: 'Sat, 13 Nov 2010 23:29:00 EST'",
    ),
    (
        _edit(OPTIONS, "Content-Length: 0", "Content-Length: 2") + b"hi",
        400,
        "message body without Content-Type",
    ),
    (
        _edit(OPTIONS, "sip:bob@example.com SIP", "mailto:bob@example.com SIP"),
        416,
        "unsupported Request-URI scheme: mailto",
    ),
]


@pytest.mark.parametrize(
    ("data", "status", "message"),
    VALIDATION_CASES,
    ids=[
        "no-call-id",
        "no-to",
        "two-to",
        "two-max-forwards",
        "max-forwards-range",
        "cseq-method",
        "cseq-method-case",
        "star-contact",
        "contact-headers",
        "date",
        "no-type",
        "scheme-416",
    ],
)
def test_validate_request(data: bytes, status: int, message: str) -> None:
    request = parse_message(data)
    assert isinstance(request, Request)
    with pytest.raises(RemoteProtocolError) as caught:
        validate_request(request)
    assert (caught.value.status_code, caught.value.message) == (status, message)
    with pytest.raises(RemoteProtocolError):
        read_message(data)


@pytest.mark.parametrize(
    "data",
    [
        OPTIONS.encode(),
        _edit(OPTIONS, "Max-Forwards: 70\r\n", ""),
        _edit(OPTIONS, "sip:bob@example.com SIP", "tel:+14155550123 SIP"),
        _edit(OPTIONS, "OPTIONS sip", "REGISTER sip")
        .replace(b"1 OPTIONS", b"1 REGISTER")
        .replace(b"Content-Length: 0", b"Contact: *\r\nExpires: 0\r\nContent-Length: 0"),
        _edit(
            OPTIONS, "Content-Length: 0", "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nContent-Length: 0"
        ),
    ],
    ids=["plain", "no-max-forwards", "tel-uri", "register-star", "good-date"],
)
def test_valid_requests_pass(data: bytes) -> None:
    assert isinstance(read_message(data), Request)


def test_request_without_via_is_dropped_by_validation() -> None:
    data = _edit(OPTIONS, "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n", "")
    with pytest.raises(MessageDropped, match="request without Via"):
        read_message(data)


def test_supported_schemes_are_configurable() -> None:
    data = _edit(OPTIONS, "sip:bob@example.com SIP", "tel:+14155550123 SIP")
    with pytest.raises(RemoteProtocolError) as caught:
        read_message(data, supported_schemes=frozenset({"sip", "sips"}))
    assert caught.value.status_code == 416


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n", ""),
        ("Call-ID: opt1@192.0.2.1\r\n", "Call-ID: a\r\ni: b\r\n"),
        ("From: <sip:alice@example.com>;tag=1\r\n", ""),
    ],
    ids=["no-via", "two-call-ids", "no-from"],
)
def test_unusable_responses_are_dropped(old: str, new: str) -> None:
    response = parse_message(_edit(OK_200, old, new))
    assert isinstance(response, Response)
    with pytest.raises(MessageDropped):
        validate_response(response)


def test_error_response_names_the_problem() -> None:
    data = _edit(OPTIONS, "CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
    with pytest.raises(RemoteProtocolError) as caught:
        read_message(data)
    response = error_response(caught.value, to_tag="zz")
    assert response is not None
    assert response.status == 400
    assert response.reason == "Bad Request - CSeq method INVITE does not match the request method"
    assert response.to.tag == "zz"
    assert response.call_id == "opt1@192.0.2.1"
    assert response.top_via.branch == "z9hG4bKabc"


def test_error_response_reason_is_printable_and_bounded() -> None:
    error = RemoteProtocolError(
        "bad \x00\u00e9" + "x" * 300, headers=Headers([("Via", "SIP/2.0/UDP h")])
    )
    response = error_response(error)
    assert response is not None
    assert response.reason.startswith("Bad Request - bad ??x")
    assert len(response.reason) == 100
    assert error_response(RemoteProtocolError("no headers")) is None


def test_error_response_for_416_uses_the_registered_phrase() -> None:
    error = RemoteProtocolError("scheme", 416, headers=Headers([("Via", "SIP/2.0/UDP h")]))
    response = error_response(error)
    assert response is not None
    assert (response.status, response.reason) == (416, "Unsupported URI Scheme")


# StreamFramer ---------------------------------------------------------------


def test_framer_splits_and_joins_chunks() -> None:
    stream = OPTIONS.encode() + OK_200.encode()
    framer = StreamFramer()
    messages: list[bytes] = []
    for index in range(0, len(stream), 7):
        messages.extend(framer.feed(stream[index : index + 7]))
    assert messages == [OPTIONS.encode(), OK_200.encode()]
    assert framer.buffered == 0


def test_framer_frames_bodies_by_content_length() -> None:
    message = _edit(OPTIONS, "Content-Length: 0", "Content-Length: 4\r\nContent-Type: text/plain")
    framer = StreamFramer()
    assert framer.feed(message + b"ab") == []
    assert framer.feed(b"cd" + OPTIONS.encode()[:10]) == [message + b"abcd"]
    assert framer.buffered == 10


def test_framer_counts_keepalive_pings() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n\r\n\r\n" + OPTIONS.encode() + b"\r\n") == [OPTIONS.encode()]
    assert framer.take_pings() == 2
    assert framer.take_pings() == 0
    assert framer.buffered == 0


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (
            OPTIONS.replace("Content-Length: 0\r\n", ""),
            400,
            "missing Content-Length on a stream transport",
        ),
        (
            OPTIONS.replace("Content-Length: 0", "Content-Length: -5"),
            400,
            "malformed Content-Length: '-5'",
        ),
        (
            OPTIONS.replace("Content-Length: 0", "Content-Length: 1\r\nl: 2"),
            400,
            "conflicting Content-Length headers",
        ),
        (
            OPTIONS.replace("Content-Length: 0", "Content-Length: 70000"),
            513,
            "message of 70237 octets is too large",
        ),
    ],
    ids=["missing", "negative", "conflicting", "too-large"],
)
def test_framer_refuses_bad_framing(data: str, status: int, message: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        StreamFramer().feed(data.encode())
    assert (caught.value.status_code, caught.value.message) == (status, message)


def test_framer_bounds_an_endless_header_section() -> None:
    framer = StreamFramer(max_message_size=1024)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n")
    with pytest.raises(RemoteProtocolError) as caught:
        framer.feed(b"X-Pad: " + b"a" * 1100)
    assert caught.value.status_code == 513
