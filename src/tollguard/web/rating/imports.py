"""Rate-card CSV import from the admin, in steps that report their progress.

A rate file can hold hundreds of thousands of lines, more than one request should spend
on them while the operator looks at a blank page. The upload is copied to a private
temporary file as UTF-8 and becomes an :class:`ImportJob`; each :func:`advance` call then
checks the next :data:`CHUNK_ROWS` lines with the same rules as ``tollguard load``
(:mod:`tollguard.web.rating.rate_rows`), and the progress is the share of the file read.
After the last line one pass looks for duplicate prefixes, so a file's errors of every
kind are reported together. When every line is valid, one last step reads the file
again and replaces the card's rates in a single transaction
(:func:`tollguard.web.rating.services.sync_rates`). A file with any error changes
nothing; its errors carry the line numbers of the file.

Between requests the job is a :class:`~tollguard.web.rating.models.RateImport` row with
a random id, owned by the user who uploaded the file (:func:`create_job`,
:func:`find_job`, :func:`run_step`); it works with any number of web workers. Only the
copied file lives on disk, and it is deleted when the job ends.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from django.db import transaction
from django.utils import timezone

from tollguard.domain.plan import Rate
from tollguard.web.errors import WebError
from tollguard.web.rating import models, rate_rows, services
from tollguard.web.rating.models import ImportState

__all__ = [
    "CHUNK_ROWS",
    "CSV_COLUMNS",
    "MAX_ERRORS",
    "ImportFileError",
    "ImportJob",
    "ImportState",
    "advance",
    "create_job",
    "discard",
    "find_job",
    "run_step",
    "start_import",
]

logger = logging.getLogger(__name__)

CHUNK_ROWS = 20_000
MAX_ERRORS = 200  # listed; the rest are counted
MAX_FILE_BYTES = 64 * 1024 * 1024
# The columns `tollguard load` reads from a rate file, in the order exports write them.
CSV_COLUMNS: tuple[str, ...] = rate_rows.RATE_COLUMNS
_FILE_PREFIX = "tollguard-rates-"
# An import left unfinished (the operator closed the page) leaves its copy behind; the
# next upload deletes copies this old.
STALE_AFTER_S = 24 * 3600


class ImportFileError(WebError):
    """The upload is not a file that can be imported at all (size, encoding)."""


@dataclass(slots=True)
class ImportJob:
    """Where an import stands; a JSON-serialisable value (:meth:`to_dict`)."""

    card_id: int
    file_name: str  # the operator's name for the file, for messages
    path: str  # the private UTF-8 copy
    size: int  # bytes of the copy
    state: ImportState = ImportState.VALIDATING
    offset: int = 0  # where the next validation step starts reading
    line: int = 0  # physical lines read so far
    header: list[str] = field(default_factory=list)
    rows: int = 0  # data rows checked so far
    errors: list[str] = field(default_factory=list)
    error_total: int = 0
    created: int = 0
    deleted: int = 0
    unchanged: int = 0

    @property
    def finished(self) -> bool:
        return self.state in {ImportState.DONE, ImportState.FAILED}

    @property
    def percent(self) -> int:
        if self.state in {ImportState.APPLYING, ImportState.DONE}:
            return 100
        if not self.size:
            return 100
        return min(100, self.offset * 100 // self.size)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["state"] = self.state.value
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImportJob:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        kwargs["state"] = ImportState(kwargs["state"])
        return cls(**kwargs)

    def add_error(self, message: str) -> None:
        self.error_total += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    @classmethod
    def from_row(cls, row: models.RateImport) -> ImportJob:
        return cls.from_dict({f.name: getattr(row, f.name) for f in dataclasses.fields(cls)})


# The row's columns that a step changes (card_id, the file's name, path and size do not).
_STEP_FIELDS = (
    "state",
    "offset",
    "line",
    "header",
    "rows",
    "errors",
    "error_total",
    "created",
    "deleted",
    "unchanged",
)


def start_import(card: models.RateCard, file_name: str, chunks: Iterable[bytes]) -> ImportJob:
    """Copy an uploaded rate file (``chunks`` of bytes) and return its job.

    Raises :class:`ImportFileError` for a file that is too large or not UTF-8 text.
    """
    _delete_stale_copies(time.time())
    handle, name = tempfile.mkstemp(prefix=_FILE_PREFIX, suffix=".csv")
    # A byte-order mark is dropped: it would otherwise stick to the first column's name.
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    size = 0
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise ImportFileError(
                        f"{file_name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB"
                    )
                out.write(decoder.decode(chunk))
            out.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        Path(name).unlink(missing_ok=True)
        raise ImportFileError(f"{file_name}: not UTF-8 text (byte {exc.start} of a block)") from exc
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return ImportJob(
        card_id=card.pk, file_name=file_name, path=name, size=Path(name).stat().st_size
    )


def _delete_stale_copies(now: float) -> None:
    for path in Path(tempfile.gettempdir()).glob(f"{_FILE_PREFIX}*.csv"):
        try:
            if now - path.stat().st_mtime > STALE_AFTER_S:
                path.unlink()
                logger.info("deleted %s, left by an unfinished rate import", path)
        except OSError as exc:
            logger.warning("could not delete the old rate import copy %s: %s", path, exc)


def advance(job: ImportJob, chunk_rows: int | None = None) -> ImportJob:
    """Do the next step of ``job`` and return the job as it now stands.

    Validation steps read ``chunk_rows`` lines (:data:`CHUNK_ROWS`); the step after the
    last line applies the file. A finished job is returned unchanged.
    """
    if job.state is ImportState.VALIDATING:
        if not _validate_chunk(job, chunk_rows or CHUNK_ROWS):
            _finish(job, ImportState.FAILED)
        elif job.offset >= job.size:
            # Duplicates need the whole file: one pass after the last line, whatever
            # the other errors, so that the operator fixes everything in one round.
            _check_duplicates(job)
            if job.error_total:
                _finish(job, ImportState.FAILED)
            else:
                job.state = ImportState.APPLYING
    elif job.state is ImportState.APPLYING:
        _apply(job)
    return job


def discard(job: ImportJob) -> None:
    """Forget the job's file (a finished job has already done so)."""
    Path(job.path).unlink(missing_ok=True)


