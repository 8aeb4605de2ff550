"""Request/Response values, accessors, serialization and make_response."""

from __future__ import annotations

import dataclasses

import pytest

from tollguard.sip import (
    CSeq,
    Headers,
    LocalProtocolError,
    NameAddr,
    Request,
    Response,
    SipUri,
    StatusCode,
    make_response,
    parse_message,
    parse_uri,
    reason_phrase,
    response_headers,
)

INVITE_HEADERS = Headers(
    [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"),
        ("v", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bK0"),
        ("Max-Forwards", "70"),
        ("From", '"Alice" <sip:alice@example.com>;tag=a1'),
        ("To", "<sip:bob@example.net>"),
        ("Call-ID", "c1@192.0.2.1"),
        ("CSeq", "7 INVITE"),
        ("Timestamp", "54"),
        ("l", "999"),
        ("Content-Type", "application/sdp"),
    ]
)


def _invite(body: bytes = b"v=0\r\n") -> Request:
    return Request("INVITE", parse_uri("sip:bob@example.net"), INVITE_HEADERS, body)


def test_accessors_on_a_built_request() -> None:
    request = _invite()
    assert request.call_id == "c1@192.0.2.1"
    assert request.cseq == CSeq(7, "INVITE")
    assert request.from_.tag == "a1"
    assert request.from_.display_name == "Alice"
    assert request.to == NameAddr(None, SipUri("sip", "bob", None, "example.net"))
    assert [via.transport for via in request.vias] == ["UDP", "TCP"]
    assert request.top_via.branch == "z9hG4bK1"
    assert request.max_forwards == 70
    assert request.content_type == "application/sdp"
    assert request.uri_scheme == "sip"


def test_accessors_raise_on_missing_headers() -> None:
    request = Request("OPTIONS", parse_uri("sip:a@b"), Headers())
    for name, header in [("call_id", "Call-ID"), ("cseq", "CSeq"), ("from_", "From"), ("to", "To")]:
        with pytest.raises(LocalProtocolError) as caught:
            getattr(request, name)
        assert caught.value.message == f"missing {header} header"
    assert request.vias == ()
    with pytest.raises(LocalProtocolError, match="missing Via header"):
        _ = request.top_via
    assert request.max_forwards is None
    assert request.content_type is None


def test_to_bytes_rewrites_content_length_in_place() -> None:
    data = _invite().to_bytes()
    assert data.startswith(b"INVITE sip:bob@example.net SIP/2.0\r\nVia: ")
    assert b"\r\nl: 5\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n" in data
    assert data.endswith(b"\r\n\r\nv=0\r\n")


def test_to_bytes_adds_missing_content_length_and_drops_duplicates() -> None:
    headers = Headers([("To", "<sip:a@b>"), ("Content-Length", "1"), ("Content-Length", "2")])
    request = Request("OPTIONS", parse_uri("sip:a@b"), headers)
    assert (
        request.to_bytes()
        == b"OPTIONS sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n"
    )
    bare = Response(200, "OK", Headers([("To", "<sip:a@b>")]))
    assert bare.to_bytes() == b"SIP/2.0 200 OK\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n"


def test_serialized_message_parses_back_equal() -> None:
    request = _invite()
    parsed = parse_message(request.to_bytes())
    assert isinstance(parsed, Request)
    assert parsed.headers.remove("l") == request.headers.remove("l")
    assert (parsed.method, parsed.uri, parsed.body) == (request.method, request.uri, request.body)
    assert parsed.from_ == request.from_
    assert parsed.vias == request.vias


def test_replace_resets_cached_accessors() -> None:
    request = _invite()
    assert request.call_id == "c1@192.0.2.1"
    changed = request.with_headers(request.headers.replace("Call-ID", "other@x"))
    assert changed.call_id == "other@x"
    replaced = dataclasses.replace(request, headers=request.headers.replace("i", "third@x"))
    assert replaced.call_id == "third@x"
    assert request.call_id == "c1@192.0.2.1"
    assert request == _invite()
    assert hash(request) == hash(_invite())


def test_messages_are_frozen() -> None:
    request = _invite()
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.method = "BYE"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Request("IN VITE", parse_uri("sip:a@b"), Headers()), "invalid method: 'IN VITE'"),
        (
            lambda: Request("INVITE", parse_uri("sip:a@b?x=y"), Headers()),
            "Request-URI carries URI headers",
        ),
        (lambda: Response(99, "x", Headers()), "status code out of range: 99"),
        (lambda: Response(700, "x", Headers()), "status code out of range: 700"),
        (lambda: Response(200, "O\r\nK", Headers()), "CR or LF in a reason phrase"),
    ],
    ids=["method", "ruri-headers", "status-low", "status-high", "reason-crlf"],
)
def test_constructors_validate(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(LocalProtocolError) as caught:
        build()
    assert caught.value.message == message


def test_make_response_copies_rfc3261_8_2_6_1_headers() -> None:
    response = make_response(
        _invite(), 180, to_tag="b2", headers=[("Contact", "<sip:bob@192.0.2.9>")]
    )
    assert (response.status, response.reason) == (180, "Ringing")
    assert list(response.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"),
        ("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bK0"),
        ("From", '"Alice" <sip:alice@example.com>;tag=a1'),
        ("To", "<sip:bob@example.net>;tag=b2"),
        ("Call-ID", "c1@192.0.2.1"),
        ("CSeq", "7 INVITE"),
        ("Contact", "<sip:bob@192.0.2.9>"),
    ]
    assert response.to.tag == "b2"
    assert response.is_provisional
    assert not response.is_final


def test_make_response_keeps_an_existing_to_tag() -> None:
    request = _invite()
    request = request.with_headers(request.headers.replace("To", "<sip:bob@example.net>;tag=x"))
    response = make_response(request, 200, "Fine", to_tag="y", body=b"v=0\r\n")
    assert response.to.tag == "x"
    assert response.reason == "Fine"
    assert response.body == b"v=0\r\n"
    assert response.is_final


def test_trying_copies_timestamp_and_gets_no_tag() -> None:
    response = make_response(_invite(), 100, to_tag="b2")
    assert response.headers.get("Timestamp") == "54"
    assert response.to.tag is None
    ok = make_response(_invite(), 200)
    assert ok.headers.get("Timestamp") is None


def test_response_headers_on_raw_fields() -> None:
    raw = Headers([("v", "SIP/2.0/UDP h"), ("t", "Broken, To <sip:x@y>"), ("i", "c")])
    headers = response_headers(raw, 400, "tag1")
    assert list(headers) == [
        ("Via", "SIP/2.0/UDP h"),
        ("To", "Broken, To <sip:x@y>"),
        ("Call-ID", "c"),
    ]
    with pytest.raises(LocalProtocolError, match="invalid tag"):
        response_headers(Headers([("To", "<sip:x@y>")]), 200, "bad tag")


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (200, "OK"),
        (481, "Call/Transaction Does Not Exist"),
        (416, "Unsupported URI Scheme"),
        (499, "Client Error"),
        (299, "Success"),
        (999, "Unknown"),
    ],
    ids=["200", "481", "416", "unknown-4xx", "unknown-2xx", "out-of-range"],
)
def test_reason_phrase(code: int, phrase: str) -> None:
    assert reason_phrase(code) == phrase


def test_status_code_enum() -> None:
    assert int(StatusCode.VERSION_NOT_SUPPORTED) == 505
    assert StatusCode(486).phrase == "Busy Here"
    assert StatusCode.SERVER_TIMEOUT.phrase == "Server Time-out"
