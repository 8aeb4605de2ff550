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

import os
import secrets
import weakref
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
    """Call-IDs, tags and branches: random values that count nothing.

    RFC 3261 §19.3 asks for at least 32 random bits in a tag and a globally unique
    Call-ID; a counter in them would tell every peer how many calls the switch carries.
    Tags and branches carry 64 bits from the operating system's CSPRNG, Call-IDs 128.
    The bits are drawn in batches (one ``os.urandom`` call per 256 values), which halves
    the cost of an id. Each branch starts with a random per-process marker so that the
    switch recognises its own Via in a request (loop detection, RFC 3261 §16.3 item 4);
    the marker tells a peer nothing but which process sent the request.
    """

    __slots__ = ("__weakref__", "_pool", "branch_prefix", "marker")

    def __init__(self) -> None:
        self.marker = secrets.token_hex(6)
        self.branch_prefix = f"{BRANCH_MAGIC}-tg{self.marker}-"
        self._pool: list[str] = []
        _FACTORIES.add(self)

    def _random64(self) -> str:
        pool = self._pool
        if not pool:
            text = os.urandom(8 * _POOL_SIZE).hex()
            pool.extend([text[i : i + 16] for i in range(0, len(text), 16)])
        return pool.pop()

    def call_id(self) -> str:
        return self._random64() + self._random64()

    def tag(self) -> str:
        return self._random64()

    def branch(self) -> str:
        return self.branch_prefix + self._random64()

    def forget_pool(self) -> None:
        """Drop the values drawn but not used yet (a forked child must not reuse them)."""
        self._pool.clear()


# Random 64-bit values drawn per refill of a factory's pool.
_POOL_SIZE = 256
_FACTORIES: weakref.WeakSet[IdFactory] = weakref.WeakSet()


def _after_fork() -> None:
    for factory in list(_FACTORIES):
        factory.forget_pool()


os.register_at_fork(after_in_child=_after_fork)


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
