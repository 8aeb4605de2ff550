"""The receive boundary: bytes in, messages out, and who is to blame.

:func:`parse_message` frames and parses one datagram; :class:`StreamFramer`
cuts a TCP/TLS byte stream into messages; :func:`validate_request` applies the
rules of RFC 3261 §8.2 and §16.3 on top of the syntax; :func:`read_message`
does all of it. Internal code raises :class:`LocalProtocolError`; here it
becomes a :class:`RemoteProtocolError` carrying the status to answer with when
the request can be answered (its start line and top Via could be read), or a
:class:`MessageDropped` when nothing useful can be sent back (RFC 3261 §16.3,
§18.1.2, §18.2.1).
"""

from __future__ import annotations

import re
from itertools import islice

from tollguard.sip import grammar
from tollguard.sip.errors import LocalProtocolError, MessageDropped, RemoteProtocolError
from tollguard.sip.headers import (
    COMMON_METHODS,
    CSeq,
    Headers,
    header_key,
    parse_contacts,
    parse_content_length,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_via,
)
from tollguard.sip.message import Request, Response, response_headers
from tollguard.sip.status import reason_phrase
from tollguard.sip.uri import SipUri, parse_uri

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "SUPPORTED_URI_SCHEMES",
    "StreamFramer",
    "error_response",
    "parse_message",
    "read_message",
    "validate_request",
    "validate_response",
]

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
SUPPORTED_URI_SCHEMES = frozenset({"sip", "sips", "tel"})

# RFC 3261 §7.3.1: a line starting with SP/HTAB continues the previous one;
# the fold and the whitespace around it read as one SP.
_FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")

# Validated header names as written -> lookup key. Bounded against peers that
# send endless distinct names.
_NAME_MEMO: dict[str, str] = {}
_NAME_MEMO_MAX = 4096

_MAX_FORWARDS_LIMIT = 255

# Headers the parser checks and pre-parses for the accessors.
_PREPARSED = frozenset({"via", "call-id", "cseq", "from", "to", "max-forwards", "content-length"})

type _Blame = RemoteProtocolError | MessageDropped

# Via and name-addr values already checked: a dialog repeats its From and To, a
# transaction its Via. Bounded, cleared when full.
_GOOD_VIAS: set[str] = set()
_GOOD_NAME_ADDRS: set[str] = set()
_GOOD_MAX = 8192
# Reason phrases nearly every response carries (RFC 3261 §21).
_GOOD_REASONS = frozenset({"Trying", "Ringing", "Session Progress", "OK", "Request Terminated"})


def _check_via(value: str) -> None:
    if value not in _GOOD_VIAS:
        if grammar.FAST_VIA_RE.fullmatch(value) is None:
            parse_via(value)
        _remember(_GOOD_VIAS, value)


def _check_name_addr(value: str) -> None:
    if value not in _GOOD_NAME_ADDRS:
        if grammar.FAST_NAME_ADDR_RE.fullmatch(value) is None:
            parse_name_addr(value)
        _remember(_GOOD_NAME_ADDRS, value)


def _remember(good: set[str], value: str) -> None:
    if len(good) >= _GOOD_MAX:
        good.clear()
    good.add(value)


def _check_name(name: str) -> str:
    key = _NAME_MEMO.get(name)
    if key is None:
        if not grammar.TOKEN_RE.fullmatch(name):
            raise LocalProtocolError(f"invalid header name: {name[:40]!r}")
        key = header_key(name)
        if len(_NAME_MEMO) < _NAME_MEMO_MAX:
            _NAME_MEMO[name] = key
    return key


# Header fields read while parsing: headers, Call-ID, CSeq, Max-Forwards and
# Content-Length. Via, From and To are checked here but built on first access.
type _Head = tuple[Headers, str | None, CSeq | None, int | None, int | None]


def _split_lines(head: str) -> list[str]:
    if "\r\n " in head or "\r\n\t" in head:
        head = _FOLD_RE.sub(" ", head)
    lines = head.split("\r\n")
    breaks = len(lines) - 1
    if head.count("\r") != breaks or head.count("\n") != breaks:
        raise LocalProtocolError("bare CR or LF in the header section")
    return lines


