"""Work a web-side process repeats from a daemon thread: low-balance alerts, DID fees.

A :class:`Periodic` runs :meth:`Periodic.work` every ``interval_s`` (and once at start
when ``run_at_start``) until :meth:`Periodic.stop`. A round that raises is logged and
the next one tried: a database away for a moment must not end the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass
class Periodic:
    """Runs :meth:`work` from a daemon thread every ``interval_s`` until :meth:`stop`."""

    interval_s: float
    clock: Callable[[], datetime] = timezone.now
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    thread_name: ClassVar[str]
    what: ClassVar[str]  # names the work in the log line of a failed round
    run_at_start: ClassVar[bool] = False

    def work(self, now: datetime) -> int:
        """One round at ``now``; returns how many things it did."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            if self.run_at_start:
                self.run_once()
            while not self._stop.wait(self.interval_s):
                self.run_once()
        finally:
            connection.close()

    def run_once(self) -> int:
        close_old_connections()
        try:
            return self.work(self.clock())
        except Exception:
            logger.exception("%s: this round failed; trying again", self.what)
            return 0
