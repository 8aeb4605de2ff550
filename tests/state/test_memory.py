"""The memory implementations against the port contracts."""

from __future__ import annotations

from dataclasses import replace

from tests.state.contract import BansContract, CountersContract, SuspensionsContract
from tests.state.reservations_contract import ReservationsContract
from tollguard.domain.registration import Binding
from tollguard.state.memory import (
    MemoryBans,
    MemoryBindings,
    MemoryCounters,
    MemoryReservations,
    MemorySuspensions,
)

NOW = 10_000.0


class TestMemoryCounters(CountersContract):
    def make(self) -> MemoryCounters:
        return MemoryCounters()


class TestMemoryBans(BansContract):
    def make(self) -> MemoryBans:
        return MemoryBans()


class TestMemorySuspensions(SuspensionsContract):
    def make(self) -> MemorySuspensions:
        return MemorySuspensions()


class TestMemoryReservations(ReservationsContract):
    def make(self) -> MemoryReservations:
        return MemoryReservations()


def _binding(uri: str, expires_at: float, account_id: int = 1) -> Binding:
    return Binding(account_id, uri, expires_at, "c1", 1, ("203.0.113.5", 40000), "udp", 0)


def test_memory_bindings_expire_in_order_and_skip_rewritten_accounts() -> None:
    store = MemoryBindings()
    a = _binding("sip:a@h", NOW + 10)
    b = _binding("sip:b@h", NOW + 20, 2)
    store.put(1, (a,))
    store.put(2, (b,))
    assert (store.of(1, NOW), len(store)) == ((a,), 2)
    store.put(1, (replace(a, expires_at=NOW + 100),))  # refreshed: its old due entry is stale
    assert store.expire(NOW + 15) == []
    assert store.expire(NOW + 25) == [b]
    assert store.of(2, NOW) == ()
    assert store.of(1, NOW + 101) == ()  # expired, not yet swept: not listed
    assert [x.contact for x in store.expire(NOW + 101)] == ["sip:a@h"]
    assert len(store) == 0
