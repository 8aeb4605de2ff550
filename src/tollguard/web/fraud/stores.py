"""The switch's live-state stores on the ORM: bans, suspensions, fraud events.

They implement :class:`tollguard.domain.shield.BanStore`,
:class:`tollguard.domain.fraud.SuspensionStore` and
:class:`tollguard.domain.fraud.FraudEventStore`; the switch calls them from the
synchronising worker thread (``tollguard.state.sync.LiveStateSync``), never from the
event loop.
"""

from __future__ import annotations

from django.db import close_old_connections, connection

from tollguard.domain.fraud import FraudEvent, Suspension
from tollguard.domain.shield import Ban
from tollguard.web.fraud import selectors, services

__all__ = ["DbBanStore", "DbFraudEventStore", "DbSuspensionStore"]


def _recycle_connection() -> None:
    # Worker threads have no request cycle to close stale connections for them.
    if not connection.in_atomic_block:
        close_old_connections()


class DbBanStore:
    def version(self) -> int:
        _recycle_connection()
        return selectors.live_version(services.BANS)

    def load(self) -> list[Ban]:
        _recycle_connection()
        return selectors.bans()

    def save(self, bans: list[Ban]) -> None:
        _recycle_connection()
        services.save_bans(bans)


class DbSuspensionStore:
    def version(self) -> int:
        _recycle_connection()
        return selectors.live_version(services.SUSPENSIONS)

    def load(self) -> list[Suspension]:
        _recycle_connection()
        return selectors.suspensions()

    def save(self, suspensions: list[Suspension]) -> None:
        _recycle_connection()
        services.save_suspensions(suspensions)


class DbFraudEventStore:
    def save_events(self, events: list[FraudEvent]) -> None:
        _recycle_connection()
        services.save_events(events)
