"""Digest authentication for SIP: RFC 3261 §22 with the RFC 7616 algorithms (RFC 8760).

Server side: :func:`challenge_headers` builds the ``WWW-Authenticate`` /
``Proxy-Authenticate`` values, :func:`parse_credentials` reads an ``Authorization`` /
``Proxy-Authorization`` value and :func:`verify` checks it against a stored HA1.

Nonces (:class:`NonceManager`) are sealed, not stored: AES-GCM under a key drawn by
each process seals the time of issue and the address the challenge went to, with the
realm as associated data. Issuing a challenge therefore costs no memory, and a nonce
tells its reader nothing (no clock, no counter). What must be remembered is which
nonce counts were used (RFC 7616 §3.4.5): :class:`NonceCounts` keeps the highest
``nc`` per nonce, only for answers that were right, in bounded memory, and never
accepts a nonce it may have forgotten. Because the counts live in one process, so
does the key: a nonce from another process (an earlier run, another worker) gets a
fresh challenge, never a second use.

Client side: :func:`authorization` answers a challenge (towards providers, and in tests).

Nothing here does I/O or reads a clock: ``now`` is passed in by the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tollguard.sip.errors import LocalProtocolError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_MAX_COUNTS",
    "Credentials",
    "NonceCounts",
    "NonceManager",
    "NonceState",
    "Verdict",
    "authorization",
    "challenge_headers",
    "ha1",
    "parse_challenge",
    "parse_credentials",
    "verify",
]


def _md5(data: bytes) -> str:
    # Digest MD5 is an interoperability requirement, not a security primitive.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# RFC 7616 §3.2 / RFC 8760 §2.1: algorithm token -> hash; "-sess" variants share the hash.
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": _md5,
    "MD5-SESS": _md5,
    "SHA-256": _sha256,
    "SHA-256-SESS": _sha256,
}

ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5", "SHA-256-sess", "MD5-sess")


class Verdict(Enum):
    """Outcome of :func:`verify` (and of a nonce check)."""

    OK = "ok"
    # Right answer, but the nonce is no longer usable here (expired, from another
    # process, forgotten): challenge again with stale=true (RFC 7616 §3.3).
    STALE = "stale"
    # Right answer, but its nonce count was used before, or the nonce was issued to
    # another address: a captured answer played again. Challenge again (the new nonce
    # is useless without the password) and log it.
    REPLAY = "replay"
    BAD = "bad"


def _hash_for(algorithm: str) -> Callable[[bytes], str]:
    try:
        return _HASHES[algorithm.upper()]
    except KeyError:
        raise LocalProtocolError(f"unsupported digest algorithm {algorithm!r}") from None


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """``H(username:realm:password)`` as lowercase hex (RFC 7616 §3.4.2).

    For the "-sess" algorithms this is the stored part; :func:`verify` folds in the
    nonce and cnonce.
    """
    return _hash_for(algorithm)(f"{username}:{realm}:{password}".encode())


# RFC 7616 §3.3/§3.4 parameters: auth-param = token BWS "=" BWS ( token / quoted-string )
# token = 1*tchar (RFC 9110 §5.6.2); quoted-string allows quoted-pair escapes.
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(
    rf"\s*({_TCHARS})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TCHARS}))\s*(,|$)", re.DOTALL
)
_SCHEME_RE = re.compile(rf"\s*({_TCHARS})\s+")
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")


def _parse_params(value: str, what: str) -> dict[str, str]:
    """Split ``Digest k=v, k="v"`` into a dict with lowercase keys."""
    scheme = _SCHEME_RE.match(value)
    if scheme is None or scheme.group(1).lower() != "digest":
        raise LocalProtocolError(f"{what} is not a Digest value")
    params: dict[str, str] = {}
    pos = scheme.end()
    end = len(value.rstrip())
    while pos < end:
        match = _PARAM_RE.match(value, pos)
        if match is None:
            raise LocalProtocolError(f"malformed {what} parameter at offset {pos}")
        name = match.group(1).lower()
        if name in params:
            raise LocalProtocolError(f"duplicate {what} parameter {name!r}")
        quoted = match.group(2)
        params[name] = _UNESCAPE_RE.sub(r"\1", quoted) if quoted is not None else match.group(3)
        pos = match.end()
        if match.group(4) == "" and pos < end:
            raise LocalProtocolError(f"malformed {what} parameter at offset {pos}")
    return params


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Credentials:
    """The parameters of one ``Authorization`` value (RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    nc: str | None = None
    qop: str | None = None
    opaque: str | None = None


_REQUIRED = ("username", "realm", "nonce", "uri", "response")


def parse_credentials(header_value: str) -> Credentials:
    """Parse an ``Authorization``/``Proxy-Authorization`` value.

    Raises :class:`LocalProtocolError` on anything malformed, including qop without
    cnonce and nc (RFC 7616 §3.4: both are required when qop is sent).
    """
    params = _parse_params(header_value, "credentials")
    missing = [name for name in _REQUIRED if name not in params]
    if missing:
        raise LocalProtocolError(f"credentials lack {', '.join(missing)}")
    qop = params.get("qop")
    cnonce = params.get("cnonce")
    nc = params.get("nc")
    if qop is not None and (cnonce is None or nc is None):
        raise LocalProtocolError("credentials with qop lack cnonce or nc")
    if nc is not None and _NC_RE.fullmatch(nc) is None:
        raise LocalProtocolError(f"credentials nc {nc!r} is not 8 hex digits")
    return Credentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm", "MD5"),
        cnonce=cnonce,
        nc=nc,
        qop=qop,
        opaque=params.get("opaque"),
    )


