"""SIP header fields: the registry, the ordered multimap and parsed value types.

Header names are case-insensitive and many have a compact form (RFC 3261 §7.3.3,
§20). :class:`Headers` keeps fields exactly as received (order, case, compact
forms) and resolves names through the registry on lookup. Header fields whose
grammar is a comma-separated list (``Via``, ``Contact``, ...) may be split over
several lines or combined on one (RFC 3261 §7.3.1); :meth:`Headers.get_all`
returns one item per list element either way.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from tollguard.sip import grammar
from tollguard.sip.errors import LocalProtocolError
from tollguard.sip.uri import Uri, is_valid_host, parse_uri

__all__ = [
    "CSeq",
    "HeaderSpec",
    "Headers",
    "NameAddr",
    "ReasonValue",
    "Via",
    "canonical_name",
    "header_key",
    "header_spec",
    "parse_contacts",
    "parse_content_length",
    "parse_cseq",
    "parse_max_forwards",
    "parse_name_addr",
    "parse_reason",
    "parse_via",
    "split_list",
]


@dataclass(frozen=True, slots=True)
class HeaderSpec:
    """What the stack knows about one header field."""

    name: str
    compact: str | None = None
    is_list: bool = False


# RFC 3261 §20 plus the extensions a class-4 switch meets; compact forms from
# the IANA "Header Fields" registry.
_SPECS = (
    HeaderSpec("Accept", is_list=True),
    HeaderSpec("Accept-Contact", "a", is_list=True),
    HeaderSpec("Accept-Encoding", is_list=True),
    HeaderSpec("Accept-Language", is_list=True),
    HeaderSpec("Alert-Info", is_list=True),
    HeaderSpec("Allow", is_list=True),
    HeaderSpec("Allow-Events", "u", is_list=True),
    HeaderSpec("Authentication-Info"),
    HeaderSpec("Authorization"),
    HeaderSpec("Call-ID", "i"),
    HeaderSpec("Call-Info", is_list=True),
    HeaderSpec("Contact", "m", is_list=True),
    HeaderSpec("Content-Disposition"),
    HeaderSpec("Content-Encoding", "e", is_list=True),
    HeaderSpec("Content-Language", is_list=True),
    HeaderSpec("Content-Length", "l"),
    HeaderSpec("Content-Type", "c"),
    HeaderSpec("CSeq"),
    HeaderSpec("Date"),
    HeaderSpec("Diversion", is_list=True),
    HeaderSpec("Error-Info", is_list=True),
    HeaderSpec("Event", "o"),
    HeaderSpec("Expires"),
    HeaderSpec("From", "f"),
    HeaderSpec("History-Info", is_list=True),
    HeaderSpec("Identity", "y"),
    HeaderSpec("Identity-Info", "n"),
    HeaderSpec("In-Reply-To", is_list=True),
    HeaderSpec("Max-Forwards"),
    HeaderSpec("MIME-Version"),
    HeaderSpec("Min-Expires"),
    HeaderSpec("Min-SE"),
    HeaderSpec("Organization"),
    HeaderSpec("P-Asserted-Identity", is_list=True),
    HeaderSpec("P-Preferred-Identity", is_list=True),
    HeaderSpec("Path", is_list=True),
    HeaderSpec("Priority"),
    HeaderSpec("Privacy"),
    HeaderSpec("Proxy-Authenticate"),
    HeaderSpec("Proxy-Authorization"),
    HeaderSpec("Proxy-Require", is_list=True),
    HeaderSpec("RAck"),
    HeaderSpec("Reason", is_list=True),
    HeaderSpec("Record-Route", is_list=True),
    HeaderSpec("Refer-To", "r"),
    HeaderSpec("Referred-By", "b"),
    HeaderSpec("Reject-Contact", "j", is_list=True),
    HeaderSpec("Replaces"),
    HeaderSpec("Reply-To"),
    HeaderSpec("Request-Disposition", "d", is_list=True),
    HeaderSpec("Require", is_list=True),
    HeaderSpec("Retry-After"),
    HeaderSpec("Route", is_list=True),
    HeaderSpec("RSeq"),
    HeaderSpec("Security-Client", is_list=True),
    HeaderSpec("Security-Server", is_list=True),
    HeaderSpec("Security-Verify", is_list=True),
    HeaderSpec("Server"),
    HeaderSpec("Service-Route", is_list=True),
    HeaderSpec("Session-Expires", "x"),
    HeaderSpec("Subject", "s"),
    HeaderSpec("Subscription-State"),
    HeaderSpec("Supported", "k", is_list=True),
    HeaderSpec("Timestamp"),
    HeaderSpec("To", "t"),
    HeaderSpec("Unsupported", is_list=True),
    HeaderSpec("User-Agent"),
    HeaderSpec("Via", "v", is_list=True),
    HeaderSpec("Warning", is_list=True),
    HeaderSpec("WWW-Authenticate"),
)

_BY_KEY: dict[str, HeaderSpec] = {}
for _spec in _SPECS:
    _BY_KEY[_spec.name.lower()] = _spec
    if _spec.compact:
        _BY_KEY[_spec.compact] = _spec
del _spec

_LIST_KEYS = frozenset(spec.name.lower() for spec in _SPECS if spec.is_list)

# Memo of name-as-written -> lookup key. Bounded so that a peer sending many
# distinct header names cannot grow it without limit.
_KEY_MEMO: dict[str, str] = {}
_KEY_MEMO_MAX = 4096


def header_key(name: str) -> str:
    """The lookup key of a header name: its full name in lower case."""
    key = _KEY_MEMO.get(name)
    if key is None:
        lower = name.lower()
        spec = _BY_KEY.get(lower)
        key = spec.name.lower() if spec is not None else lower
        if len(_KEY_MEMO) < _KEY_MEMO_MAX:
            _KEY_MEMO[name] = key
    return key


def header_spec(name: str) -> HeaderSpec | None:
    """The registry entry for ``name`` (full or compact, any case), if known."""
    return _BY_KEY.get(name.lower())


def canonical_name(name: str) -> str:
    """The full, conventionally spelled name (``"v"`` -> ``"Via"``); unknown names unchanged."""
    spec = _BY_KEY.get(name.lower())
    return spec.name if spec is not None else name


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quoted strings and ``<...>``.

    Empty elements are skipped; elements are stripped of SP/HTAB.
    """
    if "," not in value:
        stripped = value.strip(" \t")
        return [stripped] if stripped else []
    items: list[str] = []
    start = 0
    in_quotes = in_angle = escaped = False
    for index, char in enumerate(value):
        if in_quotes:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == "," and not in_angle:
            item = value[start:index].strip(" \t")
            if item:
                items.append(item)
            start = index + 1
    item = value[start:].strip(" \t")
    if item:
        items.append(item)
    return items