def _finish(job: ImportJob, state: ImportState) -> None:
    job.state = state
    discard(job)


def _lines(handle: IO[str]) -> Iterator[str]:
    # readline() rather than iteration keeps tell() usable between rows.
    while line := handle.readline():
        yield line


def _check_header(job: ImportJob, header: list[str]) -> bool:
    names = [name.strip() for name in header]
    if problems := rate_rows.header_problems(names):
        job.add_error(f"line 1: {'; '.join(problems)}")
        return False
    job.header = names
    return True


def _validate_chunk(job: ImportJob, chunk_rows: int) -> bool:
    """Check the next ``chunk_rows`` rows; False when the file cannot be read further."""
    try:
        with open(job.path, encoding="utf-8", newline="") as handle:
            handle.seek(job.offset)
            reader = csv.reader(_lines(handle))
            if not job.header:
                first = next(reader, None)
                job.line = reader.line_num
                if first is None:
                    job.add_error("line 1: the file is empty")
                    return False
                if not _check_header(job, first):
                    return False
            for done, (cells, line) in enumerate(_rows(reader, job), start=1):
                _check_row(job, cells, line)
                if done >= chunk_rows:
                    break
            job.offset = handle.tell()
    except csv.Error as exc:
        job.add_error(f"line {job.line + 1}: not valid CSV ({exc})")
        return False
    except OSError as exc:
        job.add_error(f"the uploaded copy could not be read ({exc.strerror})")
        return False
    return True


def _rows(reader: Any, job: ImportJob) -> Iterator[tuple[list[str], int]]:
    # job.line already counts the lines this reader has read (the header, say).
    base = job.line - reader.line_num
    for cells in reader:
        line = base + reader.line_num
        job.line = line
        if not any(cell.strip() for cell in cells):
            continue  # blank lines are no rates
        yield cells, line


def _check_row(job: ImportJob, cells: list[str], line: int) -> Rate | None:
    job.rows += 1
    if len(cells) > len(job.header):
        job.add_error(f"line {line}: more cells than columns")
        return None
    errors: list[str] = []
    row = dict(zip(job.header, cells, strict=False))
    rate = rate_rows.parse_rate(row, f"line {line}", errors)
    for message in errors:
        job.add_error(message)
    return rate


def _check_duplicates(job: ImportJob) -> None:
    """Add the file's duplicate prefixes to ``job``'s errors, in line order with the rest."""
    try:
        duplicates = _read_all(dataclasses.replace(job, errors=[], error_total=0))[1]
    except (OSError, csv.Error) as exc:
        job.add_error(f"the uploaded copy could not be read again ({exc})")
        return
    if not duplicates:
        return
    listed = sorted([*job.errors, *duplicates[: MAX_ERRORS - len(job.errors)]], key=_line_of)
    job.errors = listed
    job.error_total += len(duplicates)


def _line_of(message: str) -> int:
    """The line number an error message starts with ("line 12: ..."); 0 for none."""
    head = message.partition(":")[0]
    number = head.removeprefix("line ")
    return int(number) if head.startswith("line ") and number.isdigit() else 0


