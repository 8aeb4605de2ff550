"""Media hooks: where a call's session descriptions pass through the media backend.

The B2BUA calls these at the offer (the customer's INVITE towards each gateway), the
answer (a gateway's SDP in a provisional or 2xx towards the customer), every in-dialog
re-offer and its answer, and at the end of the call. The backend decides what happens to
the RTP (:mod:`tollguard.media`); with ``bypass`` the bodies pass unchanged.
"""

from __future__ import annotations

from tollguard.media import Bypass, MediaBackend
from tollguard.switch.call import Call

__all__ = ["MediaHooks"]


class MediaHooks:
    """One backend for every call of this switch process."""

    __slots__ = ("_backend",)

    def __init__(self, backend: MediaBackend | None = None) -> None:
        self._backend: MediaBackend = backend or Bypass()

    def offer(self, call: Call, body: bytes, content_type: str | None) -> bytes:
        """The customer's offer (a non-empty body), as it goes to the gateways."""
        return self._backend.offer(call.a.call_id, body, content_type)

    def answer(self, call: Call, body: bytes, content_type: str | None) -> bytes:
        """A gateway's answer (18x or 2xx, a non-empty body), as it goes to the customer."""
        return self._backend.answer(call.a.call_id, body, content_type)

    def reoffer(
        self, call: Call, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes:
        """A body carried by an in-dialog request or its response, as it is relayed."""
        return self._backend.reoffer(call.a.call_id, from_customer, body, content_type)

    def end(self, call: Call) -> None:
        self._backend.end(call.a.call_id)
