"""Digest authentication for SIP: RFC 3261 §22 with the RFC 7616 algorithms (RFC 8760).

Server side: :func:`challenge_headers` builds the ``WWW-Authenticate`` /
``Proxy-Authenticate`` values, :func:`parse_credentials` reads an ``Authorization`` /
``Proxy-Authorization`` value and :func:`verify` checks it against a stored HA1.
Nonces are stateless (:class:`NonceManager`): a timestamp and a salt signed with
HMAC-SHA256 over the realm, so any worker holding the secret can check them without
shared state. Stateless nonces do not track ``nc``; replay within the nonce lifetime is
bounded by the lifetime, not prevented.

Client side: :func:`authorization` answers a challenge (towards providers, and in tests).

Nothing here does I/O or reads a clock: ``now`` is passed in by the caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from tollguard.sip.errors import LocalProtocolError

__all__ = [
    "ALGORITHMS",
    "Credentials",
    "NonceManager",
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
    """Outcome of :func:`verify`."""

    OK = "ok"
    # Right password, old nonce: challenge again with stale=true (RFC 7616 §3.3).
    STALE = "stale"
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


class NonceManager:
    """Stateless nonces: ``base64url(timestamp_ms | salt | HMAC-SHA256(secret, ...)[:16])``.

    The MAC covers the timestamp, the salt and the realm, so a nonce issued for one realm
    is useless in another and cannot be forged or have its age changed.
    """

    __slots__ = ("_lifetime", "_secret")

    _TS_LEN = 8
    _SALT_LEN = 8
    _MAC_LEN = 16

    def __init__(self, secret: bytes, lifetime_s: float) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if lifetime_s <= 0:
            raise ValueError("nonce lifetime must be positive")
        self._secret = secret
        self._lifetime = lifetime_s

    def _mac(self, stamp: bytes, realm: str) -> bytes:
        return hmac.new(self._secret, stamp + realm.encode(), hashlib.sha256).digest()[
            : self._MAC_LEN
        ]

    def make(self, realm: str, now: float, *, salt: bytes | None = None) -> str:
        """A fresh nonce for ``realm`` issued at ``now`` (monotonic seconds)."""
        ms = max(0, int(now * 1000))
        stamp = ms.to_bytes(self._TS_LEN, "big") + (salt or secrets.token_bytes(self._SALT_LEN))
        raw = stamp + self._mac(stamp, realm)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def check(self, nonce: str, realm: str, now: float) -> Verdict:
        """OK if ours and fresh, STALE if ours and expired, BAD otherwise.

        A nonce dated in the future was issued by an earlier process (the monotonic clock
        restarted); it is authentic, so it is reported STALE and the client retries.
        """
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except ValueError:
            return Verdict.BAD
        if len(raw) != self._TS_LEN + self._SALT_LEN + self._MAC_LEN:
            return Verdict.BAD
        stamp, mac = raw[: -self._MAC_LEN], raw[-self._MAC_LEN :]
        if not hmac.compare_digest(mac, self._mac(stamp, realm)):
            return Verdict.BAD
        issued = int.from_bytes(stamp[: self._TS_LEN], "big") / 1000
        if issued > now + 1 or now - issued > self._lifetime:
            return Verdict.STALE
        return Verdict.OK


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
) -> Verdict:
    """Check credentials against the stored ``ha1_hex`` for ``credentials.algorithm``.

    The response is checked before the nonce's age so that STALE is only reported to a
    client that knows the password (RFC 7616 §3.3). ``auth-int`` and unknown algorithms
    are BAD. The caller checks that ``credentials.uri`` names the request it came with.
    """
    hash_fn = _HASHES.get(credentials.algorithm.upper())
    if hash_fn is None or credentials.qop not in (None, "auth"):
        return Verdict.BAD
    if credentials.algorithm.upper().endswith("-SESS") and credentials.cnonce is None:
        return Verdict.BAD
    nonce_verdict = nonce_manager.check(credentials.nonce, credentials.realm, now)
    if nonce_verdict is Verdict.BAD:
        return Verdict.BAD
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
    return nonce_verdict


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
