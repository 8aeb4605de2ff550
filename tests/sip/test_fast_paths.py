"""The fast acceptance checks and builders agree with the general parsers.

The receive boundary checks Via, From and To with one pattern each and builds the
parsed values on first access, falling back to the general parsers for anything
unusual. Rule: whatever a fast pattern accepts, the general parser accepts too, and
builds the same value.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.sip import RemoteProtocolError, grammar, headers, parse_message
from tollguard.sip.errors import LocalProtocolError
from tollguard.sip.headers import parse_name_addr, parse_via

_token = st.text("abcXYZ019-.!%*_+`'~", min_size=1, max_size=8)
_host = st.one_of(
    st.sampled_from(["example.com", "gw1.carrier.net", "a", "x-1.y.", "9x.com", "-bad"]),
    st.tuples(*(st.integers(0, 999) for _ in range(4))).map(lambda t: ".".join(map(str, t))),
    st.just("[::1]"),
)
_port = st.one_of(st.none(), st.integers(0, 99999).map(str), st.just("065535"))
_uri_param = st.tuples(_token, st.one_of(st.none(), _token))
_display = st.one_of(
    st.none(),
    st.text('ab "\\<>,;', max_size=6).map(lambda t: f'"{t}"'),
    st.lists(_token, min_size=1, max_size=3).map(" ".join),
)
_header_param = st.tuples(
    st.sampled_from([";", " ;", "; ", ";;"]),
    _token,
    st.one_of(st.none(), _token, st.just('"quoted v"'), st.just("[::1]"), st.just("")),
)


def _params(items: list[tuple[str, str | None]]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in items)


def _header_params(items: list[tuple[str, str, str | None]]) -> str:
    return "".join(
        f"{semi}{name}" if value is None else f"{semi}{name}={value}" for semi, name, value in items
    )


@st.composite
def name_addrs(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip", "sips", "SIP", "tel"]))
    user = draw(st.one_of(st.none(), _token, st.just("a%20b"), st.just("+4420;x=1")))
    host = draw(_host)
    port = draw(_port)
    uri = f"{scheme}:{'' if user is None else user + '@'}{host}"
    uri += "" if port is None else f":{port}"
    uri += _params(draw(st.lists(_uri_param, max_size=2)))
    display = draw(_display)
    space = draw(st.sampled_from(["", " ", "\t"]))
    prefix = "" if display is None else f"{display}{space}"
    trailer = draw(st.sampled_from(["", " ", "x"]))
    return f"{prefix}<{uri}>{_header_params(draw(st.lists(_header_param, max_size=3)))}{trailer}"


@st.composite
def vias(draw: st.DrawFn) -> str:
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS", "SCTP", "udp", "XYZ"]))
    version = draw(st.sampled_from(["SIP/2.0", "SIP/2.1", "sip/2.0"]))
    host = draw(_host)
    port = draw(_port)
    sent_by = host if port is None else f"{host}:{port}"
    params = _header_params(draw(st.lists(_header_param, max_size=3)))
    trailer = draw(st.sampled_from(["", " ", ",", ", SIP/2.0/UDP h"]))
    return f"{version}/{transport} {sent_by}{params}{trailer}"


def _general_name_addr(value: str) -> object:
    # A leading space keeps the value off the fast path; the parser strips it.
    return headers._parse_name_addr(" " + value)


def _general_via(value: str) -> object:
    return headers._parse_via(" " + value)


@given(name_addrs())
def test_fast_name_addr_check_accepts_only_what_parses(value: str) -> None:
    fast = grammar.FAST_NAME_ADDR_RE.fullmatch(value) is not None
    try:
        general = _general_name_addr(value)
    except LocalProtocolError:
        assert not fast, value
        return
    if fast:
        headers._NAME_ADDR_MEMO.clear()
        assert parse_name_addr(value) == general


@given(vias())
def test_fast_via_check_accepts_only_what_parses(value: str) -> None:
    fast = grammar.FAST_VIA_RE.fullmatch(value) is not None
    try:
        general = _general_via(value)
    except LocalProtocolError:
        assert not fast, value
        return
    if fast:
        headers._VIA_MEMO.clear()
        assert parse_via(value) == general


@given(st.text('ab<>:@;="\\ .19sip', max_size=30))
def test_fast_checks_on_arbitrary_text(value: str) -> None:
    for pattern, general in (
        (grammar.FAST_NAME_ADDR_RE, _general_name_addr),
        (grammar.FAST_VIA_RE, _general_via),
    ):
        if pattern.fullmatch(value) is not None:
            general(value)  # must not raise


@pytest.mark.parametrize(
    ("value", "display", "tag"),
    [
        ('"Alice" <sip:alice@example.com:5060>;tag=1928', "Alice", "1928"),
        ("Bob  Smith <sip:bob@10.0.0.1>;tag=x;lr", "Bob  Smith", "x"),
        ("<sips:+4420@gw.example.net;user=phone>", None, None),
        ('"" <sip:h.example>;tag=a', "", "a"),
    ],
    ids=["quoted", "tokens", "bare", "empty-quoted"],
)
def test_fast_built_name_addr(value: str, display: str | None, tag: str | None) -> None:
    assert grammar.FAST_NAME_ADDR_PARTS_RE.fullmatch(value) is not None
    address = parse_name_addr(value)
    assert address.display_name == display
    assert address.tag == tag
    assert address == _general_name_addr(value)


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 10.0.0.1:65536;branch=z9hG4bK1",
        "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1 ;",
        "SIP/2.0/UDP 10.0.0.1;branch=",
        "SIP/2.0/UDP -host;branch=z9hG4bK1",
    ],
    ids=["port-out-of-range", "dangling-semicolon", "empty-value", "bad-host"],
)
def test_malformed_via_is_not_fast_and_fails(value: str) -> None:
    assert grammar.FAST_VIA_RE.fullmatch(value) is None
    with pytest.raises(LocalProtocolError):
        parse_via(value)


def _request(*lines: str) -> bytes:
    head = [
        "OPTIONS sip:gw.example.net SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKmemo",
        *lines,
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("first", "second", "then"),
    [
        ("From: <sip:a@example.com>;tag=1", "From: <<broken", "From: <<broken"),
        ("To: <sip:b@example.com>", "To: <<broken", "To: <<broken"),
        ("Call-ID: good@example", "Call-ID: bad id@x", "Call-ID: bad id@x"),
    ],
    ids=["from", "to", "call-id"],
)
def test_a_field_seen_unchecked_is_checked_when_it_comes_first(
    first: str, second: str, then: str
) -> None:
    # The parser remembers header lines it found valid. A repeated field is not checked
    # (validate_request refuses the repetition), so it must not be remembered as valid.
    others = [
        line
        for line in ("From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>", "Call-ID: c@x")
        if line.split(":")[0] != first.split(":", maxsplit=1)[0]
    ]
    parse_message(_request(first, second, *others))
    with pytest.raises(RemoteProtocolError):
        parse_message(_request(then, *others))


def test_repeated_content_length_is_refused_even_when_remembered() -> None:
    lines = ("From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>", "Call-ID: cl@x")
    parse_message(_request(*lines))  # every line now remembered
    with pytest.raises(RemoteProtocolError, match="more than one Content-Length"):
        parse_message(_request(*lines, "Content-Length: 0"))


def test_remembered_lines_give_the_same_message() -> None:
    data = _request("From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>", "Call-ID: same@x")
    first, second = parse_message(data), parse_message(data)
    assert first == second
    assert (second.call_id, second.cseq.seq, second.max_forwards) == ("same@x", 1, None)
    assert second.headers.get("Content-Length") == "0"
