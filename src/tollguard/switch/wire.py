"""Bytes of the messages the switch originates, built from pre-rendered header blocks.

Parsing goes through :func:`tollguard.sip.parse_message` once per received message. What
the switch sends is rendered here directly: a B2BUA writes the same few header blocks
over and over (the customer leg's Via/From/To/Call-ID/CSeq for every response, our Via
and dialog identifiers for every request on the provider leg), so each call renders them
once and each message is one join. Header names are canonical and the message ends with
Content-Length as RFC 3261 §20.14 requires on streams. Text copied from a received
message (Via, From, To) may hold bytes that were not UTF-8; the parser keeps them as
surrogate escapes and they go back out byte for byte.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass

from tollguard.sip.status import reason_phrase
from tollguard.transport import Address

__all__ = [
    "IdFactory",
    "Peer",
    "header_lines",
    "reason_phrase",
    "render_request",
    "render_response",
    "uri_of",
]

_CRLF = "\r\n"

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message goes: address, transport and (for streams) connection."""

    address: Address
    transport: str
    connection: int = 0


class IdFactory:
    """Call-IDs, tags and branches: unique per process and unguessable across processes.

    A random per-process token and a counter keep generation to one format call; the
    token lets the switch recognise its own branch in a Via (loop detection, RFC 3261
    §16.3 item 4).
    """

    __slots__ = ("_counter", "branch_prefix", "token")

    def __init__(self) -> None:
        self.token = os.urandom(6).hex()
        self.branch_prefix = f"{BRANCH_MAGIC}-tg{self.token}-"
        self._counter = itertools.count(1)

    def call_id(self) -> str:
        return f"{self.token}-{next(self._counter):x}"

    def tag(self) -> str:
        return f"{self.token[:6]}{next(self._counter):x}"

    def branch(self) -> str:
        return f"{self.branch_prefix}{next(self._counter):x}"


def render_response(
    status: int,
    reason: str,
    head: str,
    extra: Iterable[str] = (),
    *,
    body: bytes = b"",
    content_type: str | None = None,
) -> bytes:
    """A response; ``head`` is the rendered Via/From/To/Call-ID/CSeq block (CRLF-ended)."""
    return _render(f"SIP/2.0 {status} {reason}\r\n", head, extra, body, content_type)


def render_request(
    method: str,
    uri: str,
    head: str,
    extra: Iterable[str] = (),
    *,
    body: bytes = b"",
    content_type: str | None = None,
) -> bytes:
    """A request; ``head`` holds Via/Max-Forwards/From/To/Call-ID/CSeq (CRLF-ended)."""
    return _render(f"{method} {uri} SIP/2.0\r\n", head, extra, body, content_type)


def _render(
    start_line: str, head: str, extra: Iterable[str], body: bytes, content_type: str | None
) -> bytes:
    parts = [start_line, head]
    if extra:
        parts.extend([f"{line}\r\n" for line in extra])
    if body and content_type:
        parts.append(f"Content-Type: {content_type}\r\n")
    parts.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(parts).encode("utf-8", "surrogateescape") + body


def uri_of(name_addr: str) -> str:
    """The URI inside a Contact/Route/Record-Route value (``<uri>;params`` or ``uri``)."""
    start = name_addr.find("<")
    if start >= 0:
        end = name_addr.find(">", start)
        return name_addr[start + 1 : end if end > 0 else None]
    return name_addr.split(";", 1)[0].strip()


def header_lines(name: str, values: Iterable[str]) -> str:
    return "".join([f"{name}: {value}{_CRLF}" for value in values])
