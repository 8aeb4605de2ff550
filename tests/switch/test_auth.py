"""Inbound digest authentication under attack: replays, floods and timing.

RFC 7616 §3.4.5: a nonce count is good once; RFC 3261 §22.4 and the switch's own rule
that a nonce belongs to the address it was sent to. Every refusal does the same work,
so the time a 403 takes says nothing about which accounts exist.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from tollguard.domain.routing import Plan, build_plan
from tollguard.sip import digest
from tollguard.sip.digest import NonceManager, authorization
from tollguard.switch.auth import Authenticated, Authenticator, AuthResult, Challenge, Rejected

from .conftest import PASSWORD, REALM, plan_data

URI = "sip:442071234567@127.0.0.1"
SECRET = b"k" * 32
ALICE = ("192.0.2.7", 5060)
ELSEWHERE = ("192.0.2.8", 5060)


def _authenticator(
    realm: str = REALM,
    *,
    max_counts: int = 100_000,
    algorithms: tuple[str, ...] = ("SHA-256",),
) -> Authenticator:
    return Authenticator(realm, NonceManager(SECRET, 300, max_counts=max_counts), algorithms)


def _plan() -> Plan:
    return build_plan(plan_data((1, 2)))


def _authenticate(
    authenticator: Authenticator,
    credentials: tuple[str, ...],
    *,
    source: tuple[str, int] = ALICE,
    now: float = 1000.0,
    plan: Plan | None = None,
    uri: str = URI,
) -> AuthResult:
    return authenticator.authenticate(
        plan or _plan(),
        method="INVITE",
        request_uri=uri,
        from_user="alice",
        called="442071234567",
        credentials=credentials,
        source=source,
        transport="udp",
        now=now,
    )


def _answer(
    authenticator: Authenticator,
    *,
    user: str = "alice",
    password: str = PASSWORD,
    algorithm: str = "SHA-256",
    source: tuple[str, int] = ALICE,
    now: float = 1000.0,
) -> str:
    challenge = _authenticate(authenticator, (), source=source, now=now)
    assert isinstance(challenge, Challenge)
    value = next(v for v in challenge.values if f"algorithm={algorithm}," in v)
    return authorization(value, user, password, "INVITE", URI, "c1")


def _is_stale_challenge(result: AuthResult) -> bool:
    return isinstance(result, Challenge) and all("stale=true" in v for v in result.values)


def test_a_captured_answer_places_one_call_only(caplog: pytest.LogCaptureFixture) -> None:
    # The replay the independent test made: the same Proxy-Authorization for the
    # original call, for a new Call-ID (the authenticator sees the same values both
    # times) and from another address.
    authenticator = _authenticator()
    captured = _answer(authenticator)
    assert isinstance(_authenticate(authenticator, (captured,), now=1001.0), Authenticated)
    caplog.set_level("WARNING", logger="tollguard.security")
    again = _authenticate(authenticator, (captured,), now=1002.0)
    assert _is_stale_challenge(again)
    elsewhere = _authenticate(authenticator, (captured,), source=ELSEWHERE, now=1003.0)
    assert _is_stale_challenge(elsewhere)
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert lines == [
        'auth failure: ip=192.0.2.7 port=5060 transport=udp user="alice" reason=replayed-nonce',
        'auth failure: ip=192.0.2.8 port=5060 transport=udp user="alice" reason=replayed-nonce',
    ]
    # The fresh challenge is for the caller's own address: a replayer gains nothing.
    assert isinstance(elsewhere, Challenge)
    nonce = digest.parse_challenge(elsewhere.values[0])["nonce"]
    manager_check = authenticator.nonces.check(nonce, REALM, 1003.0, source=ELSEWHERE[0])
    assert manager_check is digest.Verdict.OK
    assert authenticator.nonces.check(nonce, REALM, 1003.0, source=ALICE[0]) is (
        digest.Verdict.REPLAY
    )


def test_a_nonce_from_another_realm_is_refused() -> None:
    authenticator = _authenticator()
    other = _authenticator("other-realm")
    foreign = _answer(other).replace('realm="other-realm"', f'realm="{REALM}"')
    # The answer was computed for the other realm: not valid here in any way.
    assert _authenticate(authenticator, (foreign,), now=1001.0) == Rejected(403, "Forbidden")


def test_a_flood_without_the_password_leaves_no_state() -> None:
    # Challenges are sealed, not stored; counts are stored only for right answers.
    authenticator = _authenticator()
    counts = authenticator.nonces.counts
    plan = _plan()
    for index in range(5000):
        source = (f"10.{index // 65536}.{index // 256 % 256}.{index % 256}", 5060)
        challenge = _authenticate(authenticator, (), source=source, plan=plan)
        assert isinstance(challenge, Challenge)
        value = challenge.values[0]
        guess = authorization(value, "alice", f"guess{index}", "INVITE", URI, f"c{index}")
        assert _authenticate(authenticator, (guess,), source=source, plan=plan) == Rejected(
            403, "Forbidden"
        )
    assert len(counts) == 0


def test_a_flood_of_right_answers_stays_within_the_cap() -> None:
    # An attacker holding one account's password fills the memory at most to its cap,
    # and what is forgotten is challenged again rather than accepted.
    authenticator = _authenticator(max_counts=100)
    plan = _plan()
    answers = []
    for index in range(1000):
        source = (f"10.0.{index // 256}.{index % 256}", 5060)
        now = 1000.0 + index / 100
        answer = _answer(authenticator, source=source, now=now)
        answers.append((answer, source))
        result = _authenticate(authenticator, (answer,), source=source, plan=plan, now=now)
        assert isinstance(result, Authenticated)
    assert len(authenticator.nonces.counts) == 100
    for answer, source in answers:
        result = _authenticate(authenticator, (answer,), source=source, plan=plan, now=1011.0)
        assert _is_stale_challenge(result)


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Counts the hash computations and nonce openings of digest verification."""
    counter: collections.Counter[str] = collections.Counter()

    def counting(name: str, function: Callable[[bytes], str]) -> Callable[[bytes], str]:
        def hashed(data: bytes) -> str:
            counter[name] += 1
            return function(data)

        return hashed

    for name, function in list(digest._HASHES.items()):
        monkeypatch.setitem(digest._HASHES, name, counting(name, function))
    opened = NonceManager.open

    def counting_open(self: NonceManager, *args: object, **kwargs: object) -> object:
        counter["open"] += 1
        return opened(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(NonceManager, "open", counting_open)
    yield counter


def _disabled_plan() -> Plan:
    data = plan_data((1, 2))
    alice, bob = data.accounts
    return build_plan(replace(data, accounts=(replace(alice, enabled=False), bob)))


@pytest.mark.parametrize(
    ("user", "password", "algorithm", "disabled", "uri"),
    [
        ("alice", "wrong", "SHA-256", False, URI),
        ("mallory", PASSWORD, "SHA-256", False, URI),
        ("mallory", PASSWORD, "MD5", False, URI),
        ("bob", PASSWORD, "MD5", False, URI),
        ("alice", "wrong", "MD5", False, URI),
        ("alice", PASSWORD, "SHA-256", True, URI),
        ("alice", PASSWORD, "SHA-256", False, "sip:999@127.0.0.1"),
    ],
    ids=[
        "wrong-password",
        "unknown-user",
        "unknown-user-md5",
        "md5-refused",
        "wrong-password-md5",
        "disabled",
        "other-uri",
    ],
)
def test_every_refusal_does_the_same_work(
    work: collections.Counter[str],
    user: str,
    password: str,
    algorithm: str,
    disabled: bool,
    uri: str,
) -> None:
    # A wrong password must not take longer than an unknown user (which would tell a
    # scanner which accounts exist): every 403 after a parsed answer runs the same
    # verification, with a stand-in HA1 when there is no usable one, and compares in
    # constant time (hmac.compare_digest).
    authenticator = _authenticator(algorithms=("SHA-256", "MD5"))
    answer = _answer(authenticator, user=user, password=password, algorithm=algorithm)
    plan = _disabled_plan() if disabled else _plan()
    work.clear()
    result = _authenticate(authenticator, (answer,), now=1001.0, plan=plan, uri=uri)
    assert result == Rejected(403, "Forbidden")
    hash_name = "MD5" if algorithm == "MD5" else "SHA-256"
    # HA2 and the response: two hashes of the answer's algorithm, one nonce opening.
    assert work == {hash_name: 2, "open": 1}
