"""URI parsing and serialization (RFC 3261 §19.1, RFC 3966)."""

from __future__ import annotations

import dataclasses

import pytest

import tollguard.sip.uri as uri_module
from tollguard.sip import AbsoluteUri, LocalProtocolError, SipUri, TelUri, parse_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:example.com", SipUri("sip", None, None, "example.com")),
        ("SIP:alice@example.com", SipUri("sip", "alice", None, "example.com")),
        (
            "sips:alice:secret@example.com:5061",
            SipUri("sips", "alice", "secret", "example.com", 5061),
        ),
        (
            "sip:+14155550123@192.0.2.1;user=phone;lr",
            SipUri(
                "sip", "+14155550123", None, "192.0.2.1", None, (("user", "phone"), ("lr", None))
            ),
        ),
        ("sip:[2001:db8::1]:5060", SipUri("sip", None, None, "[2001:db8::1]", 5060)),
        (
            "sip:bob@example.com?Subject=hi&Priority=urgent",
            SipUri(
                "sip",
                "bob",
                None,
                "example.com",
                None,
                (),
                (("Subject", "hi"), ("Priority", "urgent")),
            ),
        ),
        ("sip:a%40b@example.com", SipUri("sip", "a@b", None, "example.com")),
        ("sip:host.example.com.", SipUri("sip", None, None, "host.example.com.")),
    ],
    ids=[
        "host-only",
        "upper-scheme",
        "sips-password-port",
        "params",
        "ipv6",
        "headers",
        "escape",
        "fqdn-dot",
    ],
)
def test_parse_sip_uri(text: str, expected: SipUri) -> None:
    assert parse_uri(text) == expected


def test_parsed_uri_serializes_as_received() -> None:
    text = "sip:%61lice@example.com;transport=tcp"
    assert str(parse_uri(text)) == text