def _check_field(name: str, value: str) -> tuple[str, str]:
    if not grammar.TOKEN_RE.fullmatch(name):
        raise LocalProtocolError(f"invalid header name: {name!r}")
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"CR or LF in the value of header {name!r}")
    return (name, value)


class Headers:
    """An immutable, ordered multimap of header fields.

    Iteration yields ``(name, value)`` pairs as stored. Lookups accept any case
    and the compact forms. Every "modifying" method returns a new instance.
    """

    __slots__ = ("_items", "_keys")

    _items: tuple[tuple[str, str], ...]
    _keys: tuple[str, ...]

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        checked = tuple(_check_field(name, value) for name, value in items)
        object.__setattr__(self, "_items", checked)
        object.__setattr__(self, "_keys", tuple(header_key(name) for name, _ in checked))

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...], keys: tuple[str, ...]) -> Headers:
        """Build from fields the parser has already checked."""
        headers = object.__new__(cls)
        object.__setattr__(headers, "_items", items)
        object.__setattr__(headers, "_keys", keys)
        return headers

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Headers is immutable")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return (_KEY_MEMO.get(name) or header_key(name)) in self._keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    @property
    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def keyed(self) -> Iterator[tuple[str, str, str]]:
        """``(key, name, value)`` triples, ``key`` being :func:`header_key` of the name."""
        for key, (name, value) in zip(self._keys, self._items, strict=True):
            yield key, name, value

    def get(self, name: str) -> str | None:
        """The value of the first field called ``name``, as received."""
        key = _KEY_MEMO.get(name) or header_key(name)
        keys = self._keys
        # tuple.__contains__ and .index run in C: cheaper than a Python loop.
        if key not in keys:
            return None
        return self._items[keys.index(key)][1]

    def count(self, name: str) -> int:
        """How many fields (lines) called ``name`` there are."""
        return self._keys.count(_KEY_MEMO.get(name) or header_key(name))

    def values(self, name: str) -> tuple[str, ...]:
        """Every field value called ``name``, unsplit, in order."""
        key = _KEY_MEMO.get(name) or header_key(name)
        keys = self._keys
        if key not in keys:
            return ()
        items = self._items
        return tuple([items[index][1] for index in range(len(keys)) if keys[index] == key])

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of ``name``; list headers are split into one item per element."""
        found = self.values(name)
        if not found or (_KEY_MEMO.get(name) or header_key(name)) not in _LIST_KEYS:
            return found
        items: list[str] = []
        for value in found:
            items.extend(split_list(value))
        return tuple(items)

    def append(self, name: str, value: str) -> Headers:
        field = _check_field(name, value)
        return Headers._trusted((*self._items, field), (*self._keys, header_key(name)))

    def prepend(self, name: str, value: str) -> Headers:
        field = _check_field(name, value)
        return Headers._trusted((field, *self._items), (header_key(name), *self._keys))

    def replace(self, name: str, value: str) -> Headers:
        """Remove every ``name`` field and put one where the first was (or at the end)."""
        field = _check_field(name, value)
        key = header_key(name)
        items: list[tuple[str, str]] = []
        keys: list[str] = []
        placed = False
        for k, item in zip(self._keys, self._items, strict=True):
            if k == key:
                if placed:
                    continue
                placed = True
            items.append(field if k == key else item)
            keys.append(k)
        if not placed:
            items.append(field)
            keys.append(key)
        return Headers._trusted(tuple(items), tuple(keys))

    def remove(self, name: str) -> Headers:
        key = header_key(name)
        pairs = [(k, item) for k, item in zip(self._keys, self._items, strict=True) if k != key]
        return Headers._trusted(tuple(item for _, item in pairs), tuple(k for k, _ in pairs))


type Params = tuple[tuple[str, str | None], ...]

# Valid tokens met on nearly every message; checking them skips a regex. The methods
# are those of RFC 3261 and its usual extensions (the parser uses them too).
_COMMON_TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "WS", "WSS", "SCTP"})
COMMON_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "UPDATE",
        "INFO",
        "REFER",
        "NOTIFY",
        "SUBSCRIBE",
        "MESSAGE",
        "PUBLISH",
    }
)


def _find_param(params: Params, name: str) -> str | None:
    lower = name.lower()
    for key, value in params:
        if key.lower() == lower:
            return "" if value is None else value
    return None


def _format_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def _check_params(params: Params) -> None:
    for name, value in params:
        if not grammar.TOKEN_RE.fullmatch(name):
            raise LocalProtocolError(f"invalid header parameter name: {name!r}")
        if value is not None and not (
            grammar.TOKEN_RE.fullmatch(value)
            or grammar.QUOTED_STRING_RE.fullmatch(value)
            or grammar.IPV6_REFERENCE_RE.fullmatch(value)
        ):
            raise LocalProtocolError(f"invalid value for header parameter {name!r}: {value!r}")


@dataclass(frozen=True, slots=True)
class Via:
    """One Via element (RFC 3261 §20.42): ``protocol/transport host[:port];params``.

    ``transport`` is kept as written; compare it upper-cased. ``host`` keeps the
    brackets of an IPv6 reference.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def __post_init__(self) -> None:
        if self.transport not in _COMMON_TRANSPORTS and not grammar.TOKEN_RE.fullmatch(
            self.transport
        ):
            raise LocalProtocolError(f"invalid Via transport: {self.transport!r}")
        if not is_valid_host(self.host):
            raise LocalProtocolError(f"invalid Via host: {self.host!r}")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"Via port out of range: {self.port}")

    def param(self, name: str) -> str | None:
        """First parameter ``name`` (case-insensitive): its value, ``""`` if valueless."""
        return _find_param(self.params, name)

    @property
    def branch(self) -> str | None:
        return _find_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _find_param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by the server (RFC 3581 §4), if any."""
        value = _find_param(self.params, "rport")
        return int(value) if value and value.isdigit() else None

    @property
    def has_rport(self) -> bool:
        """Whether the client asked for symmetric response routing (RFC 3581 §3)."""
        return _find_param(self.params, "rport") is not None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{_format_params(self.params)}"


# Characters a quoted-string can only carry as a quoted-pair (RFC 3261 §25.1).
_NEEDS_QUOTED_PAIR_RE = re.compile(r'[\x00-\x08\x0b-\x1f\x7f"\\]')


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...).

    ``display_name`` is unquoted; ``str()`` always quotes it and always puts the
    URI in ``<>`` (RFC 3261 §20.10).
    """

    display_name: str | None
    uri: Uri
    params: Params = ()

    def __post_init__(self) -> None:
        if self.display_name is not None and (
            "\r" in self.display_name or "\n" in self.display_name
        ):
            raise LocalProtocolError("CR or LF in a display name")

    def param(self, name: str) -> str | None:
        return _find_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return _find_param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        if not grammar.TOKEN_RE.fullmatch(tag):
            raise LocalProtocolError(f"invalid tag: {tag!r}")
        params = tuple(p for p in self.params if p[0].lower() != "tag")
        return NameAddr(self.display_name, self.uri, (*params, ("tag", tag)))

    def __str__(self) -> str:
        params = _format_params(self.params)
        if self.display_name is None:
            return f"<{self.uri}>{params}"
        quoted = _NEEDS_QUOTED_PAIR_RE.sub(r"\\\g<0>", self.display_name)
        return f'"{quoted}" <{self.uri}>{params}'


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq (RFC 3261 §20.16): sequence number below 2**31 and method."""

    seq: int
    method: str

    def __post_init__(self) -> None:
        if not 0 <= self.seq < 2**31:
            raise LocalProtocolError(f"CSeq number out of range: {self.seq}")
        if self.method not in COMMON_METHODS and not grammar.TOKEN_RE.fullmatch(self.method):
            raise LocalProtocolError(f"invalid CSeq method: {self.method!r}")

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def _match_params(value: str, pos: int) -> tuple[Params, int]:
    if pos == len(value):
        return (), pos
    params: list[tuple[str, str | None]] = []
    match = grammar.GENERIC_PARAM_RE.match
    while (found := match(value, pos)) is not None:
        params.append((found[1], found[2]))
        pos = found.end()
    while pos < len(value) and value[pos] in " \t":
        pos += 1
    return tuple(params), pos


def _match_via_params(value: str, pos: int) -> tuple[Params, int]:
    """The via-params from ``pos``: generic-params, and an unbracketed IPv6 received."""
    params: list[tuple[str, str | None]] = []
    generic = grammar.GENERIC_PARAM_RE.match
    received = grammar.VIA_RECEIVED_IPV6_RE.match
    while True:
        found = received(value, pos)
        if found is not None:
            try:
                ipaddress.IPv6Address(found[2])
            except ValueError:
                raise LocalProtocolError(
                    f"invalid IPv6 address in Via received: {found[2]!r}"
                ) from None
        else:
            found = generic(value, pos)
            if found is None:
                break
        params.append((found[1], found[2]))
        pos = found.end()
    while pos < len(value) and value[pos] in " \t":
        pos += 1
    return tuple(params), pos


# Parsed values by text: a transaction's request and responses repeat their
# Via, a dialog repeats its From and To. Values are immutable, so sharing is
# safe. Bounded in entries and key length, cleared when full.
_VIA_MEMO: dict[str, tuple[Via, ...]] = {}
_NAME_ADDR_MEMO: dict[str, NameAddr] = {}
_MEMO_MAX = 4096
_MEMO_KEY_MAX = 512


def parse_via(value: str) -> tuple[Via, ...]:
    """Parse one Via header value, which may hold several comma-separated elements."""
    vias = _VIA_MEMO.get(value)
    if vias is None:
        vias = _parse_via(value)
        if len(value) <= _MEMO_KEY_MAX:
            if len(_VIA_MEMO) >= _MEMO_MAX:
                _VIA_MEMO.clear()
            _VIA_MEMO[value] = vias
    return vias


def _plain_params(text: str) -> Params:
    # ";token[=token]" repeated, as FAST_*_PARTS_RE captured it.
    if not text:
        return ()
    return tuple(
        (name, value if eq else None)
        for name, eq, value in (item.partition("=") for item in text[1:].split(";"))
    )


def _parse_via(value: str) -> tuple[Via, ...]:
    plain = grammar.FAST_VIA_PARTS_RE.fullmatch(value)
    if plain is not None:
        transport, host, port, params = plain.groups()
        # The pattern has checked every part: skip the constructor's checks.
        via = object.__new__(Via)
        setter = object.__setattr__
        setter(via, "transport", transport)
        setter(via, "host", host)
        setter(via, "port", int(port) if port is not None else None)
        setter(via, "params", _plain_params(params))
        setter(via, "protocol", "SIP/2.0")
        return (via,)
    vias: list[Via] = []
    pos = 0
    end = len(value)
    while True:
        found = grammar.VIA_PARM_RE.match(value, pos)
        if found is None:
            raise LocalProtocolError(f"malformed Via: {value!r}")
        name, version, transport, host, port = found.groups()
        params, pos = _match_via_params(value, found.end())
        port_number = int(port) if port is not None else None
        if port_number is not None and port_number > 65535:
            raise LocalProtocolError(f"Via port out of range: {value!r}")
        if host.startswith("[") and not is_valid_host(host):
            raise LocalProtocolError(f"invalid Via host: {host!r}")
        # The pattern has checked every part: skip the constructor's checks.
        via = object.__new__(Via)
        setter = object.__setattr__
        setter(via, "transport", transport)
        setter(via, "host", host)
        setter(via, "port", port_number)
        setter(via, "params", params)
        setter(
            via,
            "protocol",
            "SIP/2.0" if name == "SIP" and version == "2.0" else f"{name}/{version}",
        )
        vias.append(via)
        if pos == end:
            return tuple(vias)
        comma = grammar.COMMA_RE.match(value, pos)
        if comma is None:
            raise LocalProtocolError(f"unexpected {value[pos : pos + 10]!r} in Via: {value!r}")
        pos = comma.end()


def _unquote(quoted: str) -> str:
    inner = quoted[1:-1]
    return grammar.QUOTED_PAIR_RE.sub(r"\1", inner) if "\\" in inner else inner


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``[display-name] <URI> *(;param)`` or ``addr-spec *(;param)`` (RFC 3261 §20.10)."""
    address = _NAME_ADDR_MEMO.get(value)
    if address is None:
        address = _parse_name_addr(value)
        if len(value) <= _MEMO_KEY_MAX:
            if len(_NAME_ADDR_MEMO) >= _MEMO_MAX:
                _NAME_ADDR_MEMO.clear()
            _NAME_ADDR_MEMO[value] = address
    return address


