"""Digest authentication: RFC 7616 / RFC 2617 vectors, nonces, parsing, round trips."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.sip.digest import (
    Credentials,
    NonceManager,
    Verdict,
    authorization,
    challenge_headers,
    ha1,
    parse_challenge,
    parse_credentials,
    verify,
)
from tollguard.sip.errors import LocalProtocolError

SECRET = b"0123456789abcdef0123456789abcdef"

# RFC 7616 §3.9.1.
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
    ids=["md5", "sha256"],
)
def test_client_matches_rfc7616_example(algorithm: str, expected: str) -> None:
    challenge = (
        f'Digest realm="{RFC7616_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    value = authorization(
        challenge, "Mufasa", "Circle of Life", "GET", "/dir/index.html", RFC7616_CNONCE
    )
    credentials = parse_credentials(value)
    assert credentials.response == expected
    assert credentials.nc == "00000001"
    assert credentials.qop == "auth"
    assert credentials.opaque == RFC7616_OPAQUE
    assert credentials.algorithm == algorithm


def test_client_matches_rfc2617_example() -> None:
    # RFC 2617 §3.5: MD5 with qop=auth, the form SIPp computes.
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = authorization(
        challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b"
    )
    assert parse_credentials(value).response == "6629fae49393a05397450978507c4ef1"


def test_client_without_qop_uses_rfc2069_form() -> None:
    challenge = 'Digest realm="sip.example", nonce="abc"'
    value = authorization(challenge, "alice", "pw", "INVITE", "sip:bob@sip.example", "cn")
    credentials = parse_credentials(value)
    ha2 = md5_hex("INVITE:sip:bob@sip.example")
    assert credentials.response == md5_hex(f"{md5_hex('alice:sip.example:pw')}:abc:{ha2}")
    assert credentials.qop is None and credentials.cnonce is None


def test_client_refuses_auth_int_only() -> None:
    with pytest.raises(LocalProtocolError, match="no supported qop"):
        authorization('Digest realm="r", nonce="n", qop="auth-int"', "u", "p", "BYE", "sip:x", "c")


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
@pytest.mark.parametrize("with_qop", [True, False], ids=["qop", "no-qop"])
def test_server_accepts_client_answer(algorithm: str, with_qop: bool) -> None:
    manager = NonceManager(SECRET, 300)
    nonce = manager.make("tollguard", now=100.0)
    challenge = challenge_headers("tollguard", nonce, algorithms=(algorithm,))[0]
    if not with_qop:
        challenge = challenge.replace(', qop="auth"', "")
    value = authorization(challenge, "1001", "s3cret", "INVITE", "sip:2002@tollguard", "xyz")
    credentials = parse_credentials(value)
    stored = ha1("1001", "tollguard", "s3cret", algorithm)
    assert verify(credentials, "INVITE", stored, manager, now=101.0) is Verdict.OK
    assert verify(credentials, "REGISTER", stored, manager, now=101.0) is Verdict.BAD
    wrong = ha1("1001", "tollguard", "guess", algorithm)
    assert verify(credentials, "INVITE", wrong, manager, now=101.0) is Verdict.BAD


def answer(manager: NonceManager, issued: float, password: str = "pw") -> Credentials:
    nonce = manager.make("tollguard", issued)
    challenge = challenge_headers("tollguard", nonce)[0]
    return parse_credentials(authorization(challenge, "u", password, "INVITE", "sip:x", "c"))


@pytest.mark.parametrize(
    ("now", "password", "verdict"),
    [
        (10.0, "pw", Verdict.OK),
        (309.0, "pw", Verdict.OK),
        (311.0, "pw", Verdict.STALE),
        (311.0, "wrong", Verdict.BAD),
        # Issued by an earlier process whose monotonic clock ran further.
        (1.0, "pw", Verdict.STALE),
    ],
    ids=["fresh", "almost-expired", "expired", "expired-wrong-password", "future"],
)
def test_nonce_lifetime(now: float, password: str, verdict: Verdict) -> None:
    manager = NonceManager(SECRET, 300)
    credentials = answer(manager, 10.0, password)
    stored = ha1("u", "tollguard", "pw", "SHA-256")
    assert verify(credentials, "INVITE", stored, manager, now) is verdict


def test_tampered_nonce_is_bad() -> None:
    manager = NonceManager(SECRET, 300)
    nonce = manager.make("tollguard", 50.0)
    # Flip one character of the sealed part: authentication fails.
    forged = nonce[:20] + ("B" if nonce[20] != "B" else "C") + nonce[21:]
    assert manager.check(nonce, "tollguard", 60.0) is Verdict.OK
    assert manager.check(forged, "tollguard", 60.0) is Verdict.BAD
    assert manager.check(nonce, "other-realm", 60.0) is Verdict.BAD
    assert NonceManager(b"x" * 32, 300).check(nonce, "tollguard", 60.0) is Verdict.BAD
    assert manager.check("not base64 !!", "tollguard", 60.0) is Verdict.BAD
    assert manager.check("", "tollguard", 60.0) is Verdict.BAD


def test_nonce_not_ours_is_stale_only_with_the_right_password() -> None:
    # RFC 7616 §3.3: stale=true says the nonce was invalid but the answer was right,
    # so the client retries without asking its user. Only someone who knows the
    # password (or replays a capture, which the fresh nonce makes useless) sees it.
    manager = NonceManager(SECRET, 300)
    challenge = challenge_headers("tollguard", "made-up-nonce")[0]
    credentials = parse_credentials(authorization(challenge, "u", "pw", "INVITE", "sip:x", "c"))
    stored = ha1("u", "tollguard", "pw", "SHA-256")
    assert verify(credentials, "INVITE", stored, manager, 1.0) is Verdict.STALE
    wrong = ha1("u", "tollguard", "guess", "SHA-256")
    assert verify(credentials, "INVITE", wrong, manager, 1.0) is Verdict.BAD


def test_nonces_differ() -> None:
    manager = NonceManager(SECRET, 300)
    assert manager.make("r", 1.0) != manager.make("r", 1.0)


def _raw(nonce: str) -> bytes:
    return base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))


def test_nonce_reveals_no_clock() -> None:
    # The issue time is sealed: nothing in a nonce tells a peer the host's uptime.
    manager = NonceManager(SECRET, 300)
    now = 123456.789
    nonces = [_raw(manager.make("tollguard", now)) for _ in range(200)]
    for stamp in (int(now * 1000), int(now)):
        for size in (4, 8):
            assert not any(stamp.to_bytes(size, "big") in raw for raw in nonces)
    # No byte position holds the same value in every nonce made at the same time.
    width = min(len(raw) for raw in nonces)
    assert all(len({raw[i] for raw in nonces}) > 1 for i in range(width))
    assert manager.check(base64.urlsafe_b64encode(nonces[0]).decode(), "tollguard", now) in (
        Verdict.OK,
    )


def creds_for(
    manager: NonceManager,
    *,
    issued: float = 10.0,
    nc: int = 1,
    source: str = "",
    nonce: str | None = None,
    qop: bool = True,
) -> Credentials:
    if nonce is None:
        nonce = (
            manager.make("tollguard", issued, source=source)
            if source
            else (manager.make("tollguard", issued))
        )
    challenge = challenge_headers("tollguard", nonce)[0]
    if not qop:
        challenge = challenge.replace(', qop="auth"', "")
    value = authorization(challenge, "u", "pw", "INVITE", "sip:x", "c", nc=nc)
    return parse_credentials(value)


STORED = ha1("u", "tollguard", "pw", "SHA-256")


def test_a_nonce_count_is_accepted_once() -> None:
    # RFC 7616 §3.4.5: the server remembers the highest nc per nonce.
    manager = NonceManager(SECRET, 300)
    credentials = creds_for(manager)
    assert verify(credentials, "INVITE", STORED, manager, 11.0) is Verdict.OK
    assert verify(credentials, "INVITE", STORED, manager, 12.0) is Verdict.REPLAY
    assert verify(credentials, "INVITE", STORED, manager, 13.0) is Verdict.REPLAY
    # A replay with a wrong password is just wrong.
    wrong = ha1("u", "tollguard", "guess", "SHA-256")
    assert verify(credentials, "INVITE", wrong, manager, 14.0) is Verdict.BAD


def test_counts_on_one_nonce_must_rise() -> None:
    manager = NonceManager(SECRET, 300)
    nonce = manager.make("tollguard", 10.0)
    outcomes = [
        verify(creds_for(manager, nonce=nonce, nc=nc), "INVITE", STORED, manager, 11.0)
        for nc in (1, 3, 2, 3, 4)
    ]
    assert outcomes == [Verdict.OK, Verdict.OK, Verdict.REPLAY, Verdict.REPLAY, Verdict.OK]


def test_without_qop_a_nonce_is_used_once() -> None:
    # RFC 2069 answers carry no nc: the nonce itself is single-use.
    manager = NonceManager(SECRET, 300)
    credentials = creds_for(manager, qop=False)
    assert credentials.nc is None
    assert verify(credentials, "INVITE", STORED, manager, 11.0) is Verdict.OK
    assert verify(credentials, "INVITE", STORED, manager, 11.0) is Verdict.REPLAY


def test_nonce_count_zero_is_bad() -> None:
    manager = NonceManager(SECRET, 300)
    credentials = creds_for(manager, nc=0)
    assert verify(credentials, "INVITE", STORED, manager, 11.0) is Verdict.BAD


def test_nonce_is_bound_to_the_address_it_was_issued_to() -> None:
    manager = NonceManager(SECRET, 300)
    credentials = creds_for(manager, source="192.0.2.7")
    assert manager.check(credentials.nonce, "tollguard", 11.0, source="192.0.2.8") is (
        Verdict.REPLAY
    )
    assert verify(credentials, "INVITE", STORED, manager, 11.0, source="192.0.2.8") is (
        Verdict.REPLAY
    )
    wrong = ha1("u", "tollguard", "guess", "SHA-256")
    assert verify(credentials, "INVITE", wrong, manager, 11.0, source="192.0.2.8") is (Verdict.BAD)
    # Tried elsewhere first, the nonce still works once where it was issued.
    assert verify(credentials, "INVITE", STORED, manager, 11.0, source="192.0.2.7") is (Verdict.OK)


def test_nonce_of_another_process_is_stale() -> None:
    # A restarted switch remembers no counts, so it must not honour the nonces of
    # the process before it, even with the same configured secret; nor does one
    # worker honour another's.
    first, second = NonceManager(SECRET, 300), NonceManager(SECRET, 300)
    credentials = creds_for(first)
    assert verify(credentials, "INVITE", STORED, second, 11.0) is Verdict.STALE
    assert verify(credentials, "INVITE", STORED, first, 11.0) is Verdict.OK


def test_count_memory_is_bounded_and_forgetting_never_reopens_a_replay() -> None:
    manager = NonceManager(SECRET, 300, max_counts=10)
    used = []
    for index in range(50):
        credentials = creds_for(manager, issued=10.0 + index)
        assert verify(credentials, "INVITE", STORED, manager, 70.0) is Verdict.OK
        used.append(credentials)
    assert len(manager.counts) == 10
    # Every nonce used before, forgotten or not, is refused: the forgotten ones
    # get a fresh challenge (stale), the remembered ones are replays.
    again = [verify(c, "INVITE", STORED, manager, 71.0) for c in used]
    assert Verdict.OK not in again
    assert set(again[:40]) == {Verdict.STALE}
    assert set(again[40:]) == {Verdict.REPLAY}
    # A nonce issued after the forgotten ones is still good on its first use.
    fresh = creds_for(manager, issued=80.0)
    assert verify(fresh, "INVITE", STORED, manager, 81.0) is Verdict.OK


def test_counts_of_expired_nonces_are_dropped() -> None:
    manager = NonceManager(SECRET, 300)
    for index in range(5):
        credentials = creds_for(manager, issued=10.0 + index)
        assert verify(credentials, "INVITE", STORED, manager, 20.0) is Verdict.OK
    assert len(manager.counts) == 5
    late = creds_for(manager, issued=400.0)
    assert verify(late, "INVITE", STORED, manager, 401.0) is Verdict.OK
    assert len(manager.counts) == 1


@given(
    uses=st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 6), st.integers(0, 400)), max_size=60
    ),
    max_counts=st.integers(1, 4),
)
def test_a_nonce_count_is_never_accepted_twice(
    uses: list[tuple[int, int, int]], max_counts: int
) -> None:
    manager = NonceManager(SECRET, 300, max_counts=max_counts)
    nonces = [manager.make("tollguard", 5.0 * index) for index in range(6)]
    accepted: dict[int, int] = {}
    now = 0.0
    for index, nc, step in uses:
        now += step / 100
        credentials = creds_for(manager, nonce=nonces[index], nc=nc)
        verdict = verify(credentials, "INVITE", STORED, manager, now)
        if verdict is Verdict.OK:
            assert nc > accepted.get(index, 0)
            accepted[index] = nc
        assert len(manager.counts) <= max_counts


def test_challenge_headers_order_and_flags() -> None:
    values = challenge_headers("tollguard", "n1", stale=True, opaque='o"q')
    assert values == [
        'Digest realm="tollguard", nonce="n1", algorithm=SHA-256, qop="auth", '
        'opaque="o\\"q", stale=true',
        'Digest realm="tollguard", nonce="n1", algorithm=MD5, qop="auth", '
        'opaque="o\\"q", stale=true',
    ]
    assert parse_challenge(values[0])["opaque"] == 'o"q'


def test_challenge_headers_reject_unknown_algorithm() -> None:
    with pytest.raises(LocalProtocolError, match="unsupported digest algorithm"):
        challenge_headers("r", "n", algorithms=("SHA-1",))


def test_parse_credentials_sipp_style() -> None:
    value = (
        'Digest username="1001",realm="tollguard",cnonce="6b8b4567",nc=00000001,'
        'qop=auth,uri="sip:127.0.0.1:5080",nonce="abc",response="0123",algorithm=MD5'
    )
    assert parse_credentials(value) == Credentials(
        username="1001",
        realm="tollguard",
        nonce="abc",
        uri="sip:127.0.0.1:5080",
        response="0123",
        algorithm="MD5",
        cnonce="6b8b4567",
        nc="00000001",
        qop="auth",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Basic dXNlcjpwYXNz", "not a Digest value"),
        ('Digest username="u", realm="r", nonce="n", uri="sip:x"', "lack response"),
        ('Digest username="u", username="v"', "duplicate"),
        ('Digest username="u" realm="r"', "malformed"),
        ('Digest username="unterminated', "malformed"),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth',
            "lack cnonce or nc",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, '
            'cnonce="c", nc=1',
            "8 hex digits",
        ),
        ("", "not a Digest value"),
    ],
    ids=[
        "basic",
        "missing",
        "duplicate",
        "no-comma",
        "unterminated",
        "qop-alone",
        "short-nc",
        "empty",
    ],
)
def test_parse_credentials_rejects(value: str, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        parse_credentials(value)


def test_verify_rejects_auth_int_and_unknown_algorithm() -> None:
    manager = NonceManager(SECRET, 300)
    good = answer(manager, 1.0)
    stored = ha1("u", "tollguard", "pw", "SHA-256")
    assert verify(good, "INVITE", stored, manager, 2.0) is Verdict.OK
    for changed in (replace(good, qop="auth-int"), replace(good, algorithm="SHA-1")):
        assert verify(changed, "INVITE", stored, manager, 2.0) is Verdict.BAD


quoted_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20
)


@given(username=quoted_text, realm=quoted_text, password=st.text(max_size=20), uri=quoted_text)
def test_round_trip_any_printable_identity(
    username: str, realm: str, password: str, uri: str
) -> None:
    manager = NonceManager(SECRET, 300)
    nonce = manager.make(realm, 5.0)
    challenge = challenge_headers(realm, nonce)[0]
    credentials = parse_credentials(
        authorization(challenge, username, password, "INVITE", uri, "c")
    )
    assert (credentials.username, credentials.realm, credentials.uri) == (username, realm, uri)
    stored = ha1(username, realm, password, "SHA-256")
    assert verify(credentials, "INVITE", stored, manager, 6.0) is Verdict.OK


@given(st.text(max_size=80))
def test_parse_credentials_accepts_or_raises_protocol_error(value: str) -> None:
    # Nothing but LocalProtocolError may escape; what parses has every required field.
    try:
        credentials = parse_credentials(value)
    except LocalProtocolError:
        return
    assert None not in (credentials.username, credentials.realm, credentials.response)
