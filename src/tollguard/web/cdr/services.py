"""Writes of CDRs: batches from the switch's CDR writer.

The switch writes every call's CDR, so this is the web layer's hottest write: one
``executemany`` per batch (:mod:`tollguard.web.core.bulk` says why), with each value
converted by the model's field, so the rows are exactly what the ORM would store
(``tests/web/test_adapters.py`` reads them back through it).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from tollguard.domain.cdr import Attempt
from tollguard.domain.cdr import Cdr as DomainCdr
from tollguard.web.cdr import models
from tollguard.web.core.bulk import RowInsert, row_insert

__all__ = ["CdrInsert", "attempts_to_json", "cdr_insert", "write_cdrs"]

CdrInsert = RowInsert


def attempts_to_json(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "provider_id": a.provider_id,
            "gateway_id": a.gateway_id,
            "started_at": a.started_at.isoformat(),
            "sip_code": a.sip_code,
            "reason": a.reason,
            "target": a.target,
        }
        for a in attempts
    ]


# Where a column's value comes from in the domain CDR when it is not the attribute of the
# same name.
_FROM_DOMAIN: dict[str, Callable[[DomainCdr], Any]] = {
    "hangup_side": lambda cdr: cdr.hangup_side.value,
    "direction": lambda cdr: cdr.direction.value,
    "attempts": lambda cdr: attempts_to_json(cdr.attempts),
}


def cdr_insert(connection: BaseDatabaseWrapper) -> RowInsert:
    """The CDR ``INSERT`` for ``connection``'s backend (every concrete field but the id)."""
    return row_insert(models.Cdr, connection)


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
        rows = insert.rows([read(cdr) for read in readers] for cdr in cdrs)
        insert.run(connection, rows)
    return len(rows)
