"""Rate rows as text: one checker for every way a rate arrives.

A rate comes as an entry of a plan file (``tollguard load``), a line of a CSV file that
a plan names, or a line of a file uploaded in the admin (:mod:`tollguard.web.rating.imports`).
All of them go through :func:`parse_rate` and :func:`header_problems`, so a bad value
gets the same message wherever it was written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tollguard.domain.plan import Rate
from tollguard.web.rating.models import RATE_FIELDS

__all__ = [
    "RATE_COLUMNS",
    "REQUIRED_COLUMNS",
    "InvalidValue",
    "decimal_text",
    "header_problems",
    "parse_rate",
    "show",
    "timestamp",
]

# The columns of a rate file, in the order exports write them.
RATE_COLUMNS: tuple[str, ...] = RATE_FIELDS
REQUIRED_COLUMNS = ("prefix", "price_per_minute")

_DIGITS = re.compile(r"[0-9]*")
_PRICE_INTEGER_DIGITS = 6  # Decimal(12, 6) columns
_PRICE_DECIMALS = 6
_MISSING: Any = object()


class InvalidValue(Exception):
    """One value failed a check; the message says what is wrong with it."""


def show(value: Any) -> str:
    """``value`` for an error message: its repr, or its kind for a mapping or a list."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def decimal_text(value: Any) -> Decimal:
    """A price: YAML numbers are read through their text so 0.1 stays exactly 0.1."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise InvalidValue(f"{show(value)} is not a decimal")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise InvalidValue(f"{show(value)} is not a decimal") from exc
    if not amount.is_finite():
        raise InvalidValue(f"{show(value)} is not a decimal")
    if amount < 0:
        raise InvalidValue(f"{show(value)} is negative")
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > _PRICE_DECIMALS:
        raise InvalidValue(f"{show(value)} has more than {_PRICE_DECIMALS} decimal places")
    if amount >= Decimal(10) ** _PRICE_INTEGER_DIGITS:
        raise InvalidValue(f"{show(value)} is too large")
    return amount


def timestamp(value: Any) -> datetime:
    """ISO 8601; a time without an offset is UTC, a bare date is its midnight UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise InvalidValue(f"{value!r} is not an ISO 8601 date or time") from exc
    else:
        raise InvalidValue(f"{show(value)} is not an ISO 8601 date or time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def header_problems(header: Iterable[str]) -> list[str]:
    """What is wrong with a rate file's header (already stripped): unknown, then missing."""
    names = list(header)
    problems = [f"unknown column {name!r}" for name in names if name not in RATE_COLUMNS]
    problems += [f"missing column {name!r}" for name in REQUIRED_COLUMNS if name not in names]
    return problems


def parse_rate(row: Mapping[str, Any], where: str, errors: list[str]) -> Rate | None:
    """``row`` as a Rate; on failure appends ``{where}: {column} {value} {problem}``."""
    before = len(errors)

    def read(column: str, convert: Callable[[Any], Any], default: Any = _MISSING) -> Any:
        value = row.get(column)
        if value is None or value == "":
            if default is _MISSING:
                errors.append(f"{where}: {column} is required")
            return None if default is _MISSING else default
        try:
            return convert(value)
        except InvalidValue as exc:
            errors.append(f"{where}: {column} {exc}")
            return None

    def digits(value: Any) -> str:
        # An unquoted YAML prefix is an int; E.164 prefixes never start with 0.
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            value = str(value)
        text = value.strip() if isinstance(value, str) else None
        if not text or not _DIGITS.fullmatch(text) or len(text) > 32:
            raise InvalidValue(f"{show(value)} is not a string of digits")
        return text

    def destination(value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidValue(f"{show(value)} is not text")
        if len(value) > 128:
            raise InvalidValue("is longer than 128 characters")
        return value.strip()

    def count(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidValue(f"{show(value)} is not a whole number of seconds")
        return value

    prefix = read("prefix", digits)
    name = read("destination", destination, "")
    price = read("price_per_minute", decimal_text)
    connect_fee = read("connect_fee", decimal_text, Decimal(0))
    initial = read("initial_increment", count, 60)
    following = read("next_increment", count, 60)
    start = read("effective_from", timestamp, None)
    end = read("effective_until", timestamp, None)
    if following == 0:
        errors.append(f"{where}: next_increment 0 is not a whole number of seconds >= 1")
    if start is not None and end is not None and end <= start:
        errors.append(f"{where}: effective_until is not after effective_from")
    if len(errors) != before:
        return None
    return Rate(prefix, name, price, connect_fee, initial, following, start, end)