def parse_challenge(header_value: str) -> dict[str, str]:
    """Parse a ``WWW-Authenticate``/``Proxy-Authenticate`` value into its parameters."""
    params = _parse_params(header_value, "challenge")
    for name in ("realm", "nonce"):
        if name not in params:
            raise LocalProtocolError(f"challenge lacks {name}")
    return params


# Nonce counts remembered by default: entries live as long as their nonce (at most
# sip.nonce_lifetime_s) and cost about 150 bytes each.
DEFAULT_MAX_COUNTS = 100_000


class NonceCounts:
    """The highest nonce count accepted per nonce (RFC 7616 §3.4.5), in bounded memory.

    Entries are kept in the order of their first use. Entries of expired nonces are
    dropped from the front as time passes; when the store is full the oldest entry is
    forgotten, and the store remembers the latest issue time it has forgotten (the
    *floor*). A nonce that is not in the store is accepted as new only if it was issued
    after the floor; anything older may have been forgotten and is answered STALE, so
    that forgetting never lets a count be used twice.
    """

    __slots__ = ("_entries", "_floor_ms", "_lifetime_ms", "max_entries")

    def __init__(self, max_entries: int, lifetime_s: float) -> None:
        if max_entries < 1:
            raise ValueError("the nonce count store needs room for at least one nonce")
        self.max_entries = max_entries
        self._lifetime_ms = int(lifetime_s * 1000)
        # nonce key -> issued_ms << 32 | highest nc; one int per entry.
        self._entries: dict[bytes, int] = {}
        self._floor_ms = -1

    def __len__(self) -> int:
        return len(self._entries)

    def use(self, key: bytes, issued_ms: int, count: int, now: float) -> Verdict:
        """Record ``count`` for the nonce ``key``: OK if it is higher than any before."""
        entries = self._entries
        self._expire(int(now * 1000))
        packed = entries.get(key)
        if packed is None:
            if issued_ms <= self._floor_ms:
                return Verdict.STALE
            if len(entries) >= self.max_entries:
                oldest = next(iter(entries))
                self._floor_ms = max(self._floor_ms, entries.pop(oldest) >> 32)
        elif count <= packed & 0xFFFFFFFF:
            return Verdict.REPLAY
        entries[key] = issued_ms << 32 | count
        return Verdict.OK

    def _expire(self, now_ms: int) -> None:
        entries = self._entries
        deadline = now_ms - self._lifetime_ms
        while entries:
            oldest = next(iter(entries))
            if entries[oldest] >> 32 >= deadline:
                return
            # Expired nonces are refused by their age: no floor needed.
            del entries[oldest]


@dataclass(frozen=True, slots=True)
class NonceState:
    """What :meth:`NonceManager.open` learnt of a nonce."""

    verdict: Verdict  # OK, STALE (expired), REPLAY (another address) or BAD (not ours)
    key: bytes = b""
    issued_ms: int = 0


