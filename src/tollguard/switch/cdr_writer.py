"""CDRs leave the call path through a queue and are written in batches by one thread.

The event loop only appends to a deque (atomic under the GIL); a worker thread writes
batches of ``batch_size`` through :meth:`CdrSink.write_batch`, or whatever is queued every
``flush_interval_s``. A failing sink keeps its batch and is retried; :meth:`CdrWriter.close`
writes everything still queued before it returns.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from tollguard.domain.cdr import Cdr, CdrSink

__all__ = ["CdrWriter"]

log = logging.getLogger(__name__)

# A sink that keeps failing at shutdown gets this many more tries before the CDRs are
# logged as lost (they are logged in full so that they can be replayed).
_CLOSE_RETRIES = 3


class CdrWriter:
    """Queue CDRs from the event loop; a worker thread writes them in batches."""

    def __init__(self, sink: CdrSink, *, batch_size: int = 500, flush_interval_s: float = 1.0):
        self._sink = sink
        self._batch_size = max(1, batch_size)
        self._interval = flush_interval_s
        self._queue: deque[Cdr] = deque()
        self._wake = threading.Event()
        self._closing = False
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="tollguard-cdr", daemon=True)
        self._thread.start()

    def submit(self, cdr: Cdr) -> None:
        """Queue one CDR (called on the event loop; never blocks)."""
        self._queue.append(cdr)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _take(self) -> list[Cdr]:
        batch: list[Cdr] = []
        queue = self._queue
        while queue and len(batch) < self._batch_size:
            batch.append(queue.popleft())
        return batch

    def _write(self, batch: list[Cdr]) -> bool:
        try:
            self._sink.write_batch(batch)
        except Exception:
            log.exception("CDR sink failed on a batch of %d; will retry", len(batch))
            # Put them back in front, in order, so that nothing is lost.
            self._queue.extendleft(reversed(batch))
            return False
        self.written += len(batch)
        return True

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._interval)
            self._wake.clear()
            while len(self._queue) >= self._batch_size and not self._closing:
                if not self._write(self._take()):
                    break
            if self._queue and not self._closing:
                self._write(self._take())
        failures = 0
        while self._queue and failures <= _CLOSE_RETRIES:
            if not self._write(self._take()):
                failures += 1
        for cdr in self._queue:
            log.error("CDR lost at shutdown: %r", cdr)

    def close(self) -> None:
        """Write everything queued, then stop the worker (blocking; use a thread on a loop)."""
        self._closing = True
        self._wake.set()
        self._thread.join()
