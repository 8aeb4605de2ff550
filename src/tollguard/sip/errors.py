"""Errors raised by the sans-IO SIP layer.

::

    SipError                      root of every error raised by tollguard.sip
     ├── LocalProtocolError       a value does not fit the grammar or the rules;
     │                            raised by builders and low-level parsers
     ├── RemoteProtocolError      the peer sent something we must refuse; carries
     │                            the status code to answer with (400, 416, 505, ...)
     │                            and, when known, the headers needed to route it
     └── MessageDropped           nothing useful can be answered (bad responses,
                                  garbage, an unroutable request): drop it silently

Internal code raises :class:`LocalProtocolError`. The receive boundary
(:mod:`tollguard.sip.parser`) decides who is to blame and turns it into a
:class:`RemoteProtocolError` or a :class:`MessageDropped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollguard.sip.headers import Headers

__all__ = ["LocalProtocolError", "MessageDropped", "RemoteProtocolError", "SipError"]


class SipError(Exception):
    """Root of every error raised by :mod:`tollguard.sip`."""


class LocalProtocolError(SipError):
    """A value that does not fit the SIP grammar or rules.

    ``status_hint`` is the status the receive boundary answers with when the value
    came from a peer (400 unless the rule says otherwise, e.g. 505).
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = status_hint


class RemoteProtocolError(SipError):
    """A received message that must be refused with ``status_code``.

    ``headers`` holds the received header fields when they could be read, so a
    response can be routed back (RFC 3261 §8.2.6.1); ``None`` otherwise.
    """

    def __init__(
        self, message: str, status_code: int = 400, *, headers: Headers | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.headers = headers


class MessageDropped(SipError):
    """A received message that cannot be answered and is discarded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
