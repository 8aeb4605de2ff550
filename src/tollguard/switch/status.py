"""The switch's live state, published for the web process once a second.

The dashboard runs in another process and must not ask the switch anything on the call
path, so the switch writes a small JSON document (``Settings.switch_status_path``) every
``interval_s``: calls in progress, calls since start, the call rate over the last
interval, how many messages failed on a bug of the switch (``handler_errors``, logged
with their Call-ID; anything but 0 deserves a look), the registrar's bindings and the
accounts that hold them, its process id and the time it was written. Each write goes to a temporary
file renamed over the old one, so a reader sees a whole document or the previous one.
The figures are read on the event loop, the file written in a worker thread: a slow or
stuck disk delays the document, never the calls (one write at a time; the next waits
for it). A reader treats a document older than a few intervals as "switch not
running"; the switch removes it when it stops.
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

__all__ = ["STALE_INTERVALS", "StatusPublisher", "SwitchCounters", "read_status"]

log = logging.getLogger(__name__)

# A document older than this many of the switch's intervals is stale: the switch stopped.
STALE_INTERVALS = 5
_COUNTS = ("active_calls", "calls_total", "handler_errors", "bindings", "registered_accounts")


class SwitchCounters(NamedTuple):
    active_calls: int  # calls in progress
    calls_total: int  # calls since start
    handler_errors: int = 0  # messages whose handling failed on a bug
    bindings: int = 0  # registrations: contacts bound now
    registered_accounts: int = 0  # accounts with at least one binding


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
        counters = self._counters()
        total = counters.calls_total
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (total - self._last[1]) / (now - self._last[0])
        self._last = (now, total)
        return {
            "pid": os.getpid(),
            "active_calls": counters.active_calls,
            "calls_total": total,
            "calls_per_second": round(rate, 2),
            "handler_errors": counters.handler_errors,
            "bindings": counters.bindings,
            "registered_accounts": counters.registered_accounts,
            "started_at": self._started,
            "updated_at": now,
            "interval_s": self._interval,
        }

    def publish(self) -> None:
        """Write one document now, in this thread (:meth:`write`)."""
        self.write(json.dumps(self.document()))

    def write(self, text: str) -> None:
        """Write ``text`` as the document atomically: a temporary file, then a rename."""
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(text)
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
                # The counters belong to the loop; the disk must not hold it up.
                text = json.dumps(self.document())
                try:
                    await asyncio.to_thread(self.write, text)
                except OSError as exc:
                    # The dashboard loses its live figures; calls are not affected.
                    log.warning("cannot write the switch status %s: %s", self.path, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval)
        finally:
            self.remove()


def read_status(path: Path, now: float) -> tuple[dict[str, object] | None, str]:
    """The running switch's document at ``path``, or None and why there is none (not
    running, stale, unreadable). Counts a switch of an older release did not write are
    0."""
    try:
        document = json.loads(path.read_text())
        if not isinstance(document, dict):
            raise TypeError("not a JSON object")
        updated = float(document["updated_at"])
        interval = float(document.get("interval_s", 1.0))
        for name in _COUNTS:
            document[name] = int(document.get(name, 0))
        document["calls_per_second"] = float(document.get("calls_per_second", 0.0))
    except FileNotFoundError:
        return None, "the switch is not running"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"the switch's status {path} cannot be read ({exc})"
    age = now - updated
    if age > STALE_INTERVALS * interval:
        return None, f"the switch has not reported for {age:.0f} s; it is probably stopped"
    return document, ""
