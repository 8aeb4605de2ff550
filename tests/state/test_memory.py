"""The memory implementations against the port contracts."""

from __future__ import annotations

from tests.state.contract import BansContract, CountersContract, SuspensionsContract
from tollguard.state.memory import MemoryBans, MemoryCounters, MemorySuspensions


class TestMemoryCounters(CountersContract):
    def make(self) -> MemoryCounters:
        return MemoryCounters()


class TestMemoryBans(BansContract):
    def make(self) -> MemoryBans:
        return MemoryBans()


class TestMemorySuspensions(SuspensionsContract):
    def make(self) -> MemorySuspensions:
        return MemorySuspensions()
