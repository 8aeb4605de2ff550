"""The interface every media backend implements, and the bypass backend.

The switch calls a backend at four moments of a call, naming the call by a session key
(the customer leg's Call-ID): ``offer`` when the customer's SDP goes towards a gateway,
``answer`` when a gateway's SDP (in a provisional or final response) goes back to the
customer, ``reoffer`` for any SDP carried by an in-dialog request or its response (a
re-INVITE or UPDATE, from either side), and ``end`` once the call is over. Each returns
the body to send on. Backends never raise into the call path for a body they cannot
use: they return it unchanged and log why.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Bypass", "MediaBackend"]


class MediaBackend(Protocol):
    def offer(self, session: str, body: bytes, content_type: str | None) -> bytes: ...

    def answer(self, session: str, body: bytes, content_type: str | None) -> bytes: ...

    def reoffer(
        self, session: str, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes: ...

    def end(self, session: str) -> None: ...


class Bypass:
    """Media flows directly between the two sides: every body passes unchanged."""

    __slots__ = ()

    def offer(self, session: str, body: bytes, content_type: str | None) -> bytes:
        return body

    def answer(self, session: str, body: bytes, content_type: str | None) -> bytes:
        return body

    def reoffer(
        self, session: str, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes:
        return body

    def end(self, session: str) -> None:
        return None
