"""SIP grammar as compiled regular expressions.

Each pattern quotes the ABNF rule of RFC 3261 §25.1 (or the RFC named) that it
implements. Header values reach these patterns already unfolded: every LWS
(``[*WSP CRLF] 1*WSP``) has been replaced by a single SP (RFC 3261 §7.3.1), so
SWS/LWS below are plain runs of SP/HTAB.
"""

from __future__ import annotations

import re

# alphanum = ALPHA / DIGIT
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"  # noqa: S105 - the grammar rule, not a credential
TOKEN_RE = re.compile(TOKEN)

# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#        "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"

# Call-ID = ( "Call-ID" / "i" ) HCOLON callid
# callid = word [ "@" word ]
CALLID_RE = re.compile(rf"{WORD}(?:@{WORD})?")

# SWS = [LWS]  (after unfolding: optional SP/HTAB)
SWS = r"[ \t]*"
# LWS = [*WSP CRLF] 1*WSP
LWS = r"[ \t]+"

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED_STRING = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
QUOTED_STRING_RE = re.compile(QUOTED_STRING)
QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)

# hostname = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
HOSTNAME = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?"
)
# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
IPV4 = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
# IPv6reference = "[" IPv6address "]"   (the address itself is checked with ipaddress)
IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]+\]"
# host = hostname / IPv4address / IPv6reference
# (hostname first: it cannot match a prefix of an IPv4 address, the reverse can)
HOST = rf"(?:{HOSTNAME}|{IPV4}|{IPV6_REFERENCE})"
HOST_RE = re.compile(HOST)
IPV6_REFERENCE_RE = re.compile(IPV6_REFERENCE)
# port = 1*DIGIT
PORT_RE = re.compile(r"[0-9]{1,5}")

# escaped = "%" HEXDIG HEXDIG
ESCAPED = r"%[0-9A-Fa-f]{2}"
# unreserved = alphanum / mark
# mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER_RE = re.compile(rf"(?:[{UNRESERVED}&=+$,;?/]|{ESCAPED})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD_RE = re.compile(rf"(?:[{UNRESERVED}&=+$,]|{ESCAPED})*")
# pname = 1*paramchar ; pvalue = 1*paramchar
# paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHARS_RE = re.compile(rf"(?:[{UNRESERVED}\[\]/:&+$]|{ESCAPED})+")
# The common case of uri-parameters without escapes, after the first ";":
# pname [ "=" pvalue ] *( ";" pname [ "=" pvalue ] )
_PLAIN_PARAM = rf"[{UNRESERVED}\[\]/:&+$]+(?:=[{UNRESERVED}\[\]/:&+$]+)?"
PLAIN_URI_PARAMS_RE = re.compile(rf"{_PLAIN_PARAM}(?:;{_PLAIN_PARAM})*")
# The common SIP URI after "sip:": userinfo without password or escapes,
# hostname or IPv4address, port, unescaped parameters, no headers.
# SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
PLAIN_SIP_URI_RE = re.compile(
    rf"(?:([{UNRESERVED}&=+$,;?/]+)@)?({HOSTNAME}|{IPV4})(?::([0-9]{{1,5}}))?"
    rf"((?:;{_PLAIN_PARAM})*)"
)
# hname = 1*( hnv-unreserved / unreserved / escaped ) ; hvalue = *( ... )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNAME_RE = re.compile(rf"(?:[{UNRESERVED}\[\]/?:+$]|{ESCAPED})+")
HVALUE_RE = re.compile(rf"(?:[{UNRESERVED}\[\]/?:+$]|{ESCAPED})*")

# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# absoluteURI = scheme ":" ( hier-part / opaque-part )
# uric = reserved / unreserved / escaped
# reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","
# opaque-part = uric-no-slash *uric ; hier-part = ( net-path / abs-path ) [ "?" query ]
URIC_RE = re.compile(rf"(?:[{UNRESERVED};/?:@&=+$,]|{ESCAPED})+")

