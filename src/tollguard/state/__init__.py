"""Implementations of the domain's live-state ports.

``memory`` keeps the state in the switch process (one node); a networked one (Redis,
for several nodes sharing it) joins the registries below and must pass the same
contract tests (``tests/state/``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tollguard.domain.credit import Reservations
from tollguard.state.memory import MemoryReservations

__all__ = ["RESERVATION_STORES", "MemoryReservations"]

# Balance and reservation stores by name.
RESERVATION_STORES: Mapping[str, Callable[[], Reservations]] = {"memory": MemoryReservations}
