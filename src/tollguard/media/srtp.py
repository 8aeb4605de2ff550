"""SDES-SRTP (RFC 4568): the ``a=crypto`` attribute and the SRTP sessions it keys.

The relay terminates SRTP on a leg whose peer offers it, and only when that peer's
signalling runs over TLS: SDES carries the master keys in the session description
itself, so over UDP or TCP anyone on the path could read them. The packet work is
libsrtp's, through ``pylibsrtp``.

Supported suites: ``AES_CM_128_HMAC_SHA1_80`` and ``AES_CM_128_HMAC_SHA1_32`` (RFC 4568
§6.2), with one master key of 16 bytes and a 14-byte salt, no MKI and the default
lifetime; a crypto line asking for anything else is skipped.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from pylibsrtp import Policy, Session

__all__ = ["SUITES", "Crypto", "parse_crypto", "session"]

_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
SUITES = tuple(_PROFILES)
_KEY_SALT_BYTES = 30


@dataclass(frozen=True, slots=True)
class Crypto:
    """One usable ``a=crypto:<tag> <suite> inline:<key||salt>`` line."""

    tag: int
    suite: str
    key: bytes  # master key and salt, 30 bytes

    def attribute_value(self) -> str:
        inline = base64.b64encode(self.key).decode()
        return f"{self.tag} {self.suite} inline:{inline}"

    @classmethod
    def fresh(cls, tag: int, suite: str) -> Crypto:
        """A new random master key and salt for ``suite`` (``os.urandom``)."""
        return cls(tag, suite, os.urandom(_KEY_SALT_BYTES))


def parse_crypto(value: str) -> Crypto | None:
    """The crypto attribute's value, or None when Tollguard cannot use it.

    ``value`` is ``<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568 §9.1);
    lines with several keys, an MKI, a lifetime other than the default or session
    parameters are not used.
    """
    parts = value.split()
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in _PROFILES:
        return None
    method, _, info = parts[2].partition(":")
    if method != "inline" or ";" in info:
        return None
    key_salt, _, extra = info.partition("|")
    if extra:
        return None  # a lifetime or an MKI
    try:
        key = base64.b64decode(key_salt, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(key) != _KEY_SALT_BYTES:
        return None
    return Crypto(int(parts[0]), parts[1], key)


def session(suite: str, key: bytes, outbound: bool) -> Session:
    """An SRTP session that protects (``outbound``) or unprotects with ``key``."""
    policy = Policy(
        key=key,
        ssrc_type=Policy.SSRC_ANY_OUTBOUND if outbound else Policy.SSRC_ANY_INBOUND,
        srtp_profile=_PROFILES[suite],
    )
    return Session(policy=policy)
