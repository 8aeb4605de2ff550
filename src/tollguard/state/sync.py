"""Bans, suspensions and fraud events between the switch's live state and the database.

The switch decides in memory; the database (through the web layer's stores) is where
those decisions outlive a restart and where operators add, import and lift them from
the admin, the API and ``tollguard bans``. :class:`LiveStateSync` joins the two:

* the shield and the fraud engine hand it what they decide (``ban_made``,
  ``suspension_made``, ``event``): a deque append, safe from the event loop;
* :meth:`LiveStateSync.sync`, called about once a second **in a worker thread**, saves
  what was queued, then reloads the ban list and the suspensions when an operator (or
  another node) changed them, and forgets expired state;
* :meth:`LiveStateSync.load` fills the memory at start, before the first call.

Saving first and reloading after means a ban made between two syncs is never lost: it
is in the store before the store is read back. Every node syncs against the same
database, so a ban made on one holds on all within a sync period (as DenyHosts'
synchronisation server did for SSH); a shared live store (Redis) will make that instant.
"""

from __future__ import annotations

import logging
from collections import deque

from tollguard.domain.fraud import (
    FraudEvent,
    FraudEventStore,
    Suspension,
    Suspensions,
    SuspensionStore,
)
from tollguard.domain.shield import Ban, Bans, BanStore

__all__ = ["LiveStateSync"]

logger = logging.getLogger(__name__)


class LiveStateSync:
    __slots__ = (
        "_ban_store",
        "_ban_version",
        "_bans",
        "_event_store",
        "_events",
        "_new_bans",
        "_new_suspensions",
        "_suspension_store",
        "_suspension_version",
        "_suspensions",
        "offence_memory_s",
    )

    def __init__(
        self,
        bans: Bans,
        ban_store: BanStore,
        suspensions: Suspensions,
        suspension_store: SuspensionStore,
        event_store: FraudEventStore | None = None,
        *,
        offence_memory_s: float = 30 * 86400.0,
    ) -> None:
        self._bans = bans
        self._ban_store = ban_store
        self._suspensions = suspensions
        self._suspension_store = suspension_store
        self._event_store = event_store
        self.offence_memory_s = offence_memory_s
        self._new_bans: deque[Ban] = deque()
        self._new_suspensions: deque[Suspension] = deque()
        self._events: deque[FraudEvent] = deque(maxlen=100_000)
        self._ban_version = -1
        self._suspension_version = -1

    # --- called on the call path ------------------------------------------------------------

    def ban_made(self, ban: Ban) -> None:
        self._new_bans.append(ban)

    def suspension_made(self, suspension: Suspension) -> None:
        self._new_suspensions.append(suspension)

    def event(self, event: FraudEvent) -> None:
        self._events.append(event)
        if event.suspension is not None:
            self._new_suspensions.append(event.suspension)

    # --- called in a worker thread --------------------------------------------------------------

    def load(self) -> None:
        """Read the stores into memory (at start)."""
        self._ban_version = self._ban_store.version()
        self._bans.replace(self._ban_store.load())
        self._suspension_version = self._suspension_store.version()
        self._suspensions.replace(self._suspension_store.load())

    def sync(self, now: float) -> None:
        """Save what was decided since the last sync; read back what operators changed."""
        # What a failed save drained goes back to the front of its queue: a database
        # that is down for a while loses nothing the switch decided.
        bans = _drain(self._new_bans)
        if bans:
            try:
                self._ban_store.save(bans)
            except BaseException:
                self._new_bans.extendleft(reversed(bans))
                raise
        suspensions = _drain(self._new_suspensions)
        if suspensions:
            try:
                self._suspension_store.save(suspensions)
            except BaseException:
                self._new_suspensions.extendleft(reversed(suspensions))
                raise
        events = _drain(self._events)
        if events and self._event_store is not None:
            try:
                self._event_store.save_events(events)
            except BaseException:
                self._events.extendleft(reversed(events))
                raise
        version = self._ban_store.version()
        if version != self._ban_version:
            self._ban_version = version
            self._bans.replace(self._ban_store.load())
            logger.debug("ban list reloaded at version %d", version)
        version = self._suspension_store.version()
        if version != self._suspension_version:
            self._suspension_version = version
            self._suspensions.replace(self._suspension_store.load())
        self._bans.prune(now, self.offence_memory_s)


def _drain[T](queue: deque[T]) -> list[T]:
    items: list[T] = []
    while True:
        try:
            items.append(queue.popleft())
        except IndexError:
            return items
