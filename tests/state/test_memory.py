"""The memory implementations against the port contracts."""

from __future__ import annotations

from tests.state.contract import (
    BansContract,
    BindingsContract,
    CountersContract,
    SuspensionsContract,
)
from tests.state.reservations_contract import ReservationsContract
from tollguard.state.memory import (
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


class TestMemoryBindings(BindingsContract):
    def make(self) -> MemoryBindings:
        return MemoryBindings()
