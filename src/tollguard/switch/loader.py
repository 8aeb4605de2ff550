"""Keeps the switch's routing plan current without a restart.

The loader asks the :class:`PlanSource` for its version about once a second (in a worker
thread: the source may query a database) and, when it changed, loads and indexes a new
:class:`Plan` in a thread too, then swaps it in with one attribute assignment. A call
holds the plan it started with until it ends, so a swap never changes a call midway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tollguard.domain.plan import PlanData, PlanSource
from tollguard.domain.routing import Plan, build_plan

__all__ = ["PlanLoader"]

log = logging.getLogger(__name__)


class PlanLoader:
    """Holds the current :class:`Plan` in :attr:`plan` and reloads it on change."""

    def __init__(
        self,
        source: PlanSource,
        *,
        interval_s: float = 1.0,
        build: Callable[[PlanData], Plan] = build_plan,
    ) -> None:
        self._source = source
        self._interval = interval_s
        self._build = build
        self.version: int | None = None
        self._plan: Plan | None = None
        self.on_swap: Callable[[Plan, int], None] | None = None

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            raise RuntimeError("the plan has not been loaded yet")
        return self._plan

    def _load(self) -> tuple[int, Plan]:
        data = self._source.load()
        return data.version, self._build(data)

    async def load(self) -> None:
        """Load and build the plan now (raises when the very first load fails)."""
        version, plan = await asyncio.to_thread(self._load)
        self._plan, self.version = plan, version
        log.info("routing plan version %s loaded", version)
        if self.on_swap is not None:
            self.on_swap(plan, version)

    async def poll_once(self) -> bool:
        """Reload when the source's version changed; True when a new plan was swapped in."""
        try:
            version = await asyncio.to_thread(self._source.current_version)
            if version == self.version:
                return False
            await self.load()
        except Exception:
            # The source is the web layer's code and may fail in ways of its own; keep
            # serving on the previous plan, a broken edit must not stop calls.
            log.exception("routing plan reload failed, keeping version %s", self.version)
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self._interval)
            except TimeoutError:
                await self.poll_once()
