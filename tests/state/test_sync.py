"""LiveStateSync against stores in memory: nothing decided is lost, operator changes
come back, a failing store keeps what it could not save."""

from __future__ import annotations

import ipaddress

import pytest

from tollguard.domain.fraud import FraudEvent, FraudRule, Suspension
from tollguard.domain.plan import FraudAction
from tollguard.domain.shield import Ban, BanReason
from tollguard.state.memory import MemoryBans, MemorySuspensions
from tollguard.state.sync import LiveStateSync

T0 = 1_800_000_000.0


class Store[T]:
    def __init__(self) -> None:
        self.items: list[T] = []
        self.changes = 0
        self.fail = False

    def version(self) -> int:
        return self.changes

    def load(self) -> list[T]:
        return list(self.items)

    def save(self, items: list[T]) -> None:
        if self.fail:
            raise ConnectionError("database down")
        self.items.extend(items)
        self.changes += 1


class Events:
    def __init__(self) -> None:
        self.saved: list[FraudEvent] = []

    def save_events(self, events: list[FraudEvent]) -> None:
        self.saved.extend(events)


def ban(text: str) -> Ban:
    return Ban(ipaddress.ip_network(text), BanReason.FLOOD, T0, T0 + 600)


def make() -> tuple[
    LiveStateSync, MemoryBans, Store[Ban], MemorySuspensions, Store[Suspension], Events
]:
    bans, ban_store = MemoryBans(), Store[Ban]()
    locks, lock_store = MemorySuspensions(), Store[Suspension]()
    events = Events()
    return (
        LiveStateSync(bans, ban_store, locks, lock_store, events),
        bans,
        ban_store,
        locks,
        lock_store,
        events,
    )


def test_decisions_are_saved_and_operator_changes_reloaded() -> None:
    sync, bans, ban_store, _locks, lock_store, events = make()
    ban_store.items.append(ban("192.0.2.1/32"))
    sync.load()
    assert bans.match("192.0.2.1", T0) is not None
    made = bans.add(ban("203.0.113.9/32"))
    sync.ban_made(made)
    lock = Suspension("account:7", "velocity", T0)
    event = FraudEvent(
        T0, FraudRule.VELOCITY_SPEND, FraudAction.SUSPEND_ACCOUNT, 3, 7, "x", "y", "z", lock
    )
    sync.event(event)
    sync.sync(T0)
    assert made in ban_store.items
    assert lock in lock_store.items
    assert events.saved == [event]
    # An operator lifts a ban in the store: the next sync drops it from memory.
    ban_store.items = [b for b in ban_store.items if str(b.network) != "192.0.2.1/32"]
    ban_store.changes += 1
    sync.sync(T0)
    assert bans.match("192.0.2.1", T0) is None
    assert bans.match("203.0.113.9", T0) is not None


def test_a_failing_store_keeps_what_it_could_not_save() -> None:
    sync, _bans, ban_store, _, _, _ = make()
    sync.load()
    ban_store.fail = True
    sync.ban_made(ban("203.0.113.9/32"))
    with pytest.raises(ConnectionError):
        sync.sync(T0)
    ban_store.fail = False
    sync.sync(T0)
    assert [str(b.network) for b in ban_store.items] == ["203.0.113.9/32"]


def test_expired_bans_are_forgotten_after_the_offence_memory() -> None:
    sync, bans, _, _, _, _ = make()
    sync.load()
    sync.offence_memory_s = 100
    bans.add(ban("203.0.113.9/32"))
    sync.sync(T0 + 650)
    assert bans.get(ipaddress.ip_network("203.0.113.9/32")) is not None
    sync.sync(T0 + 701)
    assert bans.get(ipaddress.ip_network("203.0.113.9/32")) is None
