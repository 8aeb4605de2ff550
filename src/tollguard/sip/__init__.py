"""Sans-IO SIP: messages, parsing and serialization, URIs and headers.

Bytes in, values out; nothing here touches sockets, the event loop or the clock.
The public names of the message layer (errors, status, uri, headers, message,
parser) are re-exported here, listed in ``__all__``.
"""

from tollguard.sip.errors import LocalProtocolError, MessageDropped, RemoteProtocolError, SipError
from tollguard.sip.headers import (
    CSeq,
    Headers,
    HeaderSpec,
    NameAddr,
    ReasonValue,
    Via,
    canonical_name,
    header_key,
    header_spec,
    parse_contacts,
    parse_content_length,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_reason,
    parse_via,
    split_list,
)
from tollguard.sip.message import Message, Request, Response, make_response, response_headers
from tollguard.sip.parser import (
    DEFAULT_MAX_MESSAGE_SIZE,
    SUPPORTED_URI_SCHEMES,
    StreamFramer,
    error_response,
    parse_message,
    read_message,
    validate_request,
    validate_response,
)
from tollguard.sip.status import StatusCode, reason_phrase
from tollguard.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "SUPPORTED_URI_SCHEMES",
    "AbsoluteUri",
    "CSeq",
    "HeaderSpec",
    "Headers",
    "LocalProtocolError",
    "Message",
    "MessageDropped",
    "NameAddr",
    "ReasonValue",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SipError",
    "SipUri",
    "StatusCode",
    "StreamFramer",
    "TelUri",
    "Uri",
    "Via",
    "canonical_name",
    "error_response",
    "header_key",
    "header_spec",
    "make_response",
    "parse_contacts",
    "parse_content_length",
    "parse_cseq",
    "parse_max_forwards",
    "parse_message",
    "parse_name_addr",
    "parse_reason",
    "parse_uri",
    "parse_via",
    "read_message",
    "reason_phrase",
    "response_headers",
    "split_list",
    "validate_request",
    "validate_response",
]
