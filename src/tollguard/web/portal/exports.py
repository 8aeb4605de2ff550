"""CSV downloads of the portal: a customer's CDRs, its ledger and its sell rate card.

Cells go through :func:`tollguard.web.core.csvout.cell`, which keeps spreadsheet
formulas out of them (callers choose their own From header).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from tollguard.web.billing.models import LedgerEntry
from tollguard.web.cdr.models import Cdr
from tollguard.web.core.csvout import csv_lines
from tollguard.web.rating.models import RATE_FIELDS, Rate, RateCard

# (column, lookup): the SIP account by its user name, as the customer knows it.
_CDR_FIELDS: tuple[tuple[str, str], ...] = (
    ("call_id", "call_id"),
    ("started_at", "started_at"),
    ("answered_at", "answered_at"),
    ("ended_at", "ended_at"),
    ("duration_ms", "duration_ms"),
    ("billed_s", "billed_s"),
    ("account", "account__username"),
)
CDR_COLUMNS: tuple[str, ...] = (
    *(column for column, _ in _CDR_FIELDS),
    "source_ip",
    "caller",
    "callee",
    "destination",
    "sip_code",
    "sip_reason",
    "hangup_side",
    "sell_rate",
    "sell_amount",
    "sell_currency",
)
RATE_COLUMNS: tuple[str, ...] = RATE_FIELDS
LEDGER_COLUMNS: tuple[str, ...] = (
    "created_at",
    "kind",
    "amount",
    "balance_after",
    "reference",
    "reason",
    "call_id",
)
CHUNK_SIZE = 2000


def cdr_csv(cdrs: QuerySet[Cdr]) -> Iterator[str]:
    """``cdrs`` as CSV lines, oldest first, streamed in chunks from the database."""
    lookups = [dict(_CDR_FIELDS).get(column, column) for column in CDR_COLUMNS]
    rows = cdrs.order_by("started_at", "id").values_list(*lookups)
    return csv_lines(CDR_COLUMNS, rows.iterator(chunk_size=CHUNK_SIZE))


def rate_card_csv(card: RateCard) -> Iterator[str]:
    rows = Rate.objects.filter(card=card).order_by("prefix", "effective_from", "id")
    values = rows.values_list(*RATE_COLUMNS).iterator(chunk_size=CHUNK_SIZE)
    return csv_lines((*RATE_COLUMNS, "currency"), ((*row, card.currency) for row in values))


def ledger_csv(entries: QuerySet[LedgerEntry], currency: str) -> Iterator[str]:
    """``entries`` as CSV lines, oldest first, with the customer's currency on each."""
    rows = entries.order_by("created_at", "id").values_list(*LEDGER_COLUMNS)
    values = rows.iterator(chunk_size=CHUNK_SIZE)
    return csv_lines((*LEDGER_COLUMNS, "currency"), ((*row, currency) for row in values))
