"""Writes of CDRs: batches from the switch's CDR writer.

The switch writes every call's CDR, so this is the web layer's hottest write. It goes
through the DB-API of Django's connection (one ``executemany`` per batch) instead of
``bulk_create``: building a model instance and compiling a multi-row statement cost about
170 µs per CDR, converting each value with its field's own ``get_db_prep_save`` about a
tenth of that. Values are still converted by the model's fields, so the rows are exactly
what the ORM would store (``tests/web/test_adapters.py`` reads them back through it).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import models as db_models
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from tollguard.domain.cdr import Attempt
from tollguard.domain.cdr import Cdr as DomainCdr
from tollguard.web.cdr import models

__all__ = ["CdrInsert", "attempts_to_json", "cdr_insert", "write_cdrs"]

# Fields whose Python value is already what every backend stores (str and int columns).
_STORED_AS_IS = (db_models.CharField, db_models.IntegerField, db_models.ForeignKey)


def attempts_to_json(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "provider_id": a.provider_id,
            "gateway_id": a.gateway_id,
            "started_at": a.started_at.isoformat(),
            "sip_code": a.sip_code,
            "reason": a.reason,
        }
        for a in attempts
    ]


# Where a column's value comes from in the domain CDR when it is not the attribute of the
# same name.
_FROM_DOMAIN: dict[str, Callable[[DomainCdr], Any]] = {
    "hangup_side": lambda cdr: cdr.hangup_side.value,
    "attempts": lambda cdr: attempts_to_json(cdr.attempts),
}


@dataclass(frozen=True, slots=True)
class CdrInsert:
    """``INSERT`` of one CDR row on a connection, with each column's converter."""

    sql: str
    columns: tuple[str, ...]  # field names (``customer_id`` for a foreign key), in order
    prepare: tuple[Callable[[Any], Any] | None, ...]  # None: stored as is

    def row(self, values: Sequence[Any]) -> list[Any]:
        """The parameters for ``values`` given in :attr:`columns` order."""
        return [
            value if prepare is None or value is None else prepare(value)
            for value, prepare in zip(values, self.prepare, strict=True)
        ]


def cdr_insert(connection: BaseDatabaseWrapper) -> CdrInsert:
    """The CDR ``INSERT`` for ``connection``'s backend (every concrete field but the id)."""
    fields = [field for field in models.Cdr._meta.concrete_fields if not field.primary_key]
    quoted = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(models.Cdr._meta.db_table)
    return CdrInsert(
        sql=f"INSERT INTO {table} ({quoted}) VALUES ({marks})",  # noqa: S608 - model names
        columns=tuple(field.attname for field in fields),
        prepare=tuple(
            None
            if isinstance(field, _STORED_AS_IS)
            else partial(field.get_db_prep_save, connection=connection)
            for field in fields
        ),
    )


def _readers(columns: Sequence[str]) -> list[Callable[[DomainCdr], Any]]:
    return [_FROM_DOMAIN.get(name) or operator.attrgetter(name) for name in columns]


def write_cdrs(cdrs: Sequence[DomainCdr]) -> int:
    """Store ``cdrs`` in one transaction; returns how many rows were written."""
    if not cdrs:
        return 0
    with transaction.atomic():
        connection = transaction.get_connection()
        insert = cdr_insert(connection)
        readers = _readers(insert.columns)
        rows = [insert.row([read(cdr) for read in readers]) for cdr in cdrs]
        with connection.cursor() as cursor:
            cursor.executemany(insert.sql, rows)
    return len(rows)
