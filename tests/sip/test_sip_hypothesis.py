"""Property tests: serialize -> parse round trips, and the fuzz rule of the boundary.

The fuzz rule: whatever the bytes, the receive boundary returns a message or
raises RemoteProtocolError / MessageDropped, nothing else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollguard.sip import (
    CSeq,
    Headers,
    LocalProtocolError,
    MessageDropped,
    NameAddr,
    RemoteProtocolError,
    Request,
    Response,
    SipUri,
    StreamFramer,
    TelUri,
    Via,
    parse_message,
    parse_name_addr,
    parse_reason,
    parse_uri,
    parse_via,
    read_message,
)

ROUND_TRIP = settings(max_examples=150, deadline=None)
MESSAGES = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
label = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
top_label = st.from_regex(r"[a-z]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
hostnames = st.builds(
    lambda labels, top: ".".join([*labels, top]), st.lists(label, max_size=3), top_label
)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda parts: ".".join(map(str, parts)))
ipv6 = st.ip_addresses(v=6).map(lambda address: f"[{address}]")
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.none() | st.integers(0, 65535)
# Unescaped component text: anything printable, including characters that need escaping.
component = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"),
    min_size=1,
    max_size=10,
) | st.text(ALNUM + "%@;:?&= /<>\x00", min_size=1, max_size=10)
uri_params = st.lists(st.tuples(component, st.none() | component), max_size=3).map(tuple)
uri_headers = st.lists(st.tuples(component, st.text(ALNUM + "<>@ ;", max_size=6)), max_size=2).map(
    tuple
)

sip_uris = st.builds(
    SipUri,
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | component,
    password=st.none(),
    host=hosts,
    port=ports,
    params=uri_params,
    headers=uri_headers,
)
sip_uris_with_password = st.builds(
    SipUri,
    scheme=st.just("sip"),
    user=component,
    password=component,
    host=hosts,
    port=ports,
)
tel_uris = st.builds(
    TelUri,
    number=st.from_regex(r"\+[0-9]{1,3}(-?[0-9]{1,4}){1,4}", fullmatch=True),
    params=st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9\-]{0,6}", fullmatch=True),
            st.none() | st.text(ALNUM + "-_.!~*'()[]/:&+$", min_size=1, max_size=8),
        ),
        max_size=2,
    ).map(tuple),
)

header_params = st.lists(
    st.tuples(
        tokens,
        st.none() | tokens | st.text(ALNUM + " ,;<>", max_size=8).map(lambda text: f'"{text}"'),
    ),
    max_size=3,
).map(tuple)
display_names = st.none() | st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=12
)
name_addrs = st.builds(
    NameAddr, display_name=display_names, uri=sip_uris | tel_uris, params=header_params
)
vias = st.builds(
    Via,
    transport=st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS", "SCTP"]),
    host=hosts,
    port=ports,
    params=header_params,
)
header_values = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=30
).map(lambda text: text.strip(" \t"))
extra_headers = st.lists(
    st.tuples(
        st.text(ALNUM + "-", min_size=1, max_size=10).map(lambda name: f"X-{name}"), header_values
    ),
    max_size=4,
)


@ROUND_TRIP
@given(sip_uris | sip_uris_with_password | tel_uris)
def test_uri_round_trip(uri: SipUri | TelUri) -> None:
    assert parse_uri(str(uri)) == uri


@ROUND_TRIP
@given(name_addrs)
def test_name_addr_round_trip(address: NameAddr) -> None:
    assert parse_name_addr(str(address)) == address


@ROUND_TRIP
@given(st.lists(vias, min_size=1, max_size=3))
def test_via_round_trip(elements: list[Via]) -> None:
    assert parse_via(", ".join(map(str, elements))) == tuple(elements)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(
        st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"]) | tokens
    )
    via_elements = draw(st.lists(vias, min_size=1, max_size=3))
    from_ = draw(name_addrs)
    to = draw(name_addrs)
    items = [("Via", str(via)) for via in via_elements]
    items += [
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
        (draw(st.sampled_from(["From", "f", "FROM"])), str(from_)),
        (draw(st.sampled_from(["To", "t"])), str(to)),
        (
            "Call-ID",
            draw(
                st.from_regex(
                    r"[A-Za-z0-9\-.!%*_+`'~()<>:/?{}]{1,20}(@[a-z0-9.]{1,10})?", fullmatch=True
                )
            ),
        ),
        ("CSeq", str(CSeq(draw(st.integers(0, 2**31 - 1)), method))),
    ]
    items += draw(extra_headers)
    body = draw(st.binary(max_size=200))
    if body:
        items.append(("Content-Type", "application/octet-stream"))
    items = draw(st.permutations(items))
    uri = draw(sip_uris.map(lambda uri: dataclasses.replace(uri, headers=())) | tel_uris)
    return Request(method, uri, Headers(items), body)


@MESSAGES
@given(requests())
def test_request_round_trip(request: Request) -> None:
    parsed = read_message(request.to_bytes())
    assert isinstance(parsed, Request)
    assert parsed.headers.remove("Content-Length") == request.headers
    assert (parsed.method, parsed.uri, parsed.body) == (request.method, request.uri, request.body)
    assert (parsed.from_, parsed.to, parsed.cseq) == (request.from_, request.to, request.cseq)
    assert (parsed.vias, parsed.call_id, parsed.max_forwards) == (
        request.vias,
        request.call_id,
        request.max_forwards,
    )
    assert parsed.to_bytes() == request.to_bytes()


@MESSAGES
@given(
    st.integers(100, 699),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    requests(),
)
def test_response_round_trip(status: int, reason: str, request: Request) -> None:
    response = Response(status, reason, request.headers, request.body)
    parsed = parse_message(response.to_bytes())
    assert isinstance(parsed, Response)
    assert (parsed.status, parsed.reason, parsed.body) == (status, reason, request.body)
    assert parsed.headers.remove("Content-Length") == response.headers


def _corpus() -> list[bytes]:
    for parent in Path(__file__).resolve().parents:
        directory = parent / "shared" / "testdata" / "rfc4475"
        if directory.is_dir():
            return [path.read_bytes() for path in sorted(directory.glob("*.dat"))]
    return []


SEEDS = _corpus() or [
    b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    b"From: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
]
INTERESTING = [
    b"\r\n",
    b" ",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"@",
    b"\x00",
    b"\xff",
    b"\r\n ",
    b"SIP/2.0",
    b"Content-Length: 5\r\n",
    b"9" * 12,
    b"-1",
    b"[",
    b"]",
]


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.sampled_from(INTERESTING) | st.binary(max_size=4))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[position:]
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 40))]
    return bytes(data)


def _boundary_holds(data: bytes) -> None:
    try:
        message = read_message(data)
    except (RemoteProtocolError, MessageDropped):
        return
    # Whatever got through serializes and parses again.
    assert isinstance(parse_message(message.to_bytes()), Request | Response)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _boundary_holds(data)


@FUZZ
@given(mutated_messages())
def test_fuzz_mutated_torture_messages(data: bytes) -> None:
    _boundary_holds(data)


@FUZZ
@given(mutated_messages(), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_fuzz_stream_framer(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(max_message_size=4096)
    position = 0
    try:
        for size in [*cuts, len(data)]:
            for message in framer.feed(data[position : position + size]):
                _boundary_holds(message)
            position += size
    except RemoteProtocolError:
        return


reason_texts = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=20
)


@ROUND_TRIP
@given(
    st.sampled_from(["SIP", "Q.850", "preemption"]) | tokens,
    st.none() | st.integers(0, 9999),
    st.none() | reason_texts,
)
def test_reason_round_trip(protocol: str, cause: int | None, text: str | None) -> None:
    value = protocol
    if cause is not None:
        value += f";cause={cause}"
    if text is not None:
        value += f';text="{text}"'
    (reason,) = parse_reason(value)
    assert (reason.protocol, reason.cause, reason.text) == (protocol, cause, text)
    assert str(reason) == value


@FUZZ
@given(st.text(max_size=80))
def test_fuzz_reason(value: str) -> None:
    # The only rule: parsed values or the protocol error, nothing else.
    try:
        parse_reason(value)
    except LocalProtocolError:
        return
