"""Header registry, the Headers multimap and parsed header values."""

from __future__ import annotations

import pytest

from tollguard.sip import (
    CSeq,
    Headers,
    LocalProtocolError,
    NameAddr,
    ReasonValue,
    SipUri,
    Via,
    canonical_name,
    header_key,
    header_spec,
    parse_contacts,
    parse_content_length,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_reason,
    parse_uri,
    parse_via,
    split_list,
)

SAMPLE = Headers(
    [
        ("v", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com"),
        ("Via", "SIP/2.0/UDP c.example.com;branch=z9hG4bK3"),
        ("From", '"Smith, J" <sip:j@example.com>;tag=1'),
        ("t", "<sip:k@example.com>"),
        ("i", "abc@host"),
        ("X-Custom", "one, two"),
        ("m", '"A, B" <sip:a@example.com;x=1,2>, <sip:b@example.com>'),
        ("CSeq", "1 INVITE"),
    ]
)


@pytest.mark.parametrize(
    ("name", "key", "canonical"),
    [
        ("v", "via", "Via"),
        ("VIA", "via", "Via"),
        ("i", "call-id", "Call-ID"),
        ("call-id", "call-id", "Call-ID"),
        ("l", "content-length", "Content-Length"),
        ("k", "supported", "Supported"),
        ("o", "event", "Event"),
        ("X-Unknown", "x-unknown", "X-Unknown"),
    ],
    ids=[
        "compact-via",
        "upper-via",
        "compact-call-id",
        "lower-call-id",
        "compact-l",
        "compact-k",
        "compact-o",
        "unknown",
    ],
)
def test_registry(name: str, key: str, canonical: str) -> None:
    assert header_key(name) == key
    assert canonical_name(name) == canonical


def test_header_spec_knows_lists() -> None:
    via = header_spec("v")
    assert via is not None
    assert (via.name, via.compact, via.is_list) == ("Via", "v", True)
    call_id = header_spec("Call-ID")
    assert call_id is not None
    assert not call_id.is_list
    assert header_spec("X-Nothing") is None


def test_lookups_ignore_case_and_compact_forms() -> None:
    assert SAMPLE.get("Call-ID") == "abc@host"
    assert SAMPLE.get("to") == "<sip:k@example.com>"
    assert SAMPLE.get("T") == "<sip:k@example.com>"
    assert SAMPLE.get("Route") is None
    assert "CALL-ID" in SAMPLE
    assert "Route" not in SAMPLE
    assert SAMPLE.count("via") == 2
    assert len(SAMPLE) == 8


def test_get_all_splits_list_headers_only() -> None:
    assert SAMPLE.get_all("Via") == (
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
        "SIP/2.0/TCP b.example.com",
        "SIP/2.0/UDP c.example.com;branch=z9hG4bK3",
    )
    assert SAMPLE.get_all("Contact") == ('"A, B" <sip:a@example.com;x=1,2>', "<sip:b@example.com>")
    assert SAMPLE.get_all("X-Custom") == ("one, two",)
    assert SAMPLE.get_all("From") == ('"Smith, J" <sip:j@example.com>;tag=1',)
    assert SAMPLE.values("Via")[0].startswith("SIP/2.0/UDP a")


def test_iteration_keeps_names_as_given() -> None:
    assert [name for name, _ in SAMPLE][:4] == ["v", "Via", "From", "t"]


def test_builders_return_new_instances() -> None:
    base = Headers([("Via", "SIP/2.0/UDP a"), ("To", "<sip:a@b>"), ("Via", "SIP/2.0/UDP b")])
    assert list(base.append("Route", "<sip:r>"))[-1] == ("Route", "<sip:r>")
    assert next(iter(base.prepend("v", "SIP/2.0/UDP z"))) == ("v", "SIP/2.0/UDP z")
    assert list(base.replace("via", "SIP/2.0/UDP c")) == [
        ("via", "SIP/2.0/UDP c"),
        ("To", "<sip:a@b>"),
    ]
    assert list(base.replace("Max-Forwards", "70"))[-1] == ("Max-Forwards", "70")
    assert list(base.remove("V")) == [("To", "<sip:a@b>")]
    assert base.count("Via") == 2
    assert base == Headers(list(base))
    assert hash(base) == hash(Headers(list(base)))
    assert base != base.append("X", "y")


def test_headers_are_immutable() -> None:
    with pytest.raises(AttributeError):
        SAMPLE._items = ()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Bad Name", "x", "invalid header name: 'Bad Name'"),
        ("", "x", "invalid header name: ''"),
        ("X-Inject", "a\r\nVia: evil", "CR or LF in the value of header 'X-Inject'"),
        ("X-Inject", "a\nb", "CR or LF in the value of header 'X-Inject'"),
    ],
    ids=["space-name", "empty-name", "crlf-injection", "bare-lf"],
)
def test_header_fields_are_checked(name: str, value: str, message: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        Headers([(name, value)])
    assert caught.value.message == message
    with pytest.raises(LocalProtocolError):
        Headers().append(name, value)


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ('"x,y" <sip:a>, <sip:b;p=1,2>', ['"x,y" <sip:a>', "<sip:b;p=1,2>"]),
        ('"q\\",", b', ['"q\\","', "b"]),
        ("a,,b,", ["a", "b"]),
        ("", []),
    ],
    ids=["plain", "quotes-and-angles", "escaped-quote", "empty-items", "empty"],
)
def test_split_list(value: str, items: list[str]) -> None:
    assert split_list(value) == items


