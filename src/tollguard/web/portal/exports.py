"""CSV downloads of the portal: a customer's CDRs and its sell rate card.

Spreadsheets run a cell that starts with ``=``, ``@`` (or ``+``/``-`` followed by
something other than a number) as a formula. Callers choose their own From header, so
such cells are prefixed with an apostrophe; plain E.164 numbers (``+4930...``) are left
as they are.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from tollguard.web.cdr.models import Cdr
from tollguard.web.rating.models import Rate, RateCard

CDR_COLUMNS: tuple[str, ...] = (
    "call_id",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_ms",
    "billed_s",
    "account_id",
    "source_ip",
    "caller",
    "callee",
    "destination",
    "sip_code",
    "sip_reason",
    "hangup_side",
    "sell_rate",
    "sell_amount",
    "currency",
)
RATE_COLUMNS: tuple[str, ...] = (
    "prefix",
    "destination",
    "price_per_minute",
    "connect_fee",
    "initial_increment",
    "next_increment",
    "effective_from",
    "effective_until",
)
CHUNK_SIZE = 2000
_NUMBER = re.compile(r"^[+-]?[0-9.]+$")


def cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str) and value and value[0] in "=@+-\t\r" and not _NUMBER.match(value):
        return "'" + value
    return value


class _Line:
    """A file-like object whose ``write`` hands back the line: csv writes, we yield."""

    def write(self, line: str) -> str:
        return line


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    writer = csv.writer(_Line(), lineterminator="\n")
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([cell(v) for v in row])


def cdr_csv(cdrs: QuerySet[Cdr]) -> Iterator[str]:
    """``cdrs`` as CSV lines, oldest first, streamed in chunks from the database."""
    rows = cdrs.order_by("started_at", "id").values_list(*CDR_COLUMNS)
    return csv_lines(CDR_COLUMNS, rows.iterator(chunk_size=CHUNK_SIZE))


def rate_card_csv(card: RateCard) -> Iterator[str]:
    rows = Rate.objects.filter(card=card).order_by("prefix", "effective_from", "id")
    values = rows.values_list(*RATE_COLUMNS).iterator(chunk_size=CHUNK_SIZE)
    return csv_lines((*RATE_COLUMNS, "currency"), ((*row, card.currency) for row in values))