_IV_LEN = 12
_TAG_LEN = 16
_STAMP_LEN = 8
_MIN_SEALED = _IV_LEN + _STAMP_LEN + _TAG_LEN
# AES-GCM with random 96-bit IVs: at most 2**32 messages per key (NIST SP 800-38D
# §8.3). A process draws a new key long before that.
_NONCES_PER_KEY = 2**31
_NOT_OURS = NonceState(Verdict.BAD)


class NonceManager:
    """Sealed nonces: ``base64url(iv | AES-GCM(key, iv, issued_ms | address, realm))``.

    The key is derived from the configured secret and 32 random bytes drawn when the
    manager is made, so it belongs to this process alone. The realm is authenticated
    (a nonce for one realm is refused in another), and the issue time and the address
    the challenge was sent to are encrypted, so a nonce leaks neither the host's clock
    nor how many challenges were issued. :attr:`counts` remembers the nonce counts used.
    """

    __slots__ = ("_aead", "_issued", "_lifetime", "_secret", "counts")

    def __init__(
        self, secret: bytes, lifetime_s: float, *, max_counts: int = DEFAULT_MAX_COUNTS
    ) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if lifetime_s <= 0:
            raise ValueError("nonce lifetime must be positive")
        self._secret = secret
        self._lifetime = lifetime_s
        self._aead = self._new_key()
        self._issued = 0
        self.counts = NonceCounts(max_counts, lifetime_s)

    def _new_key(self) -> AESGCM:
        material = b"tollguard digest nonce key\x00" + os.urandom(32)
        return AESGCM(hmac.digest(self._secret, material, "sha256"))

    def make(self, realm: str, now: float, *, source: str = "") -> str:
        """A fresh nonce for ``realm`` issued at ``now`` to the address ``source``."""
        self._issued += 1
        if self._issued >= _NONCES_PER_KEY:
            self._aead, self._issued = self._new_key(), 0
        iv = os.urandom(_IV_LEN)
        stamp = max(0, int(now * 1000)).to_bytes(_STAMP_LEN, "big")
        sealed = self._aead.encrypt(iv, stamp + source.encode(), realm.encode())
        return base64.urlsafe_b64encode(iv + sealed).decode("ascii").rstrip("=")

    def open(self, nonce: str, realm: str, now: float, *, source: str = "") -> NonceState:
        """Unseal ``nonce``: OK if ours, for ``realm``, for ``source`` and fresh.

        STALE if it is ours but expired (or dated in the future); REPLAY if it was
        sealed for another address; BAD if it is not ours: forged, for another realm,
        or sealed by another process (these cannot be told apart).
        """
        try:
            raw = base64.b64decode(nonce + "=" * (-len(nonce) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            return _NOT_OURS
        if len(raw) < _MIN_SEALED:
            return _NOT_OURS
        iv = raw[:_IV_LEN]
        try:
            plain = self._aead.decrypt(iv, raw[_IV_LEN:], realm.encode())
        except InvalidTag:
            return _NOT_OURS
        issued_ms = int.from_bytes(plain[:_STAMP_LEN], "big")
        now_ms = now * 1000
        if issued_ms > now_ms + 1000 or now_ms - issued_ms > self._lifetime * 1000:
            return NonceState(Verdict.STALE, iv, issued_ms)
        if plain[_STAMP_LEN:] != source.encode():
            return NonceState(Verdict.REPLAY, iv, issued_ms)
        return NonceState(Verdict.OK, iv, issued_ms)

    def check(self, nonce: str, realm: str, now: float, *, source: str = "") -> Verdict:
        """The verdict of :meth:`open` alone (no count is used)."""
        return self.open(nonce, realm, now, source=source).verdict


def challenge_headers(
    realm: str,
    nonce: str,
    algorithms: Iterable[str] = ("SHA-256", "MD5"),
    stale: bool = False,
    opaque: str | None = None,
) -> list[str]:
    """One challenge value per algorithm, in preference order (RFC 8760 §2.4).

    The caller puts SHA-256 first so that clients that take the first challenge they
    understand prefer it; MD5 follows for the many UAs that know nothing else.
    """
    values = []
    for algorithm in algorithms:
        _hash_for(algorithm)
        value = f"Digest realm={_quote(realm)}, nonce={_quote(nonce)}, algorithm={algorithm}"
        value += ', qop="auth"'
        if opaque is not None:
            value += f", opaque={_quote(opaque)}"
        if stale:
            value += ", stale=true"
        values.append(value)
    return values


def _expected_response(
    *,
    hash_fn: Callable[[bytes], str],
    algorithm: str,
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    cnonce: str | None,
    nc: str | None,
) -> str:
    if algorithm.upper().endswith("-SESS"):
        # RFC 7616 §3.4.2: the session variants fold nonce and cnonce into HA1.
        ha1_hex = hash_fn(f"{ha1_hex}:{nonce}:{cnonce or ''}".encode())
    ha2 = hash_fn(f"{method}:{uri}".encode())
    if qop is None:
        # RFC 2069 compatibility form, still sent by some SIP UAs (RFC 3261 §22.4).
        return hash_fn(f"{ha1_hex}:{nonce}:{ha2}".encode())
    return hash_fn(f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


def verify(
    credentials: Credentials,
    method: str,
    ha1_hex: str,
    nonce_manager: NonceManager,
    now: float,
    *,
    source: str = "",
) -> Verdict:
    """Check credentials against the stored ``ha1_hex`` for ``credentials.algorithm``.

    The nonce is opened and the response computed and compared (in constant time)
    whatever the nonce turns out to be, so every answer that is not right costs the
    same. Only a right answer learns more: STALE or REPLAY when its nonce cannot be
    used (RFC 7616 §3.3: stale only for a client that knows the password), else its
    nonce count is used up (RFC 7616 §3.4.5) and the verdict is OK. ``source`` is the
    address the request came from, which must be the one the nonce was sent to.
    ``auth-int`` and unknown algorithms are BAD. The caller checks that
    ``credentials.uri`` names the request it came with.
    """
    hash_fn = _HASHES.get(credentials.algorithm.upper())
    if hash_fn is None or credentials.qop not in (None, "auth"):
        return Verdict.BAD
    if credentials.algorithm.upper().endswith("-SESS") and credentials.cnonce is None:
        return Verdict.BAD
    # Without qop (RFC 2069) there is no nc: the nonce is good for one request.
    count = int(credentials.nc, 16) if credentials.nc is not None else 1
    if count == 0:
        return Verdict.BAD
    state = nonce_manager.open(credentials.nonce, credentials.realm, now, source=source)
    expected = _expected_response(
        hash_fn=hash_fn,
        algorithm=credentials.algorithm,
        ha1_hex=ha1_hex,
        nonce=credentials.nonce,
        method=method,
        uri=credentials.uri,
        qop=credentials.qop,
        cnonce=credentials.cnonce,
        nc=credentials.nc,
    )
    if not hmac.compare_digest(expected.encode(), credentials.response.lower().encode()):
        return Verdict.BAD
    if state.verdict is not Verdict.OK:
        # Right answer, unusable nonce. One that is not ours (another process's, or
        # made up by a client that knows the password) is challenged again too.
        return Verdict.STALE if state.verdict is Verdict.BAD else state.verdict
    return nonce_manager.counts.use(state.key, state.issued_ms, count, now)


def authorization(  # noqa: PLR0917 (mirrors the order of the digest fields)
    challenge_value: str,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
) -> str:
    """The ``Authorization`` value answering one challenge (client side)."""
    challenge = parse_challenge(challenge_value)
    algorithm = challenge.get("algorithm", "MD5")
    hash_fn = _hash_for(algorithm)
    realm, nonce = challenge["realm"], challenge["nonce"]
    offered = {item.strip() for item in challenge.get("qop", "").split(",") if item.strip()}
    if offered and "auth" not in offered:
        raise LocalProtocolError(f"challenge offers no supported qop: {sorted(offered)}")
    qop = "auth" if offered else None
    nc_text = f"{nc:08x}"
    response = _expected_response(
        hash_fn=hash_fn,
        algorithm=algorithm,
        ha1_hex=ha1(username, realm, password, algorithm),
        nonce=nonce,
        method=method,
        uri=uri,
        qop=qop,
        cnonce=cnonce,
        nc=nc_text,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={algorithm}",
    ]
    if qop is not None:
        parts += [f"cnonce={_quote(cnonce)}", f"qop={qop}", f"nc={nc_text}"]
    elif algorithm.upper().endswith("-SESS"):
        parts.append(f"cnonce={_quote(cnonce)}")
    if "opaque" in challenge:
        parts.append(f"opaque={_quote(challenge['opaque'])}")
    return "Digest " + ", ".join(parts)