# RFC 3966 §3: telephone-subscriber = global-number / local-number
# global-number-digits = "+" *phonedigit DIGIT *phonedigit
# local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
# visual-separator = "-" / "." / "(" / ")"
# (Written so that the first digit anchors the match: no backtracking blow-up.)
TEL_NUMBER_RE = re.compile(r"\+[\-.()]*[0-9][0-9\-.()]*|[\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
# pname = 1*( alphanum / "-" ) ; pvalue = 1*paramchar
TEL_PNAME_RE = re.compile(r"[A-Za-z0-9\-]+")

# generic-param = token [ EQUAL gen-value ]
# gen-value = token / host / quoted-string
# SEMI = SWS ";" SWS ; EQUAL = SWS "=" SWS
# (host is covered by token, except for IPv6reference)
GENERIC_PARAM_RE = re.compile(
    rf"{SWS};{SWS}({TOKEN})(?:{SWS}={SWS}({TOKEN}|{IPV6_REFERENCE}|{QUOTED_STRING}))?"
)

# via-received = "received" EQUAL (IPv4address / IPv6address)
# An IPv6address here has no brackets (RFC 5118 §4.5 calls both forms valid); a bare
# one is not a token, so it is matched on its own (the address is checked with
# ipaddress). The lookahead keeps "received=2001" from being cut short of its colon.
VIA_RECEIVED_IPV6_RE = re.compile(
    rf"{SWS};{SWS}([Rr][Ee][Cc][Ee][Ii][Vv][Ee][Dd]){SWS}={SWS}([0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)"
)

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# SLASH = SWS "/" SWS ; sent-by = host [ COLON port ] ; COLON = SWS ":" SWS
VIA_PARM_RE = re.compile(
    rf"{SWS}({TOKEN}){SWS}/{SWS}({TOKEN}){SWS}/{SWS}({TOKEN}){LWS}({HOST})(?:{SWS}:{SWS}([0-9]{{1,5}}))?"
)
# COMMA = SWS "," SWS
COMMA_RE = re.compile(rf"{SWS},{SWS}")

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT   ("SIP" is case-insensitive)
SIP_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")

# Method = INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
# extension-method = token
METHOD_RE = TOKEN_RE

# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
# Status-Code = 3DIGIT ; Reason-Phrase = *(reserved / unreserved / escaped
#               / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
REASON_PHRASE_RE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")

# SIP-date = rfc1123-date
# rfc1123-date = wkday "," SP date1 SP time SP "GMT"
# date1 = 2DIGIT SP month SP 4DIGIT ; time = 2DIGIT ":" 2DIGIT ":" 2DIGIT
SIP_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)

# display-name = *(token LWS) / quoted-string
DISPLAY_TOKENS_RE = re.compile(rf"{TOKEN}(?:{LWS}{TOKEN})*")

# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
CSEQ_RE = re.compile(rf"([0-9]+){LWS}({TOKEN})")

# Fast acceptance checks for the shapes nearly every peer sends. Each accepts a subset of
# what the full parser accepts (it is built from the same rules, minus escapes, IPv6,
# backslashes and non-ASCII), so a value it matches is known to parse; anything else goes
# through the full parser, which accepts it or names the fault.

# port = 1*DIGIT, limited to 0..65535 as the full parser checks separately.
PORT_16BIT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[0-5]?[0-9]{1,4})"
# *( SEMI generic-param ), then trailing SP/HTAB.
_FAST_PARAMS = (
    rf"(?:{SWS};{SWS}{TOKEN}(?:{SWS}={SWS}(?:{TOKEN}|{IPV6_REFERENCE}|{QUOTED_STRING}))?)*{SWS}"
)
# The plain SIP URI of PLAIN_SIP_URI_RE with the port in range.
_FAST_SIP_URI = (
    rf"sips?:(?:[{UNRESERVED}&=+$,;?/]+@)?(?:{HOSTNAME}|{IPV4})(?::{PORT_16BIT})?"
    rf"(?:;{_PLAIN_PARAM})*"
)
# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT, then header parameters; the
# display name quoted without quoted-pairs, or tokens.
FAST_NAME_ADDR_RE = re.compile(
    r'(?:"[\t \x21\x23-\x5b\x5d-\x7e]*"[ \t]*|'
    rf"{TOKEN}(?:{LWS}{TOKEN})*{SWS})?<{_FAST_SIP_URI}>{_FAST_PARAMS}"
)
# One via-parm of SIP/2.0 over a known transport to a hostname or IPv4 address.
FAST_VIA_RE = re.compile(
    rf"SIP/2\.0/(?:UDP|TCP|TLS|WS|WSS|SCTP) (?:{HOSTNAME}|{IPV4})(?::{PORT_16BIT})?{_FAST_PARAMS}"
)
# The same common shapes with their parts captured, for building values without the
# general parser: header parameters limited to ";token[=token]" without LWS, which
# splits on ";" and "=" alone.
_PLAIN_GENERIC_PARAMS = rf"((?:;{TOKEN}(?:={TOKEN})?)*)"
# display name (quoted, or tokens), the URI inside <>, the parameters.
FAST_NAME_ADDR_PARTS_RE = re.compile(
    r'(?:"([\t \x21\x23-\x5b\x5d-\x7e]*)"[ \t]*|'
    rf"({TOKEN}(?:{LWS}{TOKEN})*){SWS})?<({_FAST_SIP_URI})>{_PLAIN_GENERIC_PARAMS}"
)
# transport, host, port, parameters of one via-parm.
FAST_VIA_PARTS_RE = re.compile(
    rf"SIP/2\.0/(UDP|TCP|TLS|WS|WSS|SCTP) ({HOSTNAME}|{IPV4})(?::({PORT_16BIT}))?"
    rf"{_PLAIN_GENERIC_PARAMS}"
)