def _parse_name_addr(value: str) -> NameAddr:
    plain = grammar.FAST_NAME_ADDR_PARTS_RE.fullmatch(value)
    if plain is not None:
        quoted, words, uri_text, params = plain.groups()
        # The pattern has checked every part: no CR, LF or quoted-pair in the name.
        address = object.__new__(NameAddr)
        setter = object.__setattr__
        setter(address, "display_name", quoted if quoted is not None else words)
        setter(address, "uri", parse_uri(uri_text))
        setter(address, "params", _plain_params(params))
        return address
    text = value.strip(" \t")
    display_name: str | None = None
    if text.startswith('"'):
        quoted = grammar.QUOTED_STRING_RE.match(text)
        if quoted is None:
            raise LocalProtocolError(f"unterminated quoted display name: {value!r}")
        display_name = _unquote(quoted[0])
        pos = len(text) - len(text[quoted.end() :].lstrip(" \t"))
        if not text.startswith("<", pos):
            raise LocalProtocolError(f"quoted display name not followed by '<': {value!r}")
        angle = pos
    else:
        angle = text.find("<")
        semi = text.find(";")
        if angle >= 0 and (semi < 0 or angle < semi):
            # display-name = *(token LWS) / quoted-string. RFC 4475 §3.1.1.6: the
            # LWS before '<' is commonly left out; accept it missing.
            words = text[:angle].strip(" \t")
            if words:
                if not grammar.DISPLAY_TOKENS_RE.fullmatch(words):
                    raise LocalProtocolError(f"unquoted display name is not tokens: {value!r}")
                display_name = words
        else:
            # addr-spec: the URI ends at the first ';', whose parameters are header
            # parameters; a URI holding ',', '?' or ';' must be in <> (RFC 3261 §20.10).
            uri_end = len(text) if semi < 0 else semi
            uri_text = text[:uri_end].rstrip(" \t")
            if "?" in uri_text or "," in uri_text:
                raise LocalProtocolError(f"URI with '?' or ',' must be enclosed in <>: {value!r}")
            uri = parse_uri(uri_text)
            params, pos = _match_params(text, uri_end)
            if pos != len(text):
                raise LocalProtocolError(f"malformed header parameters: {value!r}")
            return NameAddr(None, uri, params)
    close = text.find(">", angle)
    if close < 0:
        raise LocalProtocolError(f"missing '>': {value!r}")
    uri = parse_uri(text[angle + 1 : close])
    params, pos = _match_params(text, close + 1)
    if pos != len(text):
        raise LocalProtocolError(f"malformed header parameters: {value!r}")
    return NameAddr(display_name, uri, params)


