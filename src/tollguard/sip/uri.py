"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and other absolute URIs.

Parsed components are stored unescaped; ``str()`` escapes what the grammar
requires (RFC 3261 §19.1.2). A parsed URI keeps its received text and
serializes to it unchanged, so forwarding never rewrites escapes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from tollguard.sip import grammar
from tollguard.sip.errors import LocalProtocolError

__all__ = ["AbsoluteUri", "SipUri", "TelUri", "Uri", "parse_uri"]

# Characters the grammar lets through unescaped, beyond alphanum and "-_.~".
_USER_SAFE = "!*'()&=+$,;?/"
_USERINFO_PW_SAFE = "!*'()&=+$,"
_PARAM_SAFE = "!*'()[]/:&+$"
_HEADER_SAFE = "!*'()[]/?:+$"


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    return unquote(text, errors="surrogateescape")


def _escape(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI.

    ``host`` is kept as written, with brackets around an IPv6 address.
    ``params`` and ``headers`` keep their order; names and values are unescaped.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise LocalProtocolError(f"SIP URI scheme must be 'sip' or 'sips', not {self.scheme!r}")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"URI port out of range: {self.port}")
        _check_host(self.host)

    def param(self, name: str) -> str | None:
        """The value of the first URI parameter ``name`` (case-insensitive).

        A parameter present without a value returns ``""``; an absent one ``None``.
        """
        lower = name.lower()
        for key, value in self.params:
            if key.lower() == lower:
                return "" if value is None else value
        return None

    def has_param(self, name: str) -> bool:
        lower = name.lower()
        return any(key.lower() == lower for key, _ in self.params)

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts.append(":")
                parts.append(_escape(self.password, _USERINFO_PW_SAFE))
            parts.append("@")
        parts.append(self.hostport)
        for name, value in self.params:
            parts.append(";")
            parts.append(_escape(name, _PARAM_SAFE))
            if value is not None:
                parts.append("=")
                parts.append(_escape(value, _PARAM_SAFE))
        for index, (name, value) in enumerate(self.headers):
            parts.append("?" if index == 0 else "&")
            parts.append(_escape(name, _HEADER_SAFE))
            parts.append("=")
            parts.append(_escape(value, _HEADER_SAFE))
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): the number as written and its parameters."""

    number: str
    params: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if not grammar.TEL_NUMBER_RE.fullmatch(self.number):
            raise LocalProtocolError(f"invalid number in tel URI: {self.number!r}")
        for name, value in self.params:
            if not grammar.TEL_PNAME_RE.fullmatch(name) or (
                value is not None and not grammar.PARAMCHARS_RE.fullmatch(value)
            ):
                raise LocalProtocolError(f"invalid tel URI parameter {name!r}={value!r}")

    def param(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.params:
            if key.lower() == lower:
                return "" if value is None else value
        return None

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def __str__(self) -> str:
        parts = ["tel:", self.number]
        for name, value in self.params:
            parts.append(f";{name}" if value is None else f";{name}={value}")
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other absolute URI: ``scheme`` in lower case, ``raw`` the whole URI text."""

    scheme: str
    raw: str

    def __str__(self) -> str:
        return self.raw


Uri = SipUri | TelUri | AbsoluteUri


# Hosts seen valid. Switches talk to few hosts, and the host regex is the
# costliest check in a URI; bounded so that random hosts cannot grow it.
_VALID_HOSTS: dict[str, bool] = {}
_VALID_HOSTS_MAX = 4096


def is_valid_host(host: str) -> bool:
    """Whether ``host`` is a hostname, an IPv4 address or an IPv6 reference."""
    if host in _VALID_HOSTS:
        return True
    if not grammar.HOST_RE.fullmatch(host):
        return False
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    if len(_VALID_HOSTS) < _VALID_HOSTS_MAX:
        _VALID_HOSTS[host] = True
    return True


def _check_host(host: str) -> None:
    if not is_valid_host(host):
        raise LocalProtocolError(f"invalid host in URI: {host!r}")


# Parsed URIs by text. URIs are values, and the messages of one call repeat the
# same Request-URI, From and To URIs, so a parse is reused. Bounded in entries
# and key length, cleared when full.
_URI_MEMO: dict[str, Uri] = {}
_MEMO_MAX = 4096
_MEMO_KEY_MAX = 256


def parse_uri(text: str) -> Uri:
    """Parse a URI as found in a Request-URI, a name-addr or an addr-spec.

    Raises :class:`LocalProtocolError` naming the offending part.
    """
    uri = _URI_MEMO.get(text)
    if uri is None:
        uri = _parse_uri(text)
        if len(text) <= _MEMO_KEY_MAX:
            if len(_URI_MEMO) >= _MEMO_MAX:
                _URI_MEMO.clear()
            _URI_MEMO[text] = uri
    return uri


def _parse_uri(text: str) -> Uri:
    colon = text.find(":")
    if colon <= 0:
        raise LocalProtocolError(f"URI has no scheme: {text!r}")
    scheme = text[:colon].lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(text, scheme, colon + 1)
    if not grammar.SCHEME_RE.fullmatch(text, 0, colon):
        raise LocalProtocolError(f"invalid URI scheme: {text[:colon]!r}")
    if scheme == "tel":
        return _parse_tel(text, colon + 1)
    if not grammar.URIC_RE.fullmatch(text, colon + 1):
        raise LocalProtocolError(f"invalid characters in {scheme!r} URI: {text!r}")
    return AbsoluteUri(scheme, text)