# Whole header lines already read and found valid: the field, its key, and the value
# parsed for CSeq or Max-Forwards/Content-Length. A peer repeats most lines on every
# call (CSeq: 1 INVITE, Max-Forwards, its Contact and User-Agent, Content-Type) and a
# dialog repeats its Via, From, To and Call-ID lines. Bounded in entries and line
# length, cleared when full.
type _Line = tuple[tuple[str, str], str, CSeq | None, int | None]
_LINE_MEMO: dict[str, _Line] = {}
_LINE_MEMO_MAX = 8192
_LINE_MEMO_LINE_MAX = 256


def _read_headers(lines: list[str]) -> _Head:
    items: list[tuple[str, str]] = []
    keys: list[str] = []
    call_id: str | None = None
    cseq: CSeq | None = None
    from_seen = to_seen = False
    max_forwards: int | None = None
    content_length: int | None = None
    memo = _NAME_MEMO
    seen_lines = _LINE_MEMO
    for line in islice(lines, 1, None):
        seen = seen_lines.get(line)
        if seen is not None:
            item, key, seen_cseq, number = seen
            items.append(item)
            keys.append(key)
            if key not in _PREPARSED:
                continue
            # The value is known to be valid: only which field comes first matters.
            if key == "call-id":
                if call_id is None:
                    call_id = item[1]
            elif key == "cseq":
                if cseq is None:
                    cseq = seen_cseq
            elif key == "from":
                from_seen = True
            elif key == "to":
                to_seen = True
            elif key == "max-forwards":
                if max_forwards is None:
                    max_forwards = number
            elif key == "content-length":
                if content_length is not None:
                    raise LocalProtocolError("more than one Content-Length header")
                content_length = number
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise LocalProtocolError(f"header line without ':': {line[:40]!r}")
        known = memo.get(name)
        if known is None:
            name = name.rstrip(" \t")
            known = _check_name(name)
        key = known
        value = value.strip(" \t")
        item = (name, value)
        items.append(item)
        keys.append(key)
        # Whether the value was checked here (a repeated From, say, is not).
        checked = True
        line_cseq: CSeq | None = None
        line_number: int | None = None
        if key not in _PREPARSED:
            pass
        # Via, From and To are only checked: a value of the common shape is known to
        # parse, anything else is parsed in full now so that its fault is found here.
        elif key == "via":
            _check_via(value)
        elif key == "call-id":
            if call_id is None:
                if not grammar.CALLID_RE.fullmatch(value):
                    raise LocalProtocolError(f"malformed Call-ID: {value[:60]!r}")
                call_id = value
            else:
                checked = False
        elif key == "cseq":
            if cseq is None:
                cseq = line_cseq = parse_cseq(value)
            else:
                checked = False
        elif key == "from":
            checked = not from_seen
            if checked:
                from_seen = True
                _check_name_addr(value)
        elif key == "to":
            checked = not to_seen
            if checked:
                to_seen = True
                _check_name_addr(value)
        elif key == "max-forwards":
            if max_forwards is None:
                max_forwards = line_number = parse_max_forwards(value)
            else:
                checked = False
        elif key == "content-length":
            # RFC 4475 §3.3.9: more than one Content-Length is a framing error.
            if content_length is not None:
                raise LocalProtocolError("more than one Content-Length header")
            content_length = line_number = parse_content_length(value)
        if checked and len(line) <= _LINE_MEMO_LINE_MAX:
            if len(seen_lines) >= _LINE_MEMO_MAX:
                seen_lines.clear()
            seen_lines[line] = (item, key, line_cseq, line_number)
    return (
        Headers._trusted(tuple(items), tuple(keys)),
        call_id,
        cseq,
        max_forwards,
        content_length,
    )


def _body(data: bytes, body_start: int, content_length: int | None) -> bytes:
    if body_start < 0:
        raise LocalProtocolError("header section not ended by an empty line")
    if content_length is None:
        # RFC 3261 §18.3: without Content-Length a datagram's body runs to its end.
        return data[body_start:]
    available = len(data) - body_start
    if content_length > available:
        raise LocalProtocolError(
            f"Content-Length {content_length} exceeds the {available} octets received"
        )
    # RFC 3261 §18.3 / RFC 4475 §3.1.1.8: octets past Content-Length are discarded.
    return data[body_start : body_start + content_length]


