"""What the switch puts on the wire: its own Via and Contact, responses, requests on a leg.

One :class:`Signalling` per switch process holds the transports' send function, the
address the switch advertises and the identifier factory. Sending never raises: a
transport error is logged and the transaction timers deal with the silence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tollguard.sip.message import Request, Response
from tollguard.switch.call import Leg
from tollguard.switch.wire import IdFactory, Peer, header_lines, reason_phrase, render_response
from tollguard.transport import Address, TransportError

__all__ = ["SendFunction", "Signalling", "head_of", "head_parts", "to_tag"]

log = logging.getLogger(__name__)

SendFunction = Callable[[bytes, str, Address, int], None]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REGISTER"


def to_tag(message: Request | Response) -> str | None:
    """The To tag; most To fields of new requests have none, seen without parsing."""
    to = message.headers.get("To")
    if to is None or "tag" not in to.lower():
        return None
    return message.to.tag


def head_parts(message: Request | Response) -> tuple[str, str, str]:
    """The Via and From lines, the To value, the Call-ID and CSeq lines of a request."""
    headers = message.headers
    cseq = message.cseq
    return (
        f"{header_lines('Via', headers.values('Via'))}From: {headers.get('From')}\r\n",
        headers.get("To") or "",
        f"Call-ID: {message.call_id}\r\nCSeq: {cseq.seq} {cseq.method}\r\n",
    )


def head_of(message: Request | Response, *, to_tag_value: str | None = None) -> str:
    """The Via/From/To/Call-ID/CSeq block of a request, for responses to it."""
    before, to, after = head_parts(message)
    if to_tag_value and to_tag(message) is None:
        return f"{before}To: {to};tag={to_tag_value}\r\n{after}"
    return f"{before}To: {to}\r\n{after}"


class Signalling:
    """Renders and sends the switch's own messages."""

    __slots__ = ("_host", "_ports", "_send", "ids")

    def __init__(self, host: str, ids: IdFactory) -> None:
        self._host = host
        self._ports: dict[str, int] = {}
        self._send: SendFunction | None = None
        self.ids = ids

    @property
    def host(self) -> str:
        return self._host

    def bind(self, send: SendFunction, ports: dict[str, int], host: str | None = None) -> None:
        self._send = send
        self._ports = dict(ports)
        if host:
            self._host = host

    def out(self, data: bytes, peer: Peer) -> None:
        assert self._send is not None
        try:
            self._send(data, peer.transport, peer.address, peer.connection)
        except TransportError as exc:
            log.warning("cannot send to %s:%s over %s: %s", *peer.address, peer.transport, exc)

    def via(self, transport: str, branch: str | None = None) -> str:
        port = self._ports.get(transport, 0)
        branch = branch or self.ids.branch()
        return f"SIP/2.0/{transport.upper()} {self._host}:{port};branch={branch};rport"

    def contact(self, transport: str) -> str:
        port = self._ports.get(transport, 0)
        param = "" if transport == "udp" else f";transport={transport}"
        return f"Contact: <sip:tollguard@{self._host}:{port}{param}>"

    def respond(
        self,
        request: Request,
        peer: Peer,
        status: int,
        reason: str | None = None,
        extra: tuple[str, ...] = (),
        *,
        to_tag: str | None = None,
    ) -> bytes:
        """Answer ``request`` (statelessly: nothing is resent)."""
        data = render_response(
            status, reason or reason_phrase(status), head_of(request, to_tag_value=to_tag), extra
        )
        self.out(data, peer)
        return data

    def new_request_head(self, leg: Leg, method: str) -> str:
        """Via..Route of a new request on ``leg``: the next CSeq, a new branch."""
        leg.cseq += 1
        return leg.request_head(self.via(leg.peer.transport), method, leg.cseq)
