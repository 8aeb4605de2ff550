"""Media hooks: where a call's session descriptions pass through its media backend.

The B2BUA calls these at the offer (the customer's INVITE towards the gateways), the
answer (a gateway's SDP in a provisional or 2xx towards the customer; of a forked call,
only the answering fork's, or the early media of a fork that rings alone), the moment the
call is answered, every in-dialog re-offer and its answer, and at the end of the call.

Which backend carries a call (:mod:`tollguard.media`: ``bypass``, ``relay``,
``rtpengine``) is decided once, at the offer, because every gateway of the route is
offered the same description: the customer's own choice when it made one; otherwise an
anchoring backend (``relay`` or ``rtpengine``) that a provider of the call's route asks
for, the first in route order; otherwise ``bypass`` when a provider of the route asks
for it; otherwise the switch's default (``media.default``). On an inbound call the
customer is the DID's owner and the route is the provider delivering the call.

A backend that sees an answered call's media stop reports it; the hooks hand the call
to :attr:`MediaHooks.on_timeout` (the B2BUA ends it with :data:`REASON_MEDIA_TIMEOUT`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tollguard.domain.plan import MediaChoice
from tollguard.domain.routing import RouteCandidate
from tollguard.media import Bypass, MediaBackend, MediaCounters, MediaRefused, Party
from tollguard.switch.call import Call, Leg

__all__ = ["REASON_MEDIA_TIMEOUT", "MediaHooks"]

# RFC 3326 Reason of the BYEs that end a call whose media stopped: Q.850 102, "recovery
# on timer expiry", the cause the session timers use too; the CDR says which timer.
REASON_MEDIA_TIMEOUT = 'Q.850;cause=102;text="Media timeout"'


class MediaHooks:
    """The media backends of this switch process and the calls each one carries."""

    __slots__ = ("_backends", "_calls", "_default", "on_timeout")

    def __init__(
        self,
        backends: Mapping[str, MediaBackend] | None = None,
        default: str = MediaChoice.BYPASS.value,
    ) -> None:
        self._backends: dict[str, MediaBackend] = {MediaChoice.BYPASS.value: Bypass()}
        self._backends.update(backends or {})
        self._default = default
        self._calls: dict[str, tuple[Call, MediaBackend]] = {}
        self.on_timeout: Callable[[Call], None] = lambda call: None
        for backend in self._backends.values():
            backend.on_timeout = self._timed_out

    def choose(self, call: Call) -> str:
        """The backend name for ``call`` (see the module docstring)."""
        customer = call.customer
        if customer is not None and customer.media is not MediaChoice.DEFAULT:
            return customer.media.value
        # The providers of the route; on an inbound call, the provider that delivers it.
        providers = [
            candidate.provider
            for candidate in call.candidates
            if isinstance(candidate, RouteCandidate)
        ]
        if call.inbound_gateway is not None:
            providers.append(call.inbound_gateway[0])
        choices = [p.media for p in providers if p.media is not MediaChoice.DEFAULT]
        for choice in choices:
            if choice is not MediaChoice.BYPASS:
                return choice.value
        return MediaChoice.BYPASS.value if choices else self._default

    def offer(self, call: Call, body: bytes, content_type: str | None) -> bytes:
        """The customer's offer, as it goes to the gateways; may raise MediaRefused.

        An INVITE without a body (the offer would come in the gateway's 2xx, RFC 3261
        §13.2.1) cannot be anchored: a call that must be is refused.
        """
        name = self.choose(call)
        backend = self._backends.get(name)
        if backend is None:
            raise MediaRefused(503, "Service Unavailable", f"media backend {name!r} is not set up")
        if name == MediaChoice.BYPASS.value:
            return body
        if not body:
            raise MediaRefused(
                488, "Not Acceptable Here", f"an INVITE without SDP cannot be anchored ({name})"
            )
        peer = call.a.peer
        result = backend.offer(
            call.a.call_id, body, content_type, Party(*peer.address, peer.transport)
        )
        self._calls[call.a.call_id] = (call, backend)
        return result

    def answer(self, call: Call, leg: Leg, body: bytes, content_type: str | None) -> bytes:
        """The answer (18x or 2xx, a non-empty body) that came on gateway ``leg``, as it
        goes to the customer. On a forked call only the fork that answers (or the only
        one ringing) gets here: the backend sees one callee side."""
        entry = self._calls.get(call.a.call_id)
        if entry is None:
            return body
        peer = leg.peer
        return entry[1].answer(
            call.a.call_id, body, content_type, Party(*peer.address, peer.transport)
        )

    def answered(self, call: Call) -> None:
        """The call is answered: its media timeout runs from now."""
        entry = self._calls.get(call.a.call_id)
        if entry is not None:
            entry[1].answered(call.a.call_id)

    def reoffer(
        self, call: Call, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes:
        """A body carried by an in-dialog request or its response, as it is relayed."""
        entry = self._calls.get(call.a.call_id)
        if entry is None:
            return body
        return entry[1].reoffer(call.a.call_id, from_customer, body, content_type)

    def end(self, call: Call) -> MediaCounters:
        """The call is over: its media is released; returns its counters for the CDR."""
        entry = self._calls.pop(call.a.call_id, None)
        if entry is None:
            return MediaCounters(self.choose(call) if call.customer is not None else "bypass")
        return entry[1].end(call.a.call_id)

    def _timed_out(self, session: str) -> None:
        entry = self._calls.get(session)
        if entry is not None:
            self.on_timeout(entry[0])
