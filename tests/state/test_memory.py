"""The memory implementations against the port contracts, and what they keep."""

from __future__ import annotations

from decimal import Decimal

from tests.state.contract import (
    BansContract,
    BindingsContract,
    CountersContract,
    SuspensionsContract,
)
from tests.state.reservations_contract import ReservationsContract
from tollguard.domain.registration import Binding
from tollguard.state.memory import (
    SETTLED_MEMORY_S,
    MemoryBans,
    MemoryBindings,
    MemoryCounters,
    MemoryReservations,
    MemorySuspensions,
)


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


def _kept(store: MemoryReservations) -> tuple[int, int, int, int]:
    """What the store holds for calls: reservations, lease entries, settled keys."""
    return len(store._held), len(store._leases), len(store._settled), len(store._forget)


def test_ended_calls_leave_nothing_in_the_reservations_store() -> None:
    store = MemoryReservations()
    now = 1_800_000_000.0
    store.open(1, Decimal(1_000_000), 1)
    # 3000 calls, up to 20 at a time: each reserves, is extended (its lease moves twice)
    # and ends one of three ways: committed, released, or its lease lapses.
    live: list[str] = []
    for n in range(3000):
        key = f"call-{n}"
        assert store.reserve(1, key, Decimal("0.10"), Decimal(0), now + 60)
        assert store.extend(1, key, Decimal("0.10"), Decimal(0), now + 120)
        assert store.extend(1, key, Decimal("0.10"), Decimal(0), now + 180)
        live.append(key)
        if len(live) == 20:
            for m, ended in enumerate(live):
                if m % 3 == 0:
                    store.commit(1, ended, Decimal("0.05"), now)
                elif m % 3 == 1:
                    store.release(1, ended, now)
            live = [k for m, k in enumerate(live) if m % 3 == 2]
            # The lapsing ones: their leases end a second after the others'.
            now += 181
            assert {lapsed.key for lapsed in store.expire(now)} == set(live)
            live = []
            # At most two lease entries per reservation held, whatever the churn.
            assert len(store._leases) <= 2 * len(store._held) + 1
        else:
            assert len(store._leases) <= 2 * len(store._held) + 1
    assert store.available(1) == store.balance(1)
    held, leases, settled, forget = _kept(store)
    assert (held, leases) == (0, 0)
    assert settled == forget > 0  # remembered for repeated commits, for a while
    store.expire(now + SETTLED_MEMORY_S)
    assert _kept(store) == (0, 0, 0, 0)


def test_the_lease_heap_is_rebuilt_while_calls_last() -> None:
    store = MemoryReservations()
    now = 1_800_000_000.0
    store.open(1, Decimal(1_000), 1)
    for n in range(10):
        store.reserve(1, f"long-{n}", Decimal(1), Decimal(0), now + 3600)
    # Many short calls beside ten long ones: ended calls do not pile up in the heap.
    for n in range(5000):
        store.reserve(1, f"short-{n}", Decimal(1), Decimal(0), now + 3600)
        store.release(1, f"short-{n}", now)
    assert len(store._leases) <= 2 * 10 + 1
    # The long calls' leases still lapse, once each.
    assert len(store.expire(now + 3600)) == 10
    assert _kept(store)[:2] == (0, 0)


class TestMemoryBindings(BindingsContract):
    def make(self) -> MemoryBindings:
        return MemoryBindings()


def test_bindings_refreshed_again_and_again_keep_a_bounded_heap() -> None:
    """A phone re-registering every few seconds must not pile up expiry entries."""
    store = MemoryBindings()
    other = Binding(2, "sip:b@192.0.2.2", 500.0, "c2", 1, ("192.0.2.2", 5060), "udp", 0)
    store.put(2, (other,))
    for refresh in range(1000):
        binding = Binding(
            1, "sip:a@192.0.2.1", 100.0 + refresh, "c1", refresh, ("192.0.2.1", 5060), "udp", 0
        )
        store.put(1, (binding,))
        assert len(store._due) <= 2 * 2 + 64 + 1
    # Expiry still finds both, each at its own time.
    assert store.expire(600.0) == [other]
    assert store.expire(1098.5) == []
    assert store.expire(1099.0) == [binding]
    assert len(store) == 0