def parse_contacts(value: str) -> tuple[NameAddr, ...] | Literal["*"]:
    """Parse a Contact value: ``*`` or one or more comma-separated addresses."""
    if value.strip(" \t") == "*":
        return "*"
    items = split_list(value)
    if not items:
        raise LocalProtocolError("empty Contact")
    return tuple(parse_name_addr(item) for item in items)


# Parsed CSeq values by text: "1 INVITE", "2 BYE" ... recur on every call.
_CSEQ_MEMO: dict[str, CSeq] = {}
_CSEQ_MEMO_MAX = 1024


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must be below 2**31 (RFC 3261 §8.1.1.5)."""
    cseq = _CSEQ_MEMO.get(value)
    if cseq is None:
        cseq = _parse_cseq(value)
        if len(_CSEQ_MEMO) >= _CSEQ_MEMO_MAX:
            _CSEQ_MEMO.clear()
        _CSEQ_MEMO[value] = cseq
    return cseq


def _parse_cseq(value: str) -> CSeq:
    digits, space, method = value.partition(" ")
    if (
        space
        and method in COMMON_METHODS
        and 0 < len(digits) <= 10
        and digits.isascii()
        and digits.isdigit()
    ):
        number = int(digits)
        if number < 2**31:
            return CSeq(number, method)
    found = grammar.CSEQ_RE.fullmatch(value.strip(" \t"))
    if found is None:
        raise LocalProtocolError(f"malformed CSeq: {value!r}")
    digits = found[1]
    if len(digits) > 10 or int(digits) >= 2**31:
        raise LocalProtocolError(f"CSeq number out of range: {digits}")
    return CSeq(int(digits), found[2])


def parse_max_forwards(value: str) -> int:
    """Parse Max-Forwards (``1*DIGIT``); the range check (0..255) is the caller's."""
    digits = value.strip(" \t")
    if not (digits.isascii() and digits.isdigit()):
        raise LocalProtocolError(f"malformed Max-Forwards: {digits!r}")
    if len(digits) > 10:
        raise LocalProtocolError(f"Max-Forwards out of range: {digits}")
    return int(digits)


