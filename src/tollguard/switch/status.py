"""The switch's live state, published for the web process once a second.

The dashboard runs in another process and must not ask the switch anything on the call
path, so the switch writes a small JSON document (``Settings.switch_status_path``) every
``interval_s``: calls in progress, calls since start, the call rate over the last
interval, how many messages failed on a bug of the switch (``handler_errors``, logged
with their Call-ID; anything but 0 deserves a look), its process id and the time it was
written. Each write goes to a temporary
file renamed over the old one, so a reader sees a whole document or the previous one.
A reader treats a document older than a few intervals as "switch not running"; the
switch removes it when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = ["StatusPublisher", "SwitchCounters"]

log = logging.getLogger(__name__)


class SwitchCounters(NamedTuple):
    active_calls: int  # calls in progress
    calls_total: int  # calls since start
    handler_errors: int = 0  # messages whose handling failed on a bug


Counters = Callable[[], SwitchCounters]


class StatusPublisher:
    """Writes the status document; :meth:`run` does so every ``interval_s``."""

    def __init__(
        self,
        path: Path,
        counters: Counters,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._counters = counters
        self._interval = interval_s
        self._clock = clock
        self._started = clock()
        self._last: tuple[float, int] | None = None

    def document(self) -> dict[str, object]:
        """The status now; the rate is over the time since the previous document."""
        now = self._clock()
        active, total, errors = self._counters()
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (total - self._last[1]) / (now - self._last[0])
        self._last = (now, total)
        return {
            "pid": os.getpid(),
            "active_calls": active,
            "calls_total": total,
            "calls_per_second": round(rate, 2),
            "handler_errors": errors,
            "started_at": self._started,
            "updated_at": now,
            "interval_s": self._interval,
        }

    def publish(self) -> None:
        """Write one document atomically (temporary file, then rename)."""
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.document()))
        os.replace(temporary, self.path)

    def remove(self) -> None:
        """Take the document away (the switch is stopping); never raises."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove the switch status %s: %s", self.path, exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish every ``interval_s`` until ``stop`` is set, then remove the document."""
        try:
            while not stop.is_set():
                try:
                    self.publish()
                except OSError as exc:
                    # The dashboard loses its live figures; calls are not affected.
                    log.warning("cannot write the switch status %s: %s", self.path, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval)
        finally:
            self.remove()
