"""Which digest algorithms the switch accepts (RFC 8760, ASVS 11.4.1).

``sip.digest_algorithms`` lists what a 407 offers; an answer in an algorithm that was
not offered is a downgrade the client chose, not one the operator allowed.
"""

from __future__ import annotations

from tollguard.domain.routing import build_plan
from tollguard.sip.digest import NonceManager, authorization
from tollguard.switch.auth import Authenticated, Authenticator, Challenge, Rejected

from .conftest import PASSWORD, REALM, plan_data

URI = "sip:442071234567@127.0.0.1"
NOW = 1000.0


def _authenticate(authenticator: Authenticator, credentials: tuple[str, ...]) -> object:
    return authenticator.authenticate(
        build_plan(plan_data((1, 2))),
        method="INVITE",
        request_uri=URI,
        from_user="alice",
        called="442071234567",
        credentials=credentials,
        source=("192.0.2.7", 5060),
        transport="udp",
        now=NOW,
    )


def _md5_answer(authenticator: Authenticator) -> str:
    challenge = _authenticate(authenticator, ())
    assert isinstance(challenge, Challenge)
    offered = challenge.values[0].replace("algorithm=SHA-256", "algorithm=MD5")
    return authorization(offered, "alice", PASSWORD, "INVITE", URI, "cn")


def test_md5_is_accepted_when_offered_and_allowed() -> None:
    # alice allows MD5 in the test plan.
    authenticator = Authenticator(REALM, NonceManager(b"k" * 32, 300), ("SHA-256", "MD5"))
    result = _authenticate(authenticator, (_md5_answer(authenticator),))
    assert isinstance(result, Authenticated)


def test_md5_is_refused_when_not_offered_even_if_the_account_allows_it() -> None:
    authenticator = Authenticator(REALM, NonceManager(b"k" * 32, 300), ("SHA-256",))
    result = _authenticate(authenticator, (_md5_answer(authenticator),))
    assert result == Rejected(403, "Forbidden")


def test_the_default_offers_sha256_only() -> None:
    authenticator = Authenticator(REALM, NonceManager(b"k" * 32, 300))
    challenge = _authenticate(authenticator, ())
    assert isinstance(challenge, Challenge)
    assert [value for value in challenge.values if "algorithm=" in value] == [
        value for value in challenge.values if "algorithm=SHA-256" in value
    ]
    result = _authenticate(authenticator, (_md5_answer(authenticator),))
    assert result == Rejected(403, "Forbidden")
