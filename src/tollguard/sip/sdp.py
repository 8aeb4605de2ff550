"""Session descriptions (RFC 8866): parse, serialize, and the edits a B2BUA makes.

:func:`parse_sdp` turns a body into a :class:`SessionDescription`; ``to_bytes()`` writes it
back with CRLF line ends and the field order of RFC 8866 §5, so a canonical body survives
a round trip byte for byte. Errors name the line (``SDP line 4: ...``).

The parser follows RFC 8866 §5: ``v=0`` first, then ``o=`` and ``s=``; a type letter it
does not know rejects the whole description. It accepts LF line ends, which several UAs
send, and does not insist on the exact order of optional session-level lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tollguard.sip.errors import LocalProtocolError

__all__ = [
    "Attribute",
    "Bandwidth",
    "Connection",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "parse_sdp",
    "with_connection_address",
]


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (multicast TTL/count stay in address)."""

    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (kilobits per second for AS/CT, RFC 8866 §5.8)."""

    type: str
    value: int

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start-time> <stop-time>`` with its ``r=`` lines kept verbatim."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` (a flag, value None) or ``a=<name>:<value>``."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """One payload type of an RTP media line (RFC 8866 §6.6, RFC 3551 for static types)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1


# RFC 3551 §6 static payload types that SIP peers use without an rtpmap line.
_STATIC_PAYLOADS: dict[int, RtpMap] = {
    0: RtpMap(0, "PCMU", 8000),
    3: RtpMap(3, "GSM", 8000),
    4: RtpMap(4, "G723", 8000),
    8: RtpMap(8, "PCMA", 8000),
    9: RtpMap(9, "G722", 8000),
    13: RtpMap(13, "CN", 8000),
    18: RtpMap(18, "G729", 8000),
}


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """``m=<media> <port>[/<count>] <proto> <fmt> ...`` and the lines under it."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    port_count: int | None = None
    information: str | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name`` ("" for a flag), or None when absent."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value if attribute.value is not None else ""
        return None

    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> codec for every format of an RTP media line, in offer order.

        Dynamic types without an ``a=rtpmap`` line are left out; static types fall back
        to RFC 3551.
        """
        declared: dict[int, RtpMap] = {}
        for attribute in self.attributes:
            if attribute.name != "rtpmap" or attribute.value is None:
                continue
            parsed = _parse_rtpmap(attribute.value)
            if parsed is not None:
                declared[parsed.payload_type] = parsed
        result: dict[int, RtpMap] = {}
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            payload_type = int(fmt)
            found = declared.get(payload_type) or _STATIC_PAYLOADS.get(payload_type)
            if found is not None:
                result[payload_type] = found
        return result

    def fmtp(self) -> dict[int, str]:
        """Payload type -> format parameters from ``a=fmtp`` lines (RFC 8866 §6.15)."""
        result: dict[int, str] = {}
        for attribute in self.attributes:
            if attribute.name != "fmtp" or attribute.value is None:
                continue
            payload, _, parameters = attribute.value.partition(" ")
            if payload.isdigit() and payload.isascii():
                result[int(payload)] = parameters.strip()
        return result

    def _lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        lines = [f"m={' '.join((self.media, port, self.proto, *self.formats))}"]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.extend(f"b={bandwidth}" for bandwidth in self.bandwidths)
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines.extend(f"a={attribute}" for attribute in self.attributes)
        return lines