def test_parse_via_elements() -> None:
    vias = parse_via(
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK77;rport=5070;received=198.51.100.1 ,"
        " SIP / 2.0 / tls [2001:db8::1];branch=z9hG4bK78;rport"
    )
    assert vias[0] == Via(
        "UDP",
        "192.0.2.1",
        5060,
        (("branch", "z9hG4bK77"), ("rport", "5070"), ("received", "198.51.100.1")),
    )
    assert (vias[0].branch, vias[0].received, vias[0].rport, vias[0].has_rport) == (
        "z9hG4bK77",
        "198.51.100.1",
        5070,
        True,
    )
    assert vias[1].transport == "tls"
    assert vias[1].host == "[2001:db8::1]"
    assert (vias[1].rport, vias[1].has_rport) == (None, True)
    assert vias[1].sent_by == "[2001:db8::1]"
    assert str(vias[0]) == (
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK77;rport=5070;received=198.51.100.1"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("SIP/2.0/UDP", "malformed Via: 'SIP/2.0/UDP'"),
        ("SIP/2.0 host", "malformed Via: 'SIP/2.0 host'"),
        ("SIP/2.0/UDP host;;", "unexpected ';;' in Via: 'SIP/2.0/UDP host;;'"),
        ("SIP/2.0/UDP host;branch=a b", "unexpected 'b' in Via: 'SIP/2.0/UDP host;branch=a b'"),
        ("SIP/2.0/UDP host,", "malformed Via: 'SIP/2.0/UDP host,'"),
        ("SIP/2.0/UDP host:99999", "Via port out of range: 'SIP/2.0/UDP host:99999'"),
        ("SIP/2.0/UDP [1::2::3]", "invalid Via host: '[1::2::3]'"),
    ],
    ids=[
        "no-sent-by",
        "no-transport",
        "empty-params",
        "space-in-value",
        "trailing-comma",
        "port-range",
        "bad-ipv6",
    ],
)
def test_parse_via_errors(value: str, message: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_via(value)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("value", "display_name", "uri", "params"),
    [
        (
            '"Alice" <sip:alice@example.com>;tag=88',
            "Alice",
            "sip:alice@example.com",
            (("tag", "88"),),
        ),
        ("Bob Smith <sip:bob@example.com>", "Bob Smith", "sip:bob@example.com", ()),
        ("<sip:c@example.com;lr>;x", None, "sip:c@example.com;lr", (("x", None),)),
        ("sip:d@example.com ; tag = 9", None, "sip:d@example.com", (("tag", "9"),)),
        ('"q \\"x\\"" <tel:+1234>;p="a b"', 'q "x"', "tel:+1234", (("p", '"a b"'),)),
        ("<urn:service:sos>", None, "urn:service:sos", ()),
    ],
    ids=["quoted", "tokens", "angle-uri-params", "addr-spec-lws", "escaped-quotes", "urn"],
)
def test_parse_name_addr(
    value: str, display_name: str | None, uri: str, params: tuple[object, ...]
) -> None:
    address = parse_name_addr(value)
    assert address.display_name == display_name
    assert str(address.uri) == uri
    assert address.params == params


