"""Retransmission of what the switch sends over UDP: RFC 3261 §17 timers in one place.

Requests: Timer A (INVITE, doubling) or E (others, doubling up to T2) resends until a
response stops it; Timer B / F gives up after 64*T1 (or the caller's own deadline, such
as a gateway's setup timeout) and calls the request's ``on_timeout``. Final responses to
a customer's INVITE: Timer G resends a non-2xx, and the 2xx is resent the same way
(§13.3.1.4) until the ACK comes; Timer H / 64*T1 gives up (``on_timeout``: a 2xx never
acknowledged means the customer is gone). Over TCP and TLS nothing is resent
(§17.1.1.2); a request there still gets its give-up timer when it has an ``on_timeout``.

The switch does not run one :mod:`tollguard.sip.transaction` object per message: it
knows which messages it sends on which leg, so one :class:`Outgoing` per message and one
timer on the :class:`~tollguard.switch.timers.Scheduler` are all the state it needs
(docs/architecture.md, "Departures from the brief").

While the switch drains (a graceful stop) every request sent over UDP is *unsettled*
until its final response or its give-up timer, so that the stop can wait for the BYEs
and CANCELs it sent.
"""

from __future__ import annotations

from collections.abc import Callable

from tollguard.switch.timers import Cancellable, Scheduler
from tollguard.switch.wire import Peer

__all__ = ["Outgoing", "Retransmitter"]

Send = Callable[[bytes, Peer], None]


class Outgoing:
    """A message the switch sent and may resend, with its give-up time."""

    __slots__ = ("data", "deadline", "handle", "interval", "invite", "on_timeout", "peer")

    def __init__(  # noqa: PLR0917
        self,
        data: bytes,
        peer: Peer,
        interval: float,
        deadline: float,
        invite: bool,
        on_timeout: Callable[[], None] | None,
    ) -> None:
        self.data = data
        self.peer = peer
        self.interval = interval
        self.deadline = deadline
        self.invite = invite  # Timer A doubles without the T2 cap
        self.on_timeout = on_timeout
        self.handle: Cancellable | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class Retransmitter:
    """Sends messages once and resends them on the RFC 3261 §17 schedule."""

    __slots__ = ("_scheduler", "_send", "_t1", "_t2", "draining", "on_settled", "unsettled")

    def __init__(self, scheduler: Scheduler, send: Send, t1: float, t2: float) -> None:
        self._scheduler = scheduler
        self._send = send
        self._t1 = t1
        self._t2 = t2
        self.draining = False
        self.unsettled: set[Outgoing] = set()
        self.on_settled: Callable[[], None] = lambda: None

    def request(
        self,
        data: bytes,
        peer: Peer,
        *,
        invite: bool,
        on_timeout: Callable[[], None] | None,
        deadline: float | None = None,
    ) -> Outgoing:
        """Send a request; resend it (UDP) until :meth:`answered` or its deadline."""
        now = self._scheduler.now()
        limit = deadline if deadline is not None else 64 * self._t1
        out = Outgoing(data, peer, self._t1, now + limit, invite, on_timeout)
        self._send(data, peer)
        if peer.transport == "udp":
            out.handle = self._scheduler.call_later(self._t1, self._resend, out)
            if self.draining:
                self.unsettled.add(out)
        elif on_timeout is not None:
            out.handle = self._scheduler.call_later(limit, self._give_up, out)
        return out

    def final_response(
        self, data: bytes, peer: Peer, on_timeout: Callable[[], None] | None = None
    ) -> Outgoing | None:
        """Send a final response to an INVITE; resend it (UDP) until :meth:`acked`."""
        self._send(data, peer)
        if peer.transport != "udp":
            return None
        out = Outgoing(
            data, peer, self._t1, self._scheduler.now() + 64 * self._t1, False, on_timeout
        )
        out.handle = self._scheduler.call_later(self._t1, self._resend, out)
        return out

    def answered(self, out: Outgoing, final: bool) -> None:
        """A response to ``out`` came: any stops the resending, a final one settles it."""
        out.cancel()
        if final and self.unsettled:
            self.unsettled.discard(out)
            self._check_settled()

    def forget(self, out: Outgoing) -> None:
        """Stop resending ``out`` for good (its call is forgotten): it is settled too."""
        out.cancel()
        if self.unsettled:
            self.unsettled.discard(out)
            self._check_settled()

    def _resend(self, out: Outgoing) -> None:
        now = self._scheduler.now()
        if now >= out.deadline:
            self._give_up(out)
            return
        self._send(out.data, out.peer)
        out.interval = out.interval * 2 if out.invite else min(out.interval * 2, self._t2)
        out.handle = self._scheduler.call_later(
            min(out.interval, out.deadline - now), self._resend, out
        )

    def _give_up(self, out: Outgoing) -> None:
        out.handle = None
        if self.draining:
            self.unsettled.discard(out)
            self._check_settled()
        if out.on_timeout is not None:
            out.on_timeout()

    def _check_settled(self) -> None:
        if not self.unsettled:
            self.on_settled()
