"""Every CSV the web layer writes keeps spreadsheet formulas out of its cells."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollguard.web.core.csvout import cell, csv_lines


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\tx", "'\tx"),
        ("+442079460000", "+442079460000"),
        ("-0.5", "-0.5"),
        ("alice", "alice"),
        ("", ""),
        (None, ""),
        (Decimal("0.0100"), "0.0100"),
        (datetime(2026, 11, 1, 12, 0, tzinfo=UTC), "2026-11-01T12:00:00+00:00"),
        ([{"sip_code": 503}], '[{"sip_code":503}]'),
        (7, 7),
    ],
    ids=[
        "equals",
        "at",
        "plus-formula",
        "minus-formula",
        "tab",
        "e164",
        "negative",
        "text",
        "empty",
        "none",
        "decimal",
        "datetime",
        "list",
        "int",
    ],
)
def test_cell(value: object, expected: object) -> None:
    assert cell(value) == expected


def test_csv_lines_quote_and_neutralise() -> None:
    lines = list(csv_lines(["caller", "n"], [["=1+1", 2], ["a,b", 3]]))
    assert lines == ["caller,n\n", "'=1+1,2\n", '"a,b",3\n']