def test_name_addr_tag_and_str() -> None:
    address = parse_name_addr("sip:a@example.com;TAG=xy")
    assert address.tag == "xy"
    assert str(address) == "<sip:a@example.com>;TAG=xy"
    tagged = parse_name_addr("<sip:a@example.com>").with_tag("t1")
    assert tagged.tag == "t1"
    named = NameAddr('Dr "X"\\', SipUri("sip", "x", None, "example.com"))
    assert str(named) == '"Dr \\"X\\"\\\\" <sip:x@example.com>'
    assert parse_name_addr(str(named)) == named


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"open <sip:a@b>', "unterminated quoted display name: '\"open <sip:a@b>'"),
        ('"x" sip:a@b', "quoted display name not followed by '<': '\"x\" sip:a@b'"),
        ("Bell, A <sip:a@b>", "unquoted display name is not tokens: 'Bell, A <sip:a@b>'"),
        ("<sip:a@b", "missing '>': '<sip:a@b'"),
        ("< sip:a@b >", "invalid URI scheme: ' sip'"),
        ("sip:a@b?x=y", "URI with '?' or ',' must be enclosed in <>: 'sip:a@b?x=y'"),
        ("<sip:a@b>;;", "malformed header parameters: '<sip:a@b>;;'"),
        ("<sip:a@b> x", "malformed header parameters: '<sip:a@b> x'"),
        ("", "URI has no scheme: ''"),
    ],
    ids=[
        "open-quote",
        "quoted-no-angle",
        "comma-display",
        "no-close",
        "spaces-in-angle",
        "addr-spec-headers",
        "empty-param",
        "junk-after",
        "empty",
    ],
)
def test_parse_name_addr_errors(value: str, message: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_name_addr(value)
    assert caught.value.message == message


def test_parse_contacts() -> None:
    assert parse_contacts(" * ") == "*"
    contacts = parse_contacts('<sip:a@example.com>;expires=60, "B" <sip:b@example.com>;q=0.5')
    assert contacts != "*"
    assert [c.param("expires") for c in contacts] == ["60", None]
    assert contacts[1].param("q") == "0.5"
    with pytest.raises(LocalProtocolError, match="empty Contact"):
        parse_contacts(" , ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1 INVITE", CSeq(1, "INVITE")),
        ("0009  ACK", CSeq(9, "ACK")),
        ("2147483647 BYE", CSeq(2**31 - 1, "BYE")),
    ],
    ids=["simple", "leading-zeros", "max"],
)
def test_parse_cseq(value: str, expected: CSeq) -> None:
    assert parse_cseq(value) == expected
    assert str(parse_cseq(str(expected))) == str(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("INVITE", "malformed CSeq: 'INVITE'"),
        ("1INVITE", "malformed CSeq: '1INVITE'"),
        ("-1 INVITE", "malformed CSeq: '-1 INVITE'"),
        ("2147483648 INVITE", "CSeq number out of range: 2147483648"),
        ("36893488147419103232 REGISTER", "CSeq number out of range: 36893488147419103232"),
        ("1 IN VITE", "malformed CSeq: '1 IN VITE'"),
    ],
    ids=["no-number", "no-space", "negative", "2-to-31", "huge", "two-methods"],
)
def test_parse_cseq_errors(value: str, message: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_cseq(value)
    assert caught.value.message == message


def test_cseq_constructor_validates() -> None:
    with pytest.raises(LocalProtocolError, match="CSeq number out of range"):
        CSeq(2**31, "INVITE")
    with pytest.raises(LocalProtocolError, match="invalid CSeq method"):
        CSeq(1, "IN VITE")


@pytest.mark.parametrize(
    ("function", "value", "result"),
    [
        (parse_max_forwards, "70", 70),
        (parse_max_forwards, " 0068 ", 68),
        (parse_content_length, "0", 0),
        (parse_content_length, "553", 553),
    ],
    ids=["mf", "mf-zeros", "cl-zero", "cl"],
)
def test_numeric_headers(function: object, value: str, result: int) -> None:
    assert callable(function)
    assert function(value) == result


@pytest.mark.parametrize(
    ("function", "value", "message"),
    [
        (parse_max_forwards, "-1", "malformed Max-Forwards: '-1'"),
        (parse_max_forwards, "1" * 11, "Max-Forwards out of range: 11111111111"),
        (parse_content_length, "-999", "malformed Content-Length: '-999'"),
        (parse_content_length, "\uff11\uff12", "malformed Content-Length: '\uff11\uff12'"),
        (parse_content_length, "99999999999", "Content-Length out of range: 99999999999"),
    ],
    ids=["mf-negative", "mf-huge", "cl-negative", "cl-fullwidth-digits", "cl-huge"],
)
def test_numeric_header_errors(function: object, value: str, message: str) -> None:
    assert callable(function)
    with pytest.raises(LocalProtocolError) as caught:
        function(value)
    assert caught.value.message == message


def test_via_constructor_validates() -> None:
    with pytest.raises(LocalProtocolError, match="invalid Via transport"):
        Via("U DP", "example.com")
    with pytest.raises(LocalProtocolError, match="invalid Via host"):
        Via("UDP", "exa mple")
    with pytest.raises(LocalProtocolError, match="Via port out of range"):
        Via("UDP", "example.com", 70000)
    assert str(Via("TCP", "example.com", None, (("branch", "z9hG4bKx"),))) == (
        "SIP/2.0/TCP example.com;branch=z9hG4bKx"
    )


def test_name_addr_rejects_crlf_display_name() -> None:
    with pytest.raises(LocalProtocolError, match="CR or LF in a display name"):
        NameAddr("a\r\nb", parse_uri("sip:a@b"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            'Q.850;cause=16;text="Normal call clearing"',
            [("Q.850", 16, "Normal call clearing")],
        ),
        (
            'SIP ; cause = 200 ; text="Call completed elsewhere"',
            [("SIP", 200, "Call completed elsewhere")],
        ),
        ("q.850;CAUSE=31", [("q.850", 31, None)]),
        (
            'SIP;cause=580;text="Precondition \\"x\\" failed"',
            [("SIP", 580, 'Precondition "x" failed')],
        ),
        ("Q.850;cause=17, SIP;cause=486", [("Q.850", 17, None), ("SIP", 486, None)]),
        ("preemption;cause=1;x-extension=yes", [("preemption", 1, None)]),
        ("SIP", [("SIP", None, None)]),
    ],
    ids=["q850", "sip-with-spaces", "any-case", "escaped-text", "two-values", "extension", "bare"],
)
def test_parse_reason(value: str, expected: list[tuple[str, int | None, str | None]]) -> None:
    parsed = parse_reason(value)
    got = [(r.protocol, r.cause, r.text) for r in parsed]
    assert got == expected
    assert all(isinstance(r, ReasonValue) for r in parsed)
    assert parsed[0].is_q850 == (parsed[0].protocol.upper() == "Q.850")


def test_reason_value_prints_as_written() -> None:
    (reason,) = parse_reason('Q.850;cause=16;text="Normal"')
    assert str(reason) == 'Q.850;cause=16;text="Normal"'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty Reason"),
        ("Q.850;cause=sixteen", "not a number"),
        ("Q.850;cause=123456", "out of range"),
        ("Q.850;text=Normal", "not a quoted string"),
        ("Q.850 cause=16", "malformed Reason"),
        ('"quoted";cause=1', "malformed Reason"),
    ],
)
def test_parse_reason_errors(value: str, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        parse_reason(value)
