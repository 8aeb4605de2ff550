"""Batch INSERT parameters: each distinct value of a column converted once per batch."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from tollguard.web.cdr import services as cdr_services
from tollguard.web.core.bulk import RowInsert

from .test_adapters import make_cdr

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def counting_insert(columns: int, converted: Counter[Any]) -> RowInsert:
    def convert(value: Any) -> Any:
        converted[repr(value)] += 1
        return ("stored", repr(value))

    return RowInsert(
        sql="INSERT INTO t VALUES (...)",
        columns=tuple(f"c{n}" for n in range(columns)),
        prepare=(None, *([convert] * (columns - 1))),
    )


def test_rows_convert_each_distinct_value_of_a_column_once() -> None:
    converted: Counter[Any] = Counter()
    insert = counting_insert(3, converted)
    rows = insert.rows(
        [
            ["a", Decimal("0.5"), T0],
            ["b", Decimal("0.5"), T0 + timedelta(seconds=1)],
            ["c", Decimal("0.7"), T0],
            ["d", None, T0],
        ]
    )
    assert rows == [
        [None if v is None else ("stored", repr(v)) if n else v for n, v in enumerate(values)]
        for values in (
            ["a", Decimal("0.5"), T0],
            ["b", Decimal("0.5"), T0 + timedelta(seconds=1)],
            ["c", Decimal("0.7"), T0],
            ["d", None, T0],
        )
    ]
    assert converted == {
        repr(Decimal("0.5")): 1,
        repr(Decimal("0.7")): 1,
        repr(T0): 1,
        repr(T0 + timedelta(seconds=1)): 1,
    }


def test_rows_convert_unhashable_values_one_by_one() -> None:
    converted: Counter[Any] = Counter()
    insert = counting_insert(2, converted)
    rows = insert.rows([["a", [1]], ["b", [1]], ["c", {"k": 2}]])
    stored = [row[1] for row in rows]
    assert stored == [("stored", "[1]"), ("stored", "[1]"), ("stored", "{'k': 2}")]
    assert converted == {"[1]": 2, "{'k': 2}": 1}


def test_rows_refuse_a_row_of_the_wrong_width() -> None:
    insert = counting_insert(2, Counter())
    with pytest.raises(ValueError, match="3 values for 2 columns"):
        insert.rows([["a", 1, 2]])


@pytest.mark.usefixtures("db")
def test_rows_of_cdrs_are_what_row_by_row_conversion_gives() -> None:
    cdrs = [
        make_cdr(1),
        make_cdr(2, sell_amount=Decimal("0.040000"), answered_at=None, attempts=()),
        make_cdr(3, sell_rate=None, margin=None, source_ip="2001:db8::7"),
        make_cdr(4),
    ]
    insert = cdr_services.cdr_insert(connection)
    getters = cdr_services._readers(insert.columns)
    values = [[read(cdr) for read in getters] for cdr in cdrs]
    assert insert.rows(values) == [insert.row(row) for row in values]
