"""CSV cells that are safe to open in a spreadsheet, for every CSV download and export.

Spreadsheets run a cell that starts with ``=``, ``@``, a tab or a carriage return (or
``+``/``-`` followed by something other than a number) as a formula. Callers choose
their own From header, so such text is prefixed with an apostrophe (the OWASP "CSV
injection" defence); plain numbers such as ``+4930...`` and ``-0.5`` are left as they are.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["CSV_CONTENT_TYPE", "cell", "csv_lines"]

# Every CSV download says its charset (ASVS 4.1.1): the cells are UTF-8 text.
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"

_NUMBER = re.compile(r"^[+-]?[0-9.]+$")
_FORMULA_START = frozenset("=@+-\t\r")


def cell(value: Any) -> Any:
    """``value`` as a CSV cell: ISO times, exact decimals, JSON lists, no formulas."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str) and value and value[0] in _FORMULA_START and not _NUMBER.match(value):
        return "'" + value
    return value


class _Line:
    """A file-like object whose ``write`` hands back the line: csv writes, we yield."""

    def write(self, line: str) -> str:
        return line


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """``header`` then ``rows`` as CSV lines (for streaming responses)."""
    writer = csv.writer(_Line(), lineterminator="\n")
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([cell(v) for v in row])