def _parse_sip(text: str, scheme: str, start: int) -> SipUri:
    # SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    # userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
    if "%" not in text and (plain := grammar.PLAIN_SIP_URI_RE.fullmatch(text, start)):
        user_text, host, port_text, params_text = plain.groups()
        port_number = int(port_text) if port_text is not None else None
        if port_number is not None and port_number > 65535:
            raise LocalProtocolError(f"URI port out of range: {port_number}")
        plain_params: list[tuple[str, str | None]] = []
        if params_text:
            for item in params_text[1:].split(";"):
                name, eq, value = item.partition("=")
                plain_params.append((name, value if eq else None))
        # The pattern has checked every part: skip the constructor's checks.
        uri = object.__new__(SipUri)
        setter = object.__setattr__
        setter(uri, "scheme", scheme)
        setter(uri, "user", user_text)
        setter(uri, "password", None)
        setter(uri, "host", host)
        setter(uri, "port", port_number)
        setter(uri, "params", tuple(plain_params))
        setter(uri, "headers", ())
        setter(uri, "_text", text)
        return uri
    user: str | None = None
    password: str | None = None
    at = text.find("@", start)
    if at >= 0:
        colon = text.find(":", start, at)
        user_end = at if colon < 0 else colon
        if not grammar.USER_RE.fullmatch(text, start, user_end):
            raise LocalProtocolError(f"invalid user part in SIP URI: {text!r}")
        user = _unescape(text[start:user_end])
        if colon >= 0:
            if not grammar.PASSWORD_RE.fullmatch(text, colon + 1, at):
                raise LocalProtocolError(f"invalid password in SIP URI: {text!r}")
            password = _unescape(text[colon + 1 : at])
        start = at + 1
    headers: tuple[tuple[str, str], ...] = ()
    query = text.find("?", start)
    end = len(text) if query < 0 else query
    if query >= 0:
        headers = _parse_uri_headers(text, query + 1)
    semi = text.find(";", start, end)
    hostport_end = end if semi < 0 else semi
    if text.startswith("[", start):
        close = text.find("]", start, hostport_end)
        if close < 0:
            raise LocalProtocolError(f"unterminated IPv6 reference in SIP URI: {text!r}")
        host = text[start : close + 1]
        port_sep = close + 1
    else:
        port_sep = text.find(":", start, hostport_end)
        if port_sep < 0:
            port_sep = hostport_end
        host = text[start:port_sep]
    port: int | None = None
    if port_sep < hostport_end:
        if text[port_sep] != ":" or not grammar.PORT_RE.fullmatch(text, port_sep + 1, hostport_end):
            raise LocalProtocolError(f"invalid port in SIP URI: {text!r}")
        port = int(text[port_sep + 1 : hostport_end])
        if port > 65535:
            raise LocalProtocolError(f"URI port out of range: {port}")
    _check_host(host)
    params: tuple[tuple[str, str | None], ...] = ()
    if semi >= 0:
        params = _parse_uri_params(text, semi + 1, end)
    uri = SipUri(scheme, user, password, host, port, params, headers)
    # Serialize as received (a replaced copy gets _text None and re-escapes).
    object.__setattr__(uri, "_text", text)
    return uri


def _parse_uri_params(text: str, start: int, end: int) -> tuple[tuple[str, str | None], ...]:
    # uri-parameters = *( ";" uri-parameter )
    # other-param = pname [ "=" pvalue ]
    section = text[start:end]
    if "%" not in section and grammar.PLAIN_URI_PARAMS_RE.fullmatch(section):
        return tuple(
            (name, value if eq else None)
            for name, eq, value in (item.partition("=") for item in section.split(";"))
        )
    params: list[tuple[str, str | None]] = []
    for item in section.split(";"):
        name, eq, value = item.partition("=")
        if not grammar.PARAMCHARS_RE.fullmatch(name):
            raise LocalProtocolError(f"invalid URI parameter {item!r} in {text!r}")
        if eq and not grammar.PARAMCHARS_RE.fullmatch(value):
            raise LocalProtocolError(f"invalid value for URI parameter {item!r} in {text!r}")
        params.append((_unescape(name), _unescape(value) if eq else None))
    return tuple(params)


def _parse_uri_headers(text: str, start: int) -> tuple[tuple[str, str], ...]:
    # headers = "?" header *( "&" header )
    # header = hname "=" hvalue
    headers: list[tuple[str, str]] = []
    for item in text[start:].split("&"):
        name, eq, value = item.partition("=")
        if not eq or not grammar.HNAME_RE.fullmatch(name) or not grammar.HVALUE_RE.fullmatch(value):
            raise LocalProtocolError(f"invalid URI header {item!r} in {text!r}")
        headers.append((_unescape(name), _unescape(value)))
    return tuple(headers)


def _parse_tel(text: str, start: int) -> TelUri:
    number, *raw_params = text[start:].split(";")
    if not grammar.TEL_NUMBER_RE.fullmatch(number):
        raise LocalProtocolError(f"invalid number in tel URI: {text!r}")
    params: list[tuple[str, str | None]] = []
    for item in raw_params:
        name, eq, value = item.partition("=")
        if not grammar.TEL_PNAME_RE.fullmatch(name) or (
            eq and not grammar.PARAMCHARS_RE.fullmatch(value)
        ):
            raise LocalProtocolError(f"invalid tel URI parameter {item!r} in {text!r}")
        params.append((name, value if eq else None))
    return TelUri(number, tuple(params))
