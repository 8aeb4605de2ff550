"""The ``tollguard.security`` log, stored: one :class:`SecurityEvent` row per line.

Every security event is a line on the ``tollguard.security`` logger
(:mod:`tollguard.web.security.events` for the web app, the switch's own for SIP), and
:class:`SecurityEventHandler`, configured on that logger in ``settings.LOGGING``, stores
each line as it is logged. The dashboard and the admin read that table, so they show
exactly what the log (and fail2ban) sees: failed and locked-out sign-ins, honeypot hits,
bans, refused addresses and keys, permission denials, SIP authentication failures.

How a line is written depends on the thread that logs it:

- a thread running an asyncio event loop (the switch's call path) never waits for the
  database: the line is put on a bounded queue that a background thread writes in
  batches; when the queue is full, lines are counted and dropped (the log keeps them)
  and a row says how many were lost;
- any other thread (a web request) writes the row at once, on its own connection, so
  the event shows on the next page.

An attacker repeating one thing fills the log, not the table: at most
:data:`REPEATS_PER_WINDOW` lines with the same event, address and user are stored per
:data:`REPEAT_WINDOW_S`; the next one stored after the window says how many were
skipped. Rows older than :data:`RETENTION` are deleted as new ones arrive.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Not at run time: logging is configured before Django's apps are ready.
    from tollguard.web.security.models import SecurityEvent

__all__ = [
    "QUEUE_SIZE",
    "REPEATS_PER_WINDOW",
    "REPEAT_WINDOW_S",
    "RETENTION",
    "EventLine",
    "RepeatLimiter",
    "SecurityEventHandler",
    "parse_line",
]

logger = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
BATCH_SIZE = 500
GATHER_S = 0.2  # how long the writer lets lines gather before a batch
REPEAT_WINDOW_S = 60.0
REPEATS_PER_WINDOW = 20
RETENTION = timedelta(days=90)
PRUNE_EVERY_S = 3600.0

# "<event>: ip=<address> key=value key="text" ..." (tollguard.web.security.events).
_LINE = re.compile(r"(?P<event>[a-z0-9][a-z0-9 _-]{0,63}): ip=(?P<ip>\S*)(?P<rest>.*)", re.S)
_FIELD = re.compile(r'(?P<key>[a-z_]+)=(?:"(?P<quoted>[^"]*)"|(?P<plain>\S*))')
_ADDRESS_MAX = 45
_USER_MAX = 150
_DETAIL_MAX = 512


@dataclass(frozen=True, slots=True)
class EventLine:
    """A security log line taken apart: the columns of a ``SecurityEvent``."""

    at: datetime
    level: int
    event: str
    address: str
    user: str
    detail: str


def parse_line(message: str, at: datetime, level: int) -> EventLine:
    """``message`` (one security log line) as its event, address, user and the rest.

    A line not in the ``<event>: ip=<address> ...`` shape is kept whole as its event.
    """
    match = _LINE.fullmatch(message.strip())
    if match is None:
        return EventLine(at, level, message[:64], "", "", message[:_DETAIL_MAX])
    address = match["ip"] if match["ip"] != "-" else ""
    rest = match["rest"].strip()
    user = ""
    for field in _FIELD.finditer(rest):
        if field["key"] in {"user", "user_id"}:
            user = field["quoted"] if field["quoted"] is not None else field["plain"]
            break
    return EventLine(
        at, level, match["event"], address[:_ADDRESS_MAX], user[:_USER_MAX], rest[:_DETAIL_MAX]
    )


class RepeatLimiter:
    """Lets through at most ``limit`` lines per key and ``window`` seconds.

    :meth:`admit` returns the line to store (with a note of the lines skipped before
    it), or None for a line to skip. Not thread-safe: the handler holds its lock.
    """

    MAX_KEYS = 10_000

    def __init__(self, limit: int = REPEATS_PER_WINDOW, window: float = REPEAT_WINDOW_S) -> None:
        self.limit = limit
        self.window = window
        # key -> [window start, stored in the window, skipped since the last stored]
        self._seen: dict[tuple[str, str, str], list[float]] = {}

    def admit(self, line: EventLine, now: float) -> EventLine | None:
        key = (line.event, line.address, line.user)
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.window:
            if len(self._seen) >= self.MAX_KEYS:
                self._seen.clear()
            skipped = int(state[2]) if state is not None else 0
            self._seen[key] = [now, 1, 0]
            return _with_skipped(line, skipped)
        if state[1] < self.limit:
            state[1] += 1
            return line
        state[2] += 1
        return None


def _with_skipped(line: EventLine, skipped: int) -> EventLine:
    if not skipped:
        return line
    note = f" (and {skipped} more like it before, not stored)"
    return replace(line, detail=(line.detail + note)[-_DETAIL_MAX:].lstrip())


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SecurityEventHandler(logging.Handler):
    """Stores each ``tollguard.security`` line as a ``SecurityEvent`` (module docstring)."""

    def __init__(
        self,
        level: int = logging.NOTSET,
        queue_size: int = QUEUE_SIZE,
        limiter: RepeatLimiter | None = None,
    ) -> None:
        super().__init__(level)
        self._queue: queue.Queue[EventLine | None] = queue.Queue(queue_size)
        self._limiter = limiter or RepeatLimiter()
        self._writer: threading.Thread | None = None
        self._dropped = 0
        self._last_prune = 0.0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = parse_line(
                record.getMessage(), datetime.fromtimestamp(record.created, UTC), record.levelno
            )
            with self._guard:
                admitted = self._limiter.admit(line, record.created)
            if admitted is None:
                return
            if _in_event_loop():
                self._enqueue(admitted)
            else:
                self._write([admitted])
        except Exception:  # a broken log line must never break the request or the call
            self.handleError(record)

    def _enqueue(self, line: EventLine) -> None:
        with self._guard:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._drain, name="security-events", daemon=True
                )
                self._writer.start()
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._guard:
                self._dropped += 1

    def _drain(self) -> None:
        from django.db import connection

        try:
            while True:
                line = self._queue.get()
                if line is None:
                    return
                # Let a burst gather: a put wakes nobody while this thread sleeps, so a
                # flood costs the event loop a queue append, not a thread switch.
                if self._queue.qsize() < BATCH_SIZE:
                    time.sleep(GATHER_S)
                batch = [line]
                stop = False
                while len(batch) < BATCH_SIZE:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._write(batch)
                if stop:
                    return
        finally:
            connection.close()

    def _write(self, lines: list[EventLine]) -> None:
        from django.apps import apps

        if not apps.ready:
            return  # logged before Django finished starting: the log line is all there is
        self._store(self._with_lost(lines))

    def _with_lost(self, lines: list[EventLine]) -> list[EventLine]:
        """``lines`` and, if lines were dropped since the last write, a row saying so."""
        with self._guard:
            dropped, self._dropped = self._dropped, 0
        if not dropped:
            return lines
        lost = EventLine(
            datetime.now(UTC),
            logging.WARNING,
            "security events lost",
            "",
            "",
            f"count={dropped} reason=queue-full",
        )
        return [*lines, lost]

    def _store(self, lines: list[EventLine]) -> None:
        from django.db import DatabaseError

        from tollguard.web.security.models import SecurityEvent

        try:
            SecurityEvent.objects.bulk_create(
                SecurityEvent(
                    at=line.at,
                    level=line.level,
                    event=line.event,
                    address=line.address,
                    user=line.user,
                    detail=line.detail,
                )
                for line in lines
            )
            self._prune(SecurityEvent)
        except DatabaseError as exc:
            # Not on tollguard.security: that would come straight back here.
            logger.warning(
                "%d security event(s) not stored (%s); the log has them", len(lines), exc
            )

    def _prune(self, model: type[SecurityEvent]) -> None:
        now = time.monotonic()
        if self._last_prune and now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        deleted, _ = model.objects.filter(at__lt=datetime.now(UTC) - RETENTION).delete()
        if deleted:
            logger.info("deleted %d security events older than %s", deleted, RETENTION)

    def flush(self) -> None:
        """Wait until the queued lines are written (at exit, and in tests)."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            return
        self._queue.put(None)
        writer.join(timeout=10)
        self._writer = None

    def close(self) -> None:
        self.flush()
        super().close()