def _read_all(job: ImportJob) -> tuple[list[Rate], list[str]]:
    """Every valid rate of the file, checked again, and its duplicate prefixes.

    Errors of single lines go to ``job``; the duplicates are returned apart.
    """
    again = dataclasses.replace(job, offset=0, line=0, header=[], rows=0, errors=[], error_total=0)
    duplicates: list[str] = []
    rates: list[Rate] = []
    first_line: dict[tuple[str, datetime | None], int] = {}
    seen: Counter[tuple[str, datetime | None]] = Counter()
    with open(job.path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(_lines(handle))
        header = next(reader, None)
        again.line = reader.line_num
        if header is None or not _check_header(again, header):
            job.add_error("line 1: the file changed while it was imported")
            return [], []
        for cells, line in _rows(reader, again):
            rate = _check_row(again, cells, line)
            if rate is None:
                continue
            # One price per prefix and start date, as `tollguard load` demands: two
            # would make the price depend on row order.
            key = (rate.prefix, rate.effective_from)
            seen[key] += 1
            if seen[key] > 1:
                start = f" from {key[1].isoformat()}" if key[1] is not None else ""
                duplicates.append(
                    f"line {line}: duplicate prefix {rate.prefix!r}{start} "
                    f"(first on line {first_line[key]})"
                )
            else:
                first_line[key] = line
            rates.append(rate)
    for message in again.errors:
        job.add_error(message)
    job.error_total += again.error_total - len(again.errors)
    return rates, duplicates


def _apply(job: ImportJob) -> None:
    try:
        rates, duplicates = _read_all(job)
        for message in duplicates:
            job.add_error(message)
        if job.error_total:
            _finish(job, ImportState.FAILED)
            return
        card = models.RateCard.objects.filter(pk=job.card_id).first()
        if card is None:
            job.add_error("the rate card was deleted during the import")
            _finish(job, ImportState.FAILED)
            return
        result = services.sync_rates(card, rates)
    except OSError as exc:
        job.add_error(f"the uploaded copy could not be read ({exc.strerror})")
        _finish(job, ImportState.FAILED)
        return
    job.created, job.deleted, job.unchanged = result.created, result.deleted, result.unchanged
    logger.info(
        "rate card %s: imported %s (%d created, %d deleted, %d unchanged)",
        card.name,
        job.file_name,
        result.created,
        result.deleted,
        result.unchanged,
    )
    _finish(job, ImportState.DONE)


# -- jobs between requests ------------------------------------------------------------


def create_job(
    user: Any, card: models.RateCard, file_name: str, chunks: Iterable[bytes]
) -> models.RateImport:
    """Copy an upload (:func:`start_import`) and record its job for ``user``.

    The user's earlier import into the same card is discarded, and so is every job
    older than :data:`STALE_AFTER_S`. Raises :class:`ImportFileError` as
    :func:`start_import` does; nothing is discarded then.
    """
    job = start_import(card, file_name, chunks)
    stale = timezone.now() - timedelta(seconds=STALE_AFTER_S)
    earlier = models.RateImport.objects.filter(
        user=user, card=card
    ) | models.RateImport.objects.filter(started_at__lt=stale)
    for row in earlier:
        Path(row.path).unlink(missing_ok=True)
        row.delete()
    return models.RateImport.objects.create(
        user=user, card=card, file_name=job.file_name, path=job.path, size=job.size
    )


def find_job(job_id: str, user: Any, card: models.RateCard) -> models.RateImport | None:
    """The job ``job_id`` if ``user`` started it on ``card``; None for anyone else's."""
    return models.RateImport.objects.filter(pk=job_id, user=user, card=card).first()


def run_step(row: models.RateImport, chunk_rows: int | None = None) -> tuple[ImportJob, bool]:
    """Take the next step of the job in ``row``; return the job as stored afterwards and
    whether this call's step was the one kept.

    A step is stored only if ``row.step`` is still what it was when the step began: a
    request that lost the race to another one (a second tab, a repeated click) throws
    its result away and returns what the other stored. The step that applies the file
    claims the job in the same transaction as the rates it writes, so the card is
    changed once, however many requests ask at once.
    """
    job = ImportJob.from_row(row)
    if job.finished:
        return job, False
    taken = row.step
    if job.state is ImportState.APPLYING:
        with transaction.atomic():
            if not _store(row, ImportJob.from_row(row), taken):
                return _current(row), False
            advance(job)
            _store(row, job, taken + 1)
        return job, True
    advance(job, chunk_rows)
    if _store(row, job, taken):
        return job, True
    logger.info("rate import %s: a concurrent step was kept instead of this one", row.pk)
    return _current(row), False


def _store(row: models.RateImport, job: ImportJob, taken: int) -> bool:
    values = {name: getattr(job, name) for name in _STEP_FIELDS}
    values["state"] = job.state.value
    stored = models.RateImport.objects.filter(pk=row.pk, step=taken).update(
        step=taken + 1, **values
    )
    return bool(stored)


def _current(row: models.RateImport) -> ImportJob:
    row.refresh_from_db()
    return ImportJob.from_row(row)