@pytest.mark.parametrize(
    "text",
    ["sip:alice@example.com;transport=tcp", "sip:%61lice@example.com;transport=tcp"],
    ids=["plain", "escaped"],
)
def test_replaced_uri_serializes_its_new_value(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    moved = dataclasses.replace(uri, host="other.example.com", port=5080)
    assert str(moved) == "sip:alice@other.example.com:5080;transport=tcp"
    assert str(uri) == text


@pytest.mark.parametrize(
    ("uri", "text"),
    [
        (SipUri("sip", "a b@c", None, "example.com"), "sip:a%20b%40c@example.com"),
        (SipUri("sip", "+1;npdi", "p@ss", "example.com"), "sip:+1;npdi:p%40ss@example.com"),
        (
            SipUri("sip", None, None, "example.com", 5080, (("maddr", "[::1]"), ("x", "a;b"))),
            "sip:example.com:5080;maddr=[::1];x=a%3Bb",
        ),
        (
            SipUri("sips", "u", None, "example.com", None, (), (("Route", "<sip:x>"),)),
            "sips:u@example.com?Route=%3Csip:x%3E",
        ),
        (SipUri("sip", "é", None, "example.com"), "sip:%C3%A9@example.com"),
    ],
    ids=["space-and-at", "password", "params", "headers", "utf8"],
)
def test_built_uri_escapes(uri: SipUri, text: str) -> None:
    assert str(uri) == text
    assert parse_uri(text) == uri


def test_param_lookup_ignores_case() -> None:
    uri = parse_uri("sip:alice@example.com;Transport=TCP;LR")
    assert isinstance(uri, SipUri)
    assert uri.param("transport") == "TCP"
    assert uri.param("lr") == ""
    assert uri.param("maddr") is None
    assert uri.has_param("Lr")
    assert uri.hostport == "example.com"


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com;isub")
    assert uri == TelUri("+1-201-555-0123", (("phone-context", "example.com"), ("isub", None)))
    assert isinstance(uri, TelUri)
    assert uri.is_global
    assert uri.param("Phone-Context") == "example.com"
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com;isub"


@pytest.mark.parametrize(
    "text",
    [
        "http://www.example.com",
        "isbn:2983792873",
        "soap.beep://192.0.2.103:3002",
        "urn:service:sos",
    ],
    ids=["http", "isbn", "soap-beep", "urn"],
)
def test_absolute_uri(text: str) -> None:
    uri = parse_uri(text)
    assert uri == AbsoluteUri(text.partition(":")[0].lower(), text)
    assert str(uri) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com", "URI has no scheme: 'example.com'"),
        ("<sip:a@b>", "invalid URI scheme: '<sip'"),
        ("sip:a@b c", "invalid host in URI: 'b c'"),
        ("sip:@example.com", "invalid user part in SIP URI: 'sip:@example.com'"),
        ("sip:a b@example.com", "invalid user part in SIP URI: 'sip:a b@example.com'"),
        ("sip:a:p w@example.com", "invalid password in SIP URI: 'sip:a:p w@example.com'"),
        ("sip:example.com:5x", "invalid port in SIP URI: 'sip:example.com:5x'"),
        ("sip:example.com:70000", "URI port out of range: 70000"),
        ("sip:[2001:db8::1", "unterminated IPv6 reference in SIP URI: 'sip:[2001:db8::1'"),
        ("sip:[2001:db8::zz]", "invalid host in URI: '[2001:db8::zz]'"),
        ("sip:[1::2::3]", "invalid host in URI: '[1::2::3]'"),
        ("sip:example.com;", "invalid URI parameter '' in 'sip:example.com;'"),
        ("sip:example.com; lr", "invalid URI parameter ' lr' in 'sip:example.com; lr'"),
        ("sip:example.com;a=", "invalid value for URI parameter 'a=' in 'sip:example.com;a='"),
        ("sip:example.com?x", "invalid URI header 'x' in 'sip:example.com?x'"),
        ("sip:-bad-.com", "invalid host in URI: '-bad-.com'"),
        ("sip:a%zz@example.com", "invalid user part in SIP URI: 'sip:a%zz@example.com'"),
        ("tel:+1x2", "invalid number in tel URI: 'tel:+1x2'"),
        ("tel:+1;p=", "invalid tel URI parameter 'p=' in 'tel:+1;p='"),
        ("http://a b", "invalid characters in 'http' URI: 'http://a b'"),
    ],
    ids=[
        "no-scheme",
        "angle",
        "space-host",
        "empty-user",
        "space-user",
        "bad-password",
        "bad-port",
        "port-range",
        "open-ipv6",
        "hex-ipv6",
        "double-colon-ipv6",
        "empty-param",
        "lws-param",
        "empty-param-value",
        "header-without-value",
        "bad-label",
        "bad-escape",
        "tel-number",
        "tel-param",
        "absolute-space",
    ],
)
def test_parse_uri_errors(text: str, message: str) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        parse_uri(text)
    assert caught.value.message == message


@pytest.mark.parametrize(
    "text",
    [
        "tel:+" + "1-" * 5000 + "x",
        "sip:" + "a." * 5000 + "-",
        "sip:a" + "-" * 10000 + "!",
        "sip:u@h" + ";p" * 5000 + ";",
        "sip:" + "1." * 5000 + "x!",
    ],
    ids=["tel-separators", "host-labels", "host-dashes", "many-params", "digit-labels"],
)
def test_long_hostile_uris_fail_fast(text: str) -> None:
    # Linear-time patterns: these would hang on a backtracking blow-up.
    with pytest.raises(LocalProtocolError):
        parse_uri(text)


def test_uri_memo_is_bounded() -> None:
    for index in range(5000):
        parse_uri(f"sip:user{index}@example.com")
    assert 0 < len(uri_module._URI_MEMO) <= uri_module._MEMO_MAX
    assert parse_uri("sip:user1@example.com") == SipUri("sip", "user1", None, "example.com")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "tel"}, "SIP URI scheme must be 'sip' or 'sips', not 'tel'"),
        ({"port": 65536}, "URI port out of range: 65536"),
        ({"host": "exa mple.com"}, "invalid host in URI: 'exa mple.com'"),
    ],
    ids=["scheme", "port", "host"],
)
def test_sip_uri_constructor_validates(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "scheme": "sip",
        "user": None,
        "password": None,
        "host": "example.com",
    }
    values.update(kwargs)
    with pytest.raises(LocalProtocolError) as caught:
        SipUri(**values)  # type: ignore[arg-type]
    assert caught.value.message == message
