"""The interface every media backend implements, and the bypass backend.

The switch calls a backend at the moments of a call that carry or change media, naming
the call by a session key (the customer leg's Call-ID):

* ``offer`` when the customer's SDP goes towards the gateways, with what the switch
  knows of the customer's signalling (:class:`Party`: its source address and transport);
* ``answer`` when a gateway's SDP (in a provisional or final response) goes back to the
  customer, with the answering gateway's signalling;
* ``answered`` once the call is answered (a media timeout runs from then on);
* ``reoffer`` for any SDP carried by an in-dialog request or its response (a re-INVITE
  or UPDATE, from either side);
* ``end`` once the call is over; it returns the call's media counters for the CDR.

Each returns the body to send on. A body a backend cannot use (not SDP, malformed) goes
on unchanged with a log line saying why; :class:`MediaRefused` is raised only by
``offer``, for a call whose media the backend will not carry (no free ports, SRTP keys
offered over a transport that exposes them, a media server that does not answer); the
switch then refuses the call with the status it carries. A backend that sees an
answered call's media die calls its ``on_timeout`` with the session key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Bypass",
    "MediaBackend",
    "MediaCounters",
    "MediaError",
    "MediaRefused",
    "Party",
    "is_sdp",
]


class MediaError(Exception):
    """Root of the media package's errors."""


class MediaRefused(MediaError):
    """The backend will not carry this call's media; the call is refused with ``status``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Party:
    """What the switch knows of one side's signalling."""

    host: str  # the customer's source address, or the gateway's configured host
    port: int
    transport: str  # "udp", "tcp" or "tls"


@dataclass(frozen=True, slots=True)
class MediaCounters:
    """A call's media as the backend saw it: packets, bytes and losses each way.

    ``caller_*`` counts RTP the caller sent (and the relay carried), ``callee_*`` what
    the callee sent; ``dropped`` the packets refused (from a stranger, or not RTP);
    ``timed_out`` whether the call ended because its media stopped.
    """

    backend: str
    caller_packets: int = 0
    caller_bytes: int = 0
    caller_lost: int = 0
    callee_packets: int = 0
    callee_bytes: int = 0
    callee_lost: int = 0
    dropped: int = 0
    timed_out: bool = False


def is_sdp(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is a session description (RFC 3264)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/sdp"


class MediaBackend(Protocol):
    name: str
    on_timeout: Callable[[str], None]

    def offer(self, session: str, body: bytes, content_type: str | None, caller: Party) -> bytes:
        """The customer's offer towards the gateways; may raise :class:`MediaRefused`."""
        ...

    def answer(
        self, session: str, body: bytes, content_type: str | None, callee: Party
    ) -> bytes: ...

    def answered(self, session: str) -> None: ...

    def reoffer(
        self, session: str, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes: ...

    def end(self, session: str) -> MediaCounters: ...


class Bypass:
    """Media flows directly between the two sides: every body passes unchanged."""

    __slots__ = ("on_timeout",)

    name = "bypass"

    def __init__(self) -> None:
        self.on_timeout: Callable[[str], None] = lambda session: None

    def offer(self, session: str, body: bytes, content_type: str | None, caller: Party) -> bytes:
        return body

    def answer(self, session: str, body: bytes, content_type: str | None, callee: Party) -> bytes:
        return body

    def answered(self, session: str) -> None:
        return None

    def reoffer(
        self, session: str, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes:
        return body

    def end(self, session: str) -> MediaCounters:
        return MediaCounters(self.name)
