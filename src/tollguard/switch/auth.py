"""Inbound authentication of initial INVITEs (by source address, else by digest) and of
REGISTERs (by digest only, with the same answers).

A call from an address in a customer's IP ACL (optionally with a tech prefix on the
called number) belongs to that customer. Anything else must answer a proxy challenge
(RFC 3261 §22.3, RFC 8760): the 407 offers the algorithms of ``sip.digest_algorithms`` in
that order (SHA-256 first by default, as RFC 8760 §2.4 asks; some clients, SIPp among
them, answer only the first challenge, so an operator can put MD5 first). The challenge
is the same for every caller — it never depends on the account named in From, which
would tell a scanner which accounts exist — and MD5 answers are accepted only for
accounts that allow MD5. An unknown user, a disabled account, a wrong
password and a malformed header all get the same 403, so that the answer tells an
attacker nothing about which accounts exist; and every such 403 costs the same work
(the answer is verified against a stand-in HA1 when there is no usable one), so that
its timing tells nothing either. A stale nonce with the right password gets
a fresh 407 with ``stale=true`` (RFC 7616 §3.3).

The nonce of a challenge is bound to the realm and to the caller's address, and each
nonce count is good once (RFC 7616 §3.4.5): a captured ``Proxy-Authorization`` played
again, from anywhere, gets a fresh challenge that is useless without the password.

Every failure is one line on the ``tollguard.security`` logger, shaped for fail2ban::

    auth failure: ip=203.0.113.9 port=5060 transport=udp user="bob" reason=bad-credentials

(filter: ``auth failure: ip=<HOST> ``). A replayed answer is logged the same way with
``reason=replayed-nonce``.

With the SIP shield (:mod:`.guard`), a source banned for failed authentication and an
account locked after failures from many sources are refused exactly like a wrong
password (``reason=shield``): the same 403 after the same verification. Each failure
is counted by the shield after the answer has gone out (``defer``), so that the extra
bookkeeping a real account's name gets does not show in the response time.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from tollguard.config import SipSettings
from tollguard.domain.plan import Account, Customer
from tollguard.domain.routing import Plan
from tollguard.sip.digest import (
    NonceManager,
    Verdict,
    challenge_headers,
    parse_credentials,
    verify,
)
from tollguard.sip.errors import SipError
from tollguard.switch.guard import Guard

__all__ = ["AuthResult", "Authenticated", "Authenticator", "Challenge", "Rejected"]

security_log = logging.getLogger("tollguard.security")

DEFAULT_ALGORITHMS = ("SHA-256",)


@dataclass(frozen=True, slots=True)
class Authenticated:
    customer: Customer
    account: Account | None
    # The called number with the ACL tech prefix removed (as dialled otherwise).
    number: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """Answer 407 with these ``Proxy-Authenticate`` values."""

    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    status: int
    reason: str


AuthResult = Authenticated | Challenge | Rejected

_FORBIDDEN = Rejected(403, "Forbidden")


def _printable(text: str) -> str:
    # Attacker-controlled text goes into a log that fail2ban parses: no line breaks,
    # no quotes, bounded length.
    return "".join(ch if ch.isprintable() and ch != '"' else "?" for ch in text[:64])


class Authenticator:
    """Authenticates initial INVITEs and REGISTERs against the current plan."""

    __slots__ = ("_algorithms", "_nonces", "_offered", "_stand_in", "defer", "guard", "realm")

    def __init__(
        self,
        realm: str,
        nonces: NonceManager,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
    ) -> None:
        self.realm = realm
        self._nonces = nonces
        self._algorithms = algorithms
        self._offered = frozenset(name.upper() for name in algorithms)
        # HA1s no password hashes to, the length of real ones: what a refusal is
        # verified against when the account has none to offer.
        self._stand_in = {"MD5": secrets.token_hex(16), "SHA-256": secrets.token_hex(32)}
        self.guard: Guard | None = None
        # Runs the shield's failure count after the answer went out (the switch's
        # scheduler); without it, at once.
        self.defer: Callable[..., object] | None = None

    @classmethod
    def from_settings(cls, sip: SipSettings, nonce_secret: bytes) -> Authenticator:
        nonces = NonceManager(nonce_secret, sip.nonce_lifetime_s, max_counts=sip.nonce_counts_max)
        return cls(sip.realm, nonces, sip.digest_algorithms)

    @property
    def nonces(self) -> NonceManager:
        return self._nonces

    def authenticate(
        self,
        plan: Plan,
        *,
        method: str,
        request_uri: str,
        from_user: str,
        called: str,
        credentials: tuple[str, ...],
        source: tuple[str, int],
        transport: str,
        now: float,
    ) -> AuthResult:
        """Decide who is calling; ``credentials`` are the Proxy-Authorization values."""
        acl = plan.match_acl(source[0], called)
        if acl is not None:
            entry, number = acl
            customer = plan.customer(entry.customer_id)
            if customer is not None and customer.enabled:
                return Authenticated(customer, None, number)
        return self.digest(
            plan,
            method=method,
            request_uri=request_uri,
            called=called,
            credentials=credentials,
            source=source,
            transport=transport,
            now=now,
        )

    def digest(
        self,
        plan: Plan,
        *,
        method: str,
        request_uri: str,
        called: str,
        credentials: tuple[str, ...],
        source: tuple[str, int],
        transport: str,
        now: float,
    ) -> AuthResult:
        """Digest authentication alone (no source-address match): INVITEs from outside
        every IP list, and every REGISTER (:mod:`.registrar`), whose ``credentials`` are
        its Authorization values and whose challenge goes out in a 401."""
        value = self._ours(credentials)
        if value is None:
            return Challenge(self._challenge(stale=False, source=source[0], now=now))
        try:
            creds = parse_credentials(value)
        except SipError:
            return self._fail(source, transport, "", "malformed-credentials", known=False)
        algorithm = creds.algorithm.upper()
        family = algorithm.removesuffix("-SESS")
        if family not in self._offered:
            # An algorithm the 407 did not offer is a downgrade the client chose
            # (RFC 8760 §2: the server decides what it accepts). Refused before any
            # account is looked at, so it says nothing about accounts.
            return self._fail(source, transport, creds.username, "algorithm-refused", known=False)
        account = plan.account_by_username(creds.username)
        known = account is not None
        ha1, reason = self._ha1(account, family)
        if reason is None and creds.uri != request_uri:
            # RFC 3261 §22.4: the digest must cover this request, not one replayed
            # from elsewhere.
            reason = "uri-mismatch"
        guard = self.guard
        if guard is not None and not guard.may_authenticate(source[0], creds.username):
            # A banned guesser or a locked account: answered as a wrong password.
            reason = reason or "shield"
        if reason is not None:
            ha1 = self._stand_in[family]
        # Every answer is verified, against the stand-in when there is no usable HA1:
        # a refusal costs the same whichever reason it has.
        verdict = verify(creds, method, ha1, self._nonces, now, source=source[0])
        if reason is not None:
            return self._fail(source, transport, creds.username, reason, known=known)
        if verdict is Verdict.STALE:
            return Challenge(self._challenge(stale=True, source=source[0], now=now))
        if verdict is Verdict.REPLAY:
            self._fail(source, transport, creds.username, "replayed-nonce", known=known)
            return Challenge(self._challenge(stale=True, source=source[0], now=now))
        if verdict is not Verdict.OK:
            return self._fail(source, transport, creds.username, "bad-credentials", known=known)
        assert account is not None
        customer = plan.customer(account.customer_id)
        if customer is None or not customer.enabled:
            return self._fail(source, transport, creds.username, "disabled", known=known)
        return Authenticated(customer, account, called)

    @staticmethod
    def _ha1(account: Account | None, family: str) -> tuple[str, str | None]:
        """The account's HA1 for ``family`` (MD5 or SHA-256), or why there is none."""
        if account is None:
            return "", "unknown-user"
        if not account.enabled:
            return "", "disabled"
        if family == "SHA-256":
            return account.ha1_sha256, None
        if account.allow_md5 and account.ha1_md5:
            return account.ha1_md5, None
        return "", "algorithm-refused"

    def _ours(self, values: tuple[str, ...]) -> str | None:
        # A request may carry credentials for several proxies (RFC 3261 §22.3); use the
        # one for our realm, or the only one.
        if len(values) == 1:
            return values[0]
        needle = f'realm="{self.realm}"'
        for value in values:
            if needle in value:
                return value
        return None

    def _challenge(self, *, stale: bool, source: str, now: float) -> tuple[str, ...]:
        nonce = self._nonces.make(self.realm, now, source=source)
        return tuple(challenge_headers(self.realm, nonce, self._algorithms, stale))

    def _fail(
        self, source: tuple[str, int], transport: str, user: str, reason: str, *, known: bool
    ) -> Rejected:
        security_log.warning(
            'auth failure: ip=%s port=%d transport=%s user="%s" reason=%s',
            source[0],
            source[1],
            transport,
            _printable(user),
            reason,
        )
        guard = self.guard
        if guard is not None:
            if self.defer is not None:
                self.defer(guard.auth_failed, source[0], user, known)
            else:
                guard.auth_failed(source[0], user, known)
        return _FORBIDDEN