def _parse_request(start_line: str, lines: list[str], data: bytes, body_start: int) -> Request:
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF. Exactly one SP
    # each: extra or trailing SP is malformed (RFC 4475 §3.1.2.9, §3.1.2.10), and
    # so is LWS inside the URI (§3.1.2.8).
    parts = start_line.split(" ")
    if len(parts) != 3:
        raise LocalProtocolError(f"malformed request line: {start_line[:80]!r}")
    method, uri_text, version = parts
    if method not in COMMON_METHODS and not grammar.METHOD_RE.fullmatch(method):
        raise LocalProtocolError(f"invalid method: {method[:40]!r}")
    _check_version(version)
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI.
        raise LocalProtocolError("Request-URI carries URI headers")
    headers, call_id, cseq, max_forwards, content_length = _read_headers(lines)
    body = _body(data, body_start, content_length)
    return Request._parsed(method, uri, headers, body, (call_id, cseq, max_forwards))


def _check_version(version: str) -> None:
    if version == "SIP/2.0":
        return
    if not grammar.SIP_VERSION_RE.fullmatch(version):
        raise LocalProtocolError(f"malformed SIP version: {version[:20]!r}")
    if version.upper() != "SIP/2.0":
        raise LocalProtocolError(f"SIP version not supported: {version}", status_hint=505)


def _parse_response(start_line: str, lines: list[str], data: bytes, body_start: int) -> Response:
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
    parts = start_line.split(" ", 2)
    if len(parts) != 3:
        raise LocalProtocolError(f"malformed status line: {start_line[:80]!r}")
    version, code, reason = parts
    _check_version(version)
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
        raise LocalProtocolError(f"invalid status code: {code[:20]!r}")
    if reason not in _GOOD_REASONS and not grammar.REASON_PHRASE_RE.fullmatch(reason):
        raise LocalProtocolError("control characters in the reason phrase")
    headers, call_id, cseq, max_forwards, content_length = _read_headers(lines)
    body = _body(data, body_start, content_length)
    return Response._parsed(int(code), reason, headers, body, (call_id, cseq, max_forwards))


def _lenient_headers(lines: list[str]) -> Headers:
    """The readable header lines of a message that failed to parse."""
    items: list[tuple[str, str]] = []
    for index in range(1, len(lines)):
        name, colon, value = lines[index].partition(":")
        name = name.rstrip(" \t")
        value = value.strip(" \t")
        if colon and grammar.TOKEN_RE.fullmatch(name) and "\r" not in value and "\n" not in value:
            items.append((name, value))
    return Headers(items)


def _blame_request(start_line: str, lines: list[str], error: LocalProtocolError) -> _Blame:
    """Decide whether a broken request can be answered (RFC 3261 §8.2, §18.2.1)."""
    method = start_line.partition(" ")[0]
    if not grammar.METHOD_RE.fullmatch(method):
        return MessageDropped(f"unreadable request line: {error.message}")
    headers = _lenient_headers(lines)
    top = headers.get("Via")
    if top is None or grammar.VIA_PARM_RE.match(top) is None:
        return MessageDropped(f"request without a usable Via: {error.message}")
    if method == "ACK":
        # RFC 3261 §17.2.1: an ACK is never answered.
        return MessageDropped(f"malformed ACK: {error.message}")
    return RemoteProtocolError(error.message, error.status_hint, headers=headers)


def parse_message(data: bytes) -> Request | Response:
    """Parse one complete message received as a datagram (or framed from a stream).

    Raises :class:`RemoteProtocolError` (with the status to answer and the
    readable headers) for a broken request that can be answered, and
    :class:`MessageDropped` for anything else that cannot be used.
    """
    start = 0
    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    while data.startswith(b"\r\n", start):
        start += 2
    head_end = data.find(b"\r\n\r\n", start)
    if head_end >= 0:
        head_bytes = data[start:head_end]
        body_start = head_end + 4
    elif data.endswith(b"\r\n"):
        # Headers with the final empty line missing: nothing follows them.
        head_bytes = data[start:-2]
        body_start = len(data)
    else:
        head_bytes = data[start:]
        body_start = -1
    if not head_bytes:
        raise MessageDropped("empty message")
    head = head_bytes.decode("utf-8", "surrogateescape")
    try:
        lines = _split_lines(head)
    except LocalProtocolError as exc:
        raise MessageDropped(exc.message) from exc
    start_line = lines[0]
    if start_line[:4].upper() == "SIP/":
        try:
            return _parse_response(start_line, lines, data, body_start)
        except LocalProtocolError as exc:
            raise MessageDropped(f"unusable response: {exc.message}") from exc
    try:
        return _parse_request(start_line, lines, data, body_start)
    except LocalProtocolError as exc:
        raise _blame_request(start_line, lines, exc) from exc


