"""Reads of CDRs: domain values and streamed CSV/JSON export."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, TextIO

from django.db.models import QuerySet

from tollguard.domain.cdr import Attempt, CallDirection, HangupSide
from tollguard.domain.cdr import Cdr as DomainCdr
from tollguard.web.cdr import models
from tollguard.web.core.csvout import cell

ExportFormat = Literal["csv", "json"]

# The fields of the domain CDR, in their declared order.
EXPORT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DomainCdr))
# What an export holds: those fields, each id followed by the name it stands for (the
# name as it is now; the id stays, as names change and objects are deleted).
_NAMES: dict[str, tuple[str, str]] = {
    "customer_id": ("customer", "customer__name"),
    "account_id": ("account", "account__username"),
    "provider_id": ("provider", "provider__name"),
    "gateway_id": ("gateway", "gateway__name"),
}
EXPORT_COLUMNS: tuple[str, ...] = tuple(
    column
    for name in EXPORT_FIELDS
    for column in ((name, _NAMES[name][0]) if name in _NAMES else (name,))
)
_EXPORT_LOOKUPS: tuple[str, ...] = tuple(
    lookup
    for name in EXPORT_FIELDS
    for lookup in ((name, _NAMES[name][1]) if name in _NAMES else (name,))
)
EXPORT_CHUNK_SIZE = 2000


def export_rows(queryset: QuerySet[models.Cdr]) -> Iterator[tuple[Any, ...]]:
    """``queryset`` as rows of :data:`EXPORT_COLUMNS`, read in chunks."""
    return queryset.values_list(*_EXPORT_LOOKUPS).iterator(chunk_size=EXPORT_CHUNK_SIZE)


def ratio(numerator: Decimal | int, denominator: Decimal | int, places: str) -> Decimal:
    """``numerator / denominator`` rounded half-up to ``places`` (e.g. ``"0.01"``); 0 for 0/0.

    One rule for every traffic figure (ASR, ACD, minutes, calls per second), so the
    dashboard and the statistics API always agree.
    """
    if not denominator:
        return Decimal(places) * 0
    return (Decimal(numerator) / Decimal(denominator)).quantize(
        Decimal(places), rounding=ROUND_HALF_UP
    )


def cdrs_between(since: datetime | None, until: datetime | None) -> QuerySet[models.Cdr]:
    """CDRs with ``since <= started_at < until`` (either bound optional), oldest first."""
    qs = models.Cdr.objects.all()
    if since is not None:
        qs = qs.filter(started_at__gte=since)
    if until is not None:
        qs = qs.filter(started_at__lt=until)
    return qs.order_by("started_at", "id")


def from_row(row: models.Cdr) -> DomainCdr:
    return DomainCdr(**_domain_kwargs(_row_values(row)))


def _row_values(row: models.Cdr) -> dict[str, Any]:
    return {name: getattr(row, name) for name in EXPORT_FIELDS}


def _domain_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    values = dict(values)
    values["hangup_side"] = HangupSide(values["hangup_side"])
    values["direction"] = CallDirection(values["direction"])
    values["attempts"] = tuple(
        Attempt(
            provider_id=a["provider_id"],
            gateway_id=a["gateway_id"],
            started_at=datetime.fromisoformat(a["started_at"]),
            sip_code=a["sip_code"],
            reason=a.get("reason", ""),
            target=a.get("target", ""),
        )
        for a in values["attempts"]
    )
    return values


def _rows(since: datetime | None, until: datetime | None) -> Iterator[dict[str, Any]]:
    for values in export_rows(cdrs_between(since, until)):
        yield dict(zip(EXPORT_COLUMNS, values, strict=True))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # a string keeps the exact amount; floats would not
    return value


def export_cdrs(
    fmt: ExportFormat,
    since: datetime | None,
    until: datetime | None,
    out: TextIO,
) -> int:
    """Write CDRs started in ``[since, until)`` to ``out``; returns how many were written.

    ``csv``: a header line with the column names (:data:`EXPORT_COLUMNS`: the domain
    fields, each id followed by its object's name), then one line per CDR (the attempts
    as a JSON array). ``json``: one JSON array of objects with the same keys, amounts as
    strings.
    Rows are streamed from the database, so memory use does not grow with the range.
    """
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for row in _rows(since, until):
            writer.writerow([cell(row[name]) for name in EXPORT_COLUMNS])
            count += 1
        return count
    if fmt == "json":
        out.write("[")
        for row in _rows(since, until):
            out.write(",\n" if count else "\n")
            json.dump({k: _json_value(v) for k, v in row.items()}, out, separators=(",", ":"))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    raise ValueError(f"unknown CDR export format {fmt!r}; use 'csv' or 'json'")