def _parse_rtpmap(value: str) -> RtpMap | None:
    # a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
    try:
        payload, spec = value.split(None, 1)
        parts = spec.strip().split("/")
        channels = int(parts[2]) if len(parts) > 2 else 1
        return RtpMap(int(payload), parts[0], int(parts[1]), channels)
    except (ValueError, IndexError):
        return None


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body (RFC 8866 §5)."""

    version: int
    origin: Origin
    session_name: str
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timing: tuple[Timing, ...] = (Timing(),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    time_zones: str | None = None
    key: str | None = None

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level ``a=name`` ("" for a flag), or None."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value if attribute.value is not None else ""
        return None

    def to_bytes(self) -> bytes:
        """The body in RFC 8866 §5 order with CRLF line ends."""
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines.extend(f"e={email}" for email in self.emails)
        lines.extend(f"p={phone}" for phone in self.phones)
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.extend(f"b={bandwidth}" for bandwidth in self.bandwidths)
        for timing in self.timing:
            lines.append(f"t={timing.start} {timing.stop}")
            lines.extend(f"r={repeat}" for repeat in timing.repeats)
        if self.time_zones is not None:
            lines.append(f"z={self.time_zones}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines.extend(f"a={attribute}" for attribute in self.attributes)
        for media in self.media:
            lines.extend(media._lines())
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _fail(number: int, message: str) -> LocalProtocolError:
    return LocalProtocolError(f"SDP line {number}: {message}")


def _parse_int(text: str, number: int, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise _fail(number, f"{what} {text!r} is not a number")
    return int(text)


def _parse_connection(value: str, number: int) -> Connection:
    parts = value.split(" ")
    if len(parts) != 3 or not all(parts):
        raise _fail(number, f"malformed c= line {value!r}")
    return Connection(parts[0], parts[1], parts[2])


def _parse_bandwidth(value: str, number: int) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep or not bwtype:
        raise _fail(number, f"malformed b= line {value!r}")
    return Bandwidth(bwtype, _parse_int(amount, number, "bandwidth"))


def _parse_attribute(value: str, number: int) -> Attribute:
    name, sep, rest = value.partition(":")
    if not name:
        raise _fail(number, "empty attribute name")
    return Attribute(name, rest if sep else None)


def _parse_media(value: str, number: int) -> MediaDescription:
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts):
        raise _fail(number, f"malformed m= line {value!r}")
    port_text, _, count_text = parts[1].partition("/")
    port = _parse_int(port_text, number, "media port")
    if port > 65535:
        raise _fail(number, f"media port {port} out of range")
    count = _parse_int(count_text, number, "port count") if count_text else None
    return MediaDescription(parts[0], port, parts[2], tuple(parts[3:]), port_count=count)


_SESSION_ONCE = "isuzkc"
_KNOWN = set("vosiuepcbtrzkam")


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; raises :class:`LocalProtocolError` naming the offending line."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LocalProtocolError(f"SDP is not UTF-8 (byte {exc.start})") from exc
    else:
        text = data
    raw_lines = text.split("\n")
    # A blank line or two after the last field is common and harmless.
    while raw_lines and raw_lines[-1] in ("", "\r"):
        raw_lines.pop()
    if not raw_lines:
        raise LocalProtocolError("SDP line 1: empty session description")

    session: dict[str, object] = {}
    seen: set[str] = set()
    bandwidths: list[Bandwidth] = []
    timing: list[Timing] = []
    attributes: list[Attribute] = []
    emails: list[str] = []
    phones: list[str] = []
    media: list[MediaDescription] = []
    current: MediaDescription | None = None
    media_attributes: list[Attribute] = []
    media_bandwidths: list[Bandwidth] = []

    def close_media() -> None:
        if current is not None:
            media.append(
                replace(
                    current,
                    attributes=tuple(media_attributes),
                    bandwidths=tuple(media_bandwidths),
                )
            )

    for number, raw in enumerate(raw_lines, start=1):
        line = raw.removesuffix("\r")
        if len(line) < 2 or line[1] != "=":
            raise _fail(number, f"expected '<type>=<value>', got {line!r}")
        kind, value = line[0], line[2:]
        if kind not in _KNOWN:
            raise _fail(number, f"unknown type {kind!r}")
        if number == 1:
            if kind != "v":
                raise _fail(number, "first line must be v=")
            if value != "0":
                raise _fail(number, f"unsupported version {value!r}")
            session["version"] = 0
            continue
        if kind == "v":
            raise _fail(number, "repeated v= line")
        if number == 2 and kind != "o":
            raise _fail(number, "second line must be o=")
        if number == 3 and kind != "s":
            raise _fail(number, "third line must be s=")

        if current is not None:
            match kind:
                case "m":
                    close_media()
                    current = _parse_media(value, number)
                    media_attributes, media_bandwidths = [], []
                case "i":
                    if current.information is not None:
                        raise _fail(number, "repeated i= line in media")
                    current = replace(current, information=value)
                case "c":
                    if current.connection is not None:
                        # RFC 8866 §5.7 allows several for layered multicast; we do not relay it.
                        raise _fail(number, "repeated c= line in media")
                    current = replace(current, connection=_parse_connection(value, number))
                case "b":
                    media_bandwidths.append(_parse_bandwidth(value, number))
                case "k":
                    current = replace(current, key=value)
                case "a":
                    media_attributes.append(_parse_attribute(value, number))
                case _:
                    raise _fail(number, f"{kind}= line not allowed in a media description")
            continue

        if kind in _SESSION_ONCE and kind in seen:
            raise _fail(number, f"repeated {kind}= line")
        seen.add(kind)
        match kind:
            case "o":
                if "origin" in session:
                    raise _fail(number, "repeated o= line")
                parts = value.split(" ")
                if len(parts) != 6 or not all(parts):
                    raise _fail(number, f"malformed o= line {value!r}")
                session["origin"] = Origin(
                    parts[0],
                    _parse_int(parts[1], number, "session id"),
                    _parse_int(parts[2], number, "session version"),
                    parts[3],
                    parts[4],
                    parts[5],
                )
            case "s" | "i" | "u" | "z" | "k":
                session[kind] = value
            case "e":
                emails.append(value)
            case "p":
                phones.append(value)
            case "c":
                session["c"] = _parse_connection(value, number)
            case "b":
                bandwidths.append(_parse_bandwidth(value, number))
            case "t":
                parts = value.split(" ")
                if len(parts) != 2:
                    raise _fail(number, f"malformed t= line {value!r}")
                timing.append(
                    Timing(
                        _parse_int(parts[0], number, "start time"),
                        _parse_int(parts[1], number, "stop time"),
                    )
                )
            case "r":
                if not timing:
                    raise _fail(number, "r= line before any t= line")
                last = timing[-1]
                timing[-1] = replace(last, repeats=(*last.repeats, value))
            case "a":
                attributes.append(_parse_attribute(value, number))
            case "m":
                current = _parse_media(value, number)
                media_attributes, media_bandwidths = [], []
            case _:
                raise _fail(number, f"unexpected {kind}= line")
    close_media()

    if "origin" not in session:
        raise LocalProtocolError(f"SDP line {len(raw_lines)}: missing o= line")
    if "s" not in session:
        raise LocalProtocolError(f"SDP line {len(raw_lines)}: missing s= line")
    if not timing:
        raise LocalProtocolError(f"SDP line {len(raw_lines)}: missing t= line")
    origin = session["origin"]
    connection = session.get("c")
    assert isinstance(origin, Origin)
    assert connection is None or isinstance(connection, Connection)

    def text_field(kind: str) -> str | None:
        found = session.get(kind)
        return found if isinstance(found, str) else None

    return SessionDescription(
        version=0,
        origin=origin,
        session_name=str(session["s"]),
        connection=connection,
        bandwidths=tuple(bandwidths),
        timing=tuple(timing),
        attributes=tuple(attributes),
        media=tuple(media),
        information=text_field("i"),
        uri=text_field("u"),
        emails=tuple(emails),
        phones=tuple(phones),
        time_zones=text_field("z"),
        key=text_field("k"),
    )


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def with_connection_address(
    sdp: SessionDescription,
    address: str,
    ports: Sequence[int] | None = None,
) -> SessionDescription:
    """Point every connection line at ``address`` (a media relay), optionally the ports too.

    Session-level ``c=`` is set, and media-level ones are rewritten where present, so the
    result is valid whether the original used one or the other (RFC 8866 §5.7). ``ports``,
    if given, holds one port per media line in order; a rejected stream (port 0) stays 0.
    """
    if ports is not None and len(ports) != len(sdp.media):
        raise ValueError(f"{len(ports)} ports for {len(sdp.media)} media lines")
    connection = Connection("IN", _addrtype(address), address)
    media = []
    for index, item in enumerate(sdp.media):
        port = item.port
        if ports is not None and item.port != 0:
            port = ports[index]
        media.append(
            replace(
                item,
                port=port,
                connection=connection if item.connection is not None else None,
            )
        )
    return replace(sdp, connection=connection, media=tuple(media))
