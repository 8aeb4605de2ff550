"""SIP dialogs (RFC 3261 §12): identity, route set, targets and CSeq bookkeeping.

A :class:`Dialog` is an immutable value. Every method that changes it (a new request,
a received request's CSeq, confirmation, a target refresh) returns a new ``Dialog``;
the caller keeps the latest one, typically in a dict keyed by :attr:`Dialog.id`. This
keeps the B2BUA's two legs free of shared mutable state and makes each step testable.

States follow RFC 3261 §12: a 1xx with a To tag makes an *early* dialog, a 2xx a
*confirmed* one; BYE (or a failure of the early dialog) *terminates* it. The allowed
transitions are the table :data:`DIALOG_TRANSITIONS`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from tollguard.sip.errors import LocalProtocolError, RemoteProtocolError
from tollguard.sip.headers import Headers, NameAddr, Via, parse_name_addr
from tollguard.sip.message import Request, Response
from tollguard.sip.uri import SipUri, Uri

__all__ = [
    "DIALOG_TRANSITIONS",
    "Dialog",
    "DialogEvent",
    "DialogId",
    "DialogState",
    "dialog_id",
]

type DialogId = tuple[str, str | None, str | None]
"""``(Call-ID, local tag, remote tag)`` (RFC 3261 §12)."""


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogEvent(enum.Enum):
    CONFIRM = "confirm"  # a 2xx to the dialog-creating request
    TERMINATE = "terminate"  # BYE, or a non-2xx final ending an early dialog


# RFC 3261 §12.1 / §12.3 / §15.
DIALOG_TRANSITIONS: Final[dict[tuple[DialogState, DialogEvent], DialogState]] = {
    (DialogState.EARLY, DialogEvent.CONFIRM): DialogState.CONFIRMED,
    (DialogState.EARLY, DialogEvent.TERMINATE): DialogState.TERMINATED,
    (DialogState.CONFIRMED, DialogEvent.TERMINATE): DialogState.TERMINATED,
}

# Methods that reuse the CSeq number of the request they refer to (§13.2.2.4, §9.1).
_SAME_CSEQ: Final = frozenset({"ACK", "CANCEL"})


def _without_tag(address: NameAddr) -> NameAddr:
    if address.tag is None:
        return address
    params = tuple(param for param in address.params if param[0].lower() != "tag")
    return NameAddr(address.display_name, address.uri, params)


def _with_tag(address: NameAddr, tag: str | None) -> NameAddr:
    return address if tag is None else address.with_tag(tag)


def _contact_uri(message: Request | Response, what: str) -> Uri:
    contacts = message.headers.get_all("Contact")
    if not contacts:
        raise LocalProtocolError(f"{what} has no Contact to use as the remote target")
    address = parse_name_addr(contacts[0])
    return address.uri


def _is_sips(uri: Uri) -> bool:
    return isinstance(uri, SipUri) and uri.scheme == "sips"


@dataclass(frozen=True, slots=True)
class Dialog:
    """The dialog state of RFC 3261 §12.1, as seen from our side.

    ``local_uri``/``remote_uri`` are the From/To addresses without their tags (display
    names kept). ``route_set`` holds Record-Route values as received, in the order used
    for Route headers. ``local_cseq``/``remote_cseq`` are None while empty (§12.1.2).
    """

    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: NameAddr
    remote_uri: NameAddr
    local_cseq: int | None
    remote_cseq: int | None
    remote_target: Uri
    route_set: tuple[str, ...] = ()
    secure: bool = False
    state: DialogState = DialogState.CONFIRMED

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    # --- creation --------------------------------------------------------------------

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 101-299 response to our ``request`` creates (§12.1.2).

        The route set is the response's Record-Route in reverse order; the remote
        target is its Contact. A response without a To tag (an RFC 2543 peer) gives a
        null remote tag.
        """
        if not 101 <= response.status <= 299:
            raise LocalProtocolError(f"a {response.status} response does not create a dialog")
        local_tag = request.from_.tag
        if local_tag is None:
            raise LocalProtocolError("our request has no From tag")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=response.to.tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(request.to),
            local_cseq=request.cseq.seq,
            remote_cseq=None,
            remote_target=_contact_uri(response, f"{response.status} response"),
            route_set=tuple(reversed(response.headers.get_all("Record-Route"))),
            secure=_is_sips(request.uri),
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, *, early: bool = False) -> Dialog:
        """The dialog we create by answering ``request`` with a To tag of ``local_tag``.

        §12.1.1: route set from Record-Route in order, remote target from Contact,
        remote CSeq from the request; ``early`` when the answer is a provisional.
        """
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag,
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            local_cseq=None,
            remote_cseq=request.cseq.seq,
            remote_target=_contact_uri(request, f"{request.method} request"),
            route_set=request.headers.get_all("Record-Route"),
            secure=_is_sips(request.uri),
            state=DialogState.EARLY if early else DialogState.CONFIRMED,
        )

    # --- state -----------------------------------------------------------------------

    def _transition(self, event: DialogEvent) -> DialogState:
        try:
            return DIALOG_TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"cannot {event.value} a dialog in state {self.state.name}"
            ) from None

    def confirm(self, response: Response | None = None) -> Dialog:
        """Early -> confirmed. On the UAC side pass the 2xx: §12.2.1.2 recomputes the
        route set and remote target from it (and its To tag, if the 1xx had none)."""
        state = self._transition(DialogEvent.CONFIRM)
        if response is None:
            return dataclasses.replace(self, state=state)
        if not 200 <= response.status <= 299:
            raise LocalProtocolError(f"a {response.status} response does not confirm a dialog")
        return dataclasses.replace(
            self,
            state=state,
            remote_tag=response.to.tag if self.remote_tag is None else self.remote_tag,
            remote_target=_contact_uri(response, f"{response.status} response"),
            route_set=tuple(reversed(response.headers.get_all("Record-Route"))),
        )

    def terminate(self) -> Dialog:
        return dataclasses.replace(self, state=self._transition(DialogEvent.TERMINATE))

    def with_remote_target(self, message: Request | Response) -> Dialog:
        """Target refresh (§12.2): take the Contact of a re-INVITE/UPDATE or its 2xx."""
        return dataclasses.replace(self, remote_target=_contact_uri(message, "target refresh"))

    # --- requests within the dialog --------------------------------------------------

    def check_remote_cseq(self, request: Request) -> Dialog:
        """Record the CSeq of a request received in this dialog (§12.2.2).

        A number lower than the last one is out of order and must be answered 500,
        so this raises :class:`RemoteProtocolError` with status 500 (481 once the
        dialog is terminated). ACK and CANCEL are neither checked nor counted.
        """
        if self.state is DialogState.TERMINATED:
            raise RemoteProtocolError("request for a terminated dialog", 481)
        if request.method in _SAME_CSEQ:
            # They carry an INVITE's number, possibly older than a later request's,
            # and an ACK cannot be answered anyway.
            return self
        seq = request.cseq.seq
        if self.remote_cseq is not None and seq < self.remote_cseq:
            raise RemoteProtocolError(
                f"CSeq {seq} is lower than {self.remote_cseq}: out of order", 500
            )
        if seq == self.remote_cseq:
            return self
        return dataclasses.replace(self, remote_cseq=seq)

    def create_request(
        self,
        method: str,
        *,
        via: Via | str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        max_forwards: int = 70,
    ) -> tuple[Request, Dialog]:
        """A request within the dialog (§12.2.1.1) and the dialog after sending it.

        CSeq is one more than the last local number, except for ACK and CANCEL, which
        reuse the number of the INVITE they refer to (§13.2.2.4, §9.1). The Request-URI
        and Route follow §12.2.1.1, including the strict-router form when the first
        route has no ``lr`` parameter.
        """
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"cannot send {method} in a terminated dialog")
        if method in _SAME_CSEQ:
            if self.local_cseq is None:
                raise LocalProtocolError(f"{method} refers to an INVITE we never sent")
            seq = self.local_cseq
            updated = self
        else:
            # An empty local sequence number may start anywhere below 2**31 (§12.1.1).
            seq = 1 if self.local_cseq is None else self.local_cseq + 1
            updated = dataclasses.replace(self, local_cseq=seq)
        uri, routes = self._request_uri_and_routes()
        fields: list[tuple[str, str]] = [("Via", str(via))]
        fields.extend(("Route", route) for route in routes)
        fields += [
            ("Max-Forwards", str(max_forwards)),
            ("From", str(_with_tag(self.local_uri, self.local_tag))),
            ("To", str(_with_tag(self.remote_uri, self.remote_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        fields.extend(headers)
        return Request(method, uri, Headers(fields), body), updated

    def _request_uri_and_routes(self) -> tuple[Uri, tuple[str, ...]]:
        if not self.route_set:
            return self.remote_target, ()
        first = parse_name_addr(self.route_set[0]).uri
        if isinstance(first, SipUri) and not first.has_param("lr"):
            # §12.2.1.1 strict router: its URI becomes the Request-URI (without
            # headers), the remote target goes last in Route.
            if first.headers:
                first = dataclasses.replace(first, headers=(), _text=None)
            return first, (*self.route_set[1:], f"<{self.remote_target}>")
        return self.remote_target, self.route_set


def dialog_id(message: Request | Response) -> DialogId:
    """The id of the dialog a *received* message belongs to, from our side.

    A request we receive names us in To and the peer in From; a response we receive
    is to our request, so From is ours and To the peer's.
    """
    if isinstance(message, Request):
        return (message.call_id, message.to.tag, message.from_.tag)
    return (message.call_id, message.from_.tag, message.to.tag)
