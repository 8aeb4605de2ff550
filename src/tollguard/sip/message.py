"""SIP messages as values: :class:`Request`, :class:`Response` and their serializer.

A message is a frozen, slotted dataclass. The accessors the switch reads on every
message (``call_id``, ``cseq``, ``from_``, ``to``, ``vias``, ``max_forwards``)
are computed once and cached. The parser fills the cheap ones (Call-ID, CSeq,
Max-Forwards) while it validates; Via, From and To it only checks, and they are
built on first access, since a B2BUA reads them on few of the messages it gets.
``dataclasses.replace`` resets the caches.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tollguard.sip import grammar
from tollguard.sip.errors import LocalProtocolError
from tollguard.sip.headers import (
    COMMON_METHODS,
    CSeq,
    Headers,
    NameAddr,
    Via,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_via,
)
from tollguard.sip.status import reason_phrase
from tollguard.sip.uri import SipUri, TelUri, Uri

__all__ = ["Message", "Request", "Response", "make_response", "response_headers"]

logger = logging.getLogger(__name__)

SIP_2_0 = "SIP/2.0"

# Cache marker for Max-Forwards: not computed yet (absent is None).
_UNSET = -1


def _cache[T](message: object, slot: str, value: T) -> T:
    object.__setattr__(message, slot, value)
    return value


class _Accessors:
    """Accessors shared by requests and responses; the slots live in the subclasses."""

    __slots__ = ()

    if TYPE_CHECKING:
        headers: Headers
        body: bytes
        _call_id: str | None
        _cseq: CSeq | None
        _from: NameAddr | None
        _to: NameAddr | None
        _vias: tuple[Via, ...] | None
        _max_forwards: int | None
        _checked: bool

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise LocalProtocolError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        value = self._call_id
        if value is None:
            value = _cache(self, "_call_id", self._required("Call-ID").strip(" \t"))
        return value

    @property
    def cseq(self) -> CSeq:
        value = self._cseq
        if value is None:
            value = _cache(self, "_cseq", parse_cseq(self._required("CSeq")))
        return value

    @property
    def from_(self) -> NameAddr:
        value = self._from
        if value is None:
            value = _cache(self, "_from", parse_name_addr(self._required("From")))
        return value

    @property
    def to(self) -> NameAddr:
        value = self._to
        if value is None:
            value = _cache(self, "_to", parse_name_addr(self._required("To")))
        return value

    @property
    def vias(self) -> tuple[Via, ...]:
        """Every Via element, top (most recent) first; empty if there is none."""
        value = self._vias
        if value is None:
            vias: list[Via] = []
            for raw in self.headers.values("Via"):
                vias.extend(parse_via(raw))
            value = _cache(self, "_vias", tuple(vias))
        return value

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise LocalProtocolError("missing Via header")
        return vias[0]

    @property
    def max_forwards(self) -> int | None:
        value = self._max_forwards
        if value == _UNSET:
            raw = self.headers.get("Max-Forwards")
            value = _cache(self, "_max_forwards", None if raw is None else parse_max_forwards(raw))
        return value

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")


@dataclass(frozen=True, slots=True)
class Request(_Accessors):
    """A SIP request. ``uri`` is the Request-URI."""

    method: str
    uri: Uri
    headers: Headers
    body: bytes = b""
    version: str = SIP_2_0
    _call_id: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _cseq: CSeq | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _from: NameAddr | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _to: NameAddr | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _vias: tuple[Via, ...] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    _max_forwards: int | None = field(
        default=_UNSET, init=False, repr=False, compare=False, hash=False
    )
    # Set by the parser: Via, From and To are known to parse.
    _checked: bool = field(default=False, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.method not in COMMON_METHODS and not grammar.TOKEN_RE.fullmatch(self.method):
            raise LocalProtocolError(f"invalid method: {self.method!r}")
        if isinstance(self.uri, SipUri) and self.uri.headers:
            # RFC 3261 §19.1.1: URI headers never travel in a Request-URI.
            raise LocalProtocolError("Request-URI carries URI headers")

    @classmethod
    def _parsed(
        cls,
        method: str,
        uri: Uri,
        headers: Headers,
        body: bytes,
        cached: tuple[str | None, CSeq | None, int | None],
    ) -> Request:
        """Build from parts the parser has checked, with its cached values."""
        request = object.__new__(cls)
        _set_parsed(request, headers, body, cached)
        setter = object.__setattr__
        setter(request, "method", method)
        setter(request, "uri", uri)
        return request

    @property
    def uri_scheme(self) -> str:
        if isinstance(self.uri, TelUri):
            return "tel"
        return self.uri.scheme

    def with_headers(self, headers: Headers) -> Request:
        return dataclasses.replace(self, headers=headers)

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def to_bytes(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} {self.version}\r\n", self.headers, self.body)


@dataclass(frozen=True, slots=True)
class Response(_Accessors):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = SIP_2_0
    _call_id: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _cseq: CSeq | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _from: NameAddr | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _to: NameAddr | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _vias: tuple[Via, ...] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )
    _max_forwards: int | None = field(
        default=_UNSET, init=False, repr=False, compare=False, hash=False
    )
    # Set by the parser: Via, From and To are known to parse.
    _checked: bool = field(default=False, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise LocalProtocolError(f"status code out of range: {self.status}")
        if "\r" in self.reason or "\n" in self.reason:
            raise LocalProtocolError("CR or LF in a reason phrase")

    @classmethod
    def _parsed(
        cls,
        status: int,
        reason: str,
        headers: Headers,
        body: bytes,
        cached: tuple[str | None, CSeq | None, int | None],
    ) -> Response:
        """Build from parts the parser has checked, with its cached values."""
        response = object.__new__(cls)
        _set_parsed(response, headers, body, cached)
        setter = object.__setattr__
        setter(response, "status", status)
        setter(response, "reason", reason)
        return response

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    def with_headers(self, headers: Headers) -> Response:
        return dataclasses.replace(self, headers=headers)

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def to_bytes(self) -> bytes:
        return _serialize(
            f"{self.version} {self.status} {self.reason}\r\n", self.headers, self.body
        )


Message = Request | Response


def _set_parsed(
    message: Request | Response,
    headers: Headers,
    body: bytes,
    cached: tuple[str | None, CSeq | None, int | None],
) -> None:
    # Every field shared by Request and Response, as the dataclass __init__ would set
    # them, plus what the parser read: skips __init__ and __post_init__ on a message
    # whose parts are already checked.
    call_id, cseq, max_forwards = cached
    setter = object.__setattr__
    setter(message, "headers", headers)
    setter(message, "body", body)
    setter(message, "version", SIP_2_0)
    setter(message, "_call_id", call_id)
    setter(message, "_cseq", cseq)
    setter(message, "_from", None)
    setter(message, "_to", None)
    setter(message, "_vias", None)
    setter(message, "_max_forwards", max_forwards)
    setter(message, "_checked", True)


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    # RFC 3261 §7.4.1 / §18.3: Content-Length always tells the real body size,
    # whatever a builder or a peer put there. The first one stays in place.
    parts = [start_line]
    length_done = False
    for key, (name, value) in zip(headers._keys, headers._items, strict=True):
        if key != "content-length":
            parts.append(f"{name}: {value}\r\n")
        elif not length_done:
            length_done = True
            parts.append(f"{name}: {len(body)}\r\n")
    if not length_done:
        parts.append(f"Content-Length: {len(body)}\r\n")
    parts.append("\r\n")
    head = "".join(parts).encode("utf-8", "surrogateescape")
    return head + body if body else head


def response_headers(
    request_headers: Headers,
    status: int,
    to_tag: str | None = None,
    *,
    to_has_tag: bool | None = None,
) -> Headers:
    """The header fields RFC 3261 §8.2.6.1 copies from a request into its response.

    Works on raw fields so it can answer a request that failed to parse: Via
    elements in order, From, To (with ``to_tag`` added if it has no tag), Call-ID,
    CSeq, and Timestamp on a 100. ``to_has_tag`` saves parsing To again when the
    caller knows.
    """
    items: list[tuple[str, str]] = []
    keys: list[str] = []
    first: dict[str, str] = {}
    for key, (_, value) in zip(request_headers._keys, request_headers._items, strict=True):
        if key == "via":
            items.append(("Via", value))
            keys.append("via")
        elif key in _COPIED and key not in first:
            first[key] = value
    for key, name in _COPIED.items():
        copied = first.get(key)
        if copied is None or (key == "timestamp" and status != 100):
            continue
        if key == "to" and to_tag is not None and status != 100:
            if to_has_tag is None:
                to_has_tag = _has_tag(copied)
            if not to_has_tag:
                if not grammar.TOKEN_RE.fullmatch(to_tag):
                    raise LocalProtocolError(f"invalid tag: {to_tag!r}")
                copied = f"{copied};tag={to_tag}"
        items.append((name, copied))
        keys.append(key)
    return Headers._trusted(tuple(items), tuple(keys))


# Copied into a response in this order, after the Via fields (RFC 3261 §8.2.6.1).
_COPIED = {
    "from": "From",
    "to": "To",
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "timestamp": "Timestamp",
}


def _has_tag(to: str) -> bool:
    try:
        return parse_name_addr(to).tag is not None
    except LocalProtocolError as exc:
        # An unparsable To gets no tag: adding one would not make it valid.
        logger.debug("To left without a tag: %s", exc.message)
        return True


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` as RFC 3261 §8.2.6.1 says, plus ``headers``."""
    to_has_tag: bool | None = None
    if to_tag is not None:
        try:
            to_has_tag = request.to.tag is not None
        except LocalProtocolError as exc:
            logger.debug("To left without a tag: %s", exc.message)
            to_has_tag = True
    base = response_headers(request.headers, status, to_tag, to_has_tag=to_has_tag)
    extra = Headers(headers)
    if len(extra):
        base = Headers._trusted((*base._items, *extra._items), (*base._keys, *extra._keys))
    return Response(status, reason if reason is not None else reason_phrase(status), base, body)