_SINGLE = (("call-id", "Call-ID"), ("from", "From"), ("to", "To"), ("cseq", "CSeq"))
_AT_MOST_ONE = (
    ("max-forwards", "Max-Forwards"),
    ("content-type", "Content-Type"),
    ("content-length", "Content-Length"),
)


def validate_request(
    request: Request, *, supported_schemes: frozenset[str] = SUPPORTED_URI_SCHEMES
) -> None:
    """Check RFC 3261 §8.2 / §16.3 rules a parsed request must also meet.

    Raises :class:`MessageDropped` if there is no Via to answer along, else
    :class:`RemoteProtocolError` with the status to answer: 400 for a
    missing, repeated or out-of-range mandatory header, a CSeq method that is not
    the request's, a malformed Contact or Date, a body without Content-Type; 416
    for a Request-URI scheme outside ``supported_schemes`` (RFC 3261 §8.2.2.1).
    Max-Forwards may be absent (RFC 2543 peers, RFC 4475 §3.4.1).
    """
    headers = request.headers

    def refuse(message: str, status: int = 400) -> RemoteProtocolError:
        return RemoteProtocolError(message, status, headers=headers)

    # tuple.count runs in C; a handful of keys are asked about.
    count = headers._keys.count
    if not count("via"):
        # No Via, no way to route an answer (RFC 3261 §18.2.2).
        raise MessageDropped("request without Via")
    for key, name in _SINGLE:
        found = count(key)
        if found == 0:
            raise refuse(f"missing {name} header")
        if found > 1:
            raise refuse(f"more than one {name} header")
    for key, name in _AT_MOST_ONE:
        if count(key) > 1:
            raise refuse(f"more than one {name} header")
    try:
        cseq = request.cseq
        _ = request.call_id
        if not request._checked:
            _ = request.from_, request.to, request.vias
        max_forwards = request.max_forwards
        if count("contact"):
            for value in headers.values("Contact"):
                if value in _GOOD_NAME_ADDRS or grammar.FAST_NAME_ADDR_RE.fullmatch(value):
                    continue  # one name-addr known to parse
                contacts = parse_contacts(value)
                if contacts == "*" and request.method != "REGISTER":
                    raise LocalProtocolError("Contact '*' outside REGISTER")
        date = headers.get("Date")
        if date is not None and not grammar.SIP_DATE_RE.fullmatch(date):
            raise LocalProtocolError(f"malformed Date: {date[:40]!r}")
    except LocalProtocolError as exc:
        raise refuse(exc.message, exc.status_hint) from exc
    if max_forwards is not None and max_forwards > _MAX_FORWARDS_LIMIT:
        raise refuse(f"Max-Forwards out of range: {max_forwards}")
    # RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.17: CSeq method is the request's method.
    if cseq.method != request.method:
        raise refuse(f"CSeq method {cseq.method} does not match the request method")
    if request.body and request.content_type is None:
        # RFC 3261 §20.15: a non-empty body MUST come with its Content-Type.
        raise refuse("message body without Content-Type")
    if request.uri_scheme not in supported_schemes:
        raise refuse(f"unsupported Request-URI scheme: {request.uri_scheme}", 416)


def validate_response(response: Response) -> None:
    """Check that a parsed response can be matched to a transaction (RFC 3261 §8.1.3.3).

    Raises :class:`MessageDropped`: a response is never answered.
    """
    count = response.headers._keys.count
    if not count("via"):
        raise MessageDropped("response without Via")
    for key, name in _SINGLE:
        if count(key) != 1:
            raise MessageDropped(f"response needs exactly one {name} header")
    try:
        _ = response.cseq, response.call_id
        if not response._checked:
            _ = response.from_, response.to
    except LocalProtocolError as exc:
        raise MessageDropped(f"unusable response: {exc.message}") from exc


def read_message(
    data: bytes, *, supported_schemes: frozenset[str] = SUPPORTED_URI_SCHEMES
) -> Request | Response:
    """Parse and validate one received message: the whole receive boundary."""
    message = parse_message(data)
    if isinstance(message, Request):
        validate_request(message, supported_schemes=supported_schemes)
    else:
        validate_response(message)
    return message


_UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e]")
_MAX_REASON = 100


def error_response(error: RemoteProtocolError, *, to_tag: str | None = None) -> Response | None:
    """The response that answers ``error``, or ``None`` if its headers are unknown.

    The reason phrase names the problem (RFC 3261 §21.4.1), cut to printable
    ASCII and a bounded length since it echoes what the peer sent.
    """
    if error.headers is None:
        return None
    reason = reason_phrase(error.status_code)
    if error.status_code == 400:
        reason = _UNPRINTABLE_RE.sub("?", f"Bad Request - {error.message}")[:_MAX_REASON]
    headers = response_headers(error.headers, error.status_code, to_tag)
    return Response(error.status_code, reason, headers)


def _framing_error(head: bytes, message: str, status: int = 400) -> RemoteProtocolError:
    """A framing error, carrying the headers read so far when the request can be answered.

    ``head`` is the start of the message up to where framing failed; a line cut off
    there is left out. A request whose start line and Via, From, To, Call-ID and CSeq
    could be read gets ``status`` (513 for a message too large, RFC 3261 §21.5.14);
    anything else (a response, an ACK, a request without those headers) carries no
    headers and is not answered.
    """
    text = head.decode("utf-8", "surrogateescape")
    complete, _, _ = text.rpartition("\r\n")
    lines = _FOLD_RE.sub(" ", complete).split("\r\n") if complete else []
    if not lines or lines[0][:4].upper() == "SIP/":
        return RemoteProtocolError(message, status)
    blame = _blame_request(lines[0], lines, LocalProtocolError(message, status_hint=status))
    if isinstance(blame, MessageDropped) or blame.headers is None:
        return RemoteProtocolError(message, status)
    if not all(blame.headers.get(name) for name in ("From", "To", "Call-ID", "CSeq")):
        return RemoteProtocolError(message, status)
    return blame


class StreamFramer:
    """Cut a TCP/TLS byte stream into messages by Content-Length (RFC 3261 §18.3).

    :meth:`feed` returns every complete message buffered so far. CRLFs between
    messages are skipped (RFC 3261 §7.5); each double-CRLF keep-alive ping
    (RFC 5626 §4.4.1) is counted in :attr:`pings` so the transport can answer it
    with a single CRLF pong. After a :class:`RemoteProtocolError` the stream
    cannot be resynchronized: the caller answers it when the error carries headers
    (a request that is too large gets 513) and closes the connection.
    """

    __slots__ = ("_buffer", "max_message_size", "pings")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self.max_message_size = max_message_size
        self.pings = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_pings(self) -> int:
        """How many pings arrived since the last call (and reset the count)."""
        pings, self.pings = self.pings, 0
        return pings

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        while True:
            while buffer.startswith(b"\r\n"):
                if buffer.startswith(b"\r\n\r\n"):
                    self.pings += 1
                    del buffer[:4]
                else:
                    del buffer[:2]
            if not buffer:
                return messages
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(buffer) > self.max_message_size:
                    head = bytes(buffer[: self.max_message_size])
                    raise _framing_error(head, "header section too large", 513)
                return messages
            head = bytes(buffer[: head_end + 2])
            try:
                length = self._content_length(head)
            except RemoteProtocolError as exc:
                raise _framing_error(head, exc.message) from exc
            total = head_end + 4 + length
            if total > self.max_message_size:
                raise _framing_error(head, f"message of {total} octets is too large", 513)
            if len(buffer) < total:
                return messages
            messages.append(bytes(buffer[:total]))
            del buffer[:total]

    @staticmethod
    def _content_length(head: bytes) -> int:
        text = head.decode("utf-8", "surrogateescape")
        if "\r\n " in text or "\r\n\t" in text:
            text = _FOLD_RE.sub(" ", text)
        found: int | None = None
        for line in text.split("\r\n")[1:]:
            name, colon, value = line.partition(":")
            if colon and name.rstrip(" \t").lower() in ("content-length", "l"):
                try:
                    length = parse_content_length(value)
                except LocalProtocolError as exc:
                    raise RemoteProtocolError(exc.message) from exc
                if found is not None and found != length:
                    raise RemoteProtocolError("conflicting Content-Length headers")
                found = length
        if found is None:
            # RFC 3261 §18.3: Content-Length MUST be present on a stream transport.
            raise RemoteProtocolError("missing Content-Length on a stream transport")
        return found