def parse_content_length(value: str) -> int:
    """Parse Content-Length (``1*DIGIT``); never negative, never huge."""
    digits = value.strip(" \t")
    if not (digits.isascii() and digits.isdigit()):
        raise LocalProtocolError(f"malformed Content-Length: {digits!r}")
    if len(digits) > 10:
        raise LocalProtocolError(f"Content-Length out of range: {digits}")
    return int(digits)


@dataclass(frozen=True, slots=True)
class ReasonValue:
    """One value of a Reason header (RFC 3326 §2): why a request was sent.

    ``protocol`` is ``SIP``, ``Q.850`` or another token; ``cause`` the protocol's code and
    ``text`` its description, each ``None`` when absent.
    """

    protocol: str
    cause: int | None
    text: str | None
    params: Params = ()

    @property
    def is_q850(self) -> bool:
        return self.protocol.upper() == "Q.850"

    def __str__(self) -> str:
        return f"{self.protocol}{_format_params(self.params)}"


_REASON_PROTOCOL_RE = re.compile(rf"{grammar.SWS}({grammar.TOKEN})")
# Q.850 causes run to 127, SIP status codes to 699; anything longer is not a cause.
_MAX_CAUSE_DIGITS = 4


def parse_reason(value: str) -> tuple[ReasonValue, ...]:
    """Parse one Reason header value, which may hold several comma-separated values.

    reason-value = protocol *(SEMI reason-params), protocol-cause = "cause" EQUAL 1*DIGIT,
    reason-text = "text" EQUAL quoted-string (RFC 3326 §2).
    """
    values: list[ReasonValue] = []
    for item in split_list(value):
        found = _REASON_PROTOCOL_RE.match(item)
        if found is None:
            raise LocalProtocolError(f"malformed Reason: {item[:60]!r}")
        params, end = _match_params(item, found.end())
        if end != len(item):
            raise LocalProtocolError(f"malformed Reason: {item[:60]!r}")
        cause_text = _find_param(params, "cause")
        cause: int | None = None
        if cause_text is not None:
            if not (cause_text.isascii() and cause_text.isdigit()):
                raise LocalProtocolError(f"Reason cause is not a number: {cause_text[:20]!r}")
            if len(cause_text) > _MAX_CAUSE_DIGITS:
                raise LocalProtocolError(f"Reason cause out of range: {cause_text[:20]}")
            cause = int(cause_text)
        text = _find_param(params, "text")
        if text is not None:
            if not grammar.QUOTED_STRING_RE.fullmatch(text):
                raise LocalProtocolError("Reason text is not a quoted string")
            text = _unquote(text)
        values.append(ReasonValue(found[1], cause, text, params))
    if not values:
        raise LocalProtocolError("empty Reason header")
    return tuple(values)
