"""Declarative provisioning: ``tollguard load plan.yaml``.

The file declares rate cards, providers with their gateways, and customers with their
accounts and ACL entries (schema and rules: ``docs/provisioning.md``). Loading happens
in two phases:

1. *validate*: the whole file is checked, against itself and against the database, and
   every problem is collected with the path of the offending entry, e.g.
   ``customers[2] 'acme'.accounts[0].username: duplicate 'alice'``;
2. *apply*: only if there was no error, every declared object is created or updated by
   its natural key (names, usernames, ``network`` + ``tech_prefix``) in one transaction,
   which bumps the configuration version once. A failure changes nothing.

Objects missing from the file are left alone, unless the file says ``prune: true``.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from tollguard.domain.plan import Rate, Rounding, RoutingStrategy, SipTransport
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.core.selectors import config_version
from tollguard.web.core.services import config_batch
from tollguard.web.customers.fields import parse_network
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.customers.services import ha1_digests
from tollguard.web.errors import WebError
from tollguard.web.rating import services as rating_services
from tollguard.web.rating.models import Rate as RateModel
from tollguard.web.rating.models import RateCard, RateCardKind

__all__ = [
    "KINDS",
    "Counts",
    "LoadReport",
    "PlanApplyError",
    "PlanFileError",
    "ProvisioningError",
    "load_plan_file",
]

logger = logging.getLogger(__name__)

KINDS = ("rate_cards", "rates", "providers", "gateways", "customers", "accounts", "acl")
Outcome = Literal["created", "updated", "unchanged"]

_DIGITS = re.compile(r"[0-9]*")
_GATEWAY_PREFIX = re.compile(r"\+?[0-9#*]*")
_CURRENCY = re.compile(r"[A-Z]{3}")
_HEX_MD5 = re.compile(r"[0-9a-f]{32}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?")
_USERNAME = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}")
_NAME_MAX = 100
_PRICE_INTEGER_DIGITS = 6  # Decimal(12, 6) columns
_PRICE_DECIMALS = 6
RATE_CSV_COLUMNS = (
    "prefix",
    "destination",
    "price_per_minute",
    "connect_fee",
    "initial_increment",
    "next_increment",
    "effective_from",
    "effective_until",
)


class ProvisioningError(WebError):
    """A plan file that could not be loaded; nothing was changed.

    ``errors`` holds one line per problem, each starting with the path of the entry.
    """

    def __init__(self, path: Path, errors: Iterable[str]) -> None:
        self.path = path
        self.errors = tuple(errors)
        super().__init__(f"{path}: {len(self.errors)} error(s)\n" + "\n".join(self.errors))


class PlanFileError(ProvisioningError):
    """The file is unreadable, not YAML, or fails validation."""


class PlanApplyError(ProvisioningError):
    """The database refused a change that validation let through (e.g. a concurrent edit)."""


@dataclass(slots=True)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load did (or, with ``dry_run``, would have done) per kind of object."""

    path: Path
    dry_run: bool
    pruned: bool
    config_version: int  # after the load (unchanged for a dry run)
    counts: Mapping[str, Counts] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated or c.deleted for c in self.counts.values())

    def summary(self) -> str:
        """A few human lines: one per kind of object that was declared or deleted."""
        lines = [f"{self.path}: dry run, nothing was changed" if self.dry_run else f"{self.path}:"]
        for kind, c in self.counts.items():
            if c.created or c.updated or c.unchanged or c.deleted:
                lines.append(
                    f"  {kind:<11} {c.created} created, {c.updated} updated, "
                    f"{c.unchanged} unchanged, {c.deleted} deleted"
                )
        if not self.changed:
            lines.append("  no change")
        elif not self.dry_run:
            lines.append(f"  configuration version is now {self.config_version}")
        return "\n".join(lines)


# Validated declarations. ``None`` for a nested list means "not declared: leave alone".


@dataclass(frozen=True, slots=True)
class _CardSpec:
    name: str
    currency: str
    rounding: str
    decimals: int
    kind: str
    rates: tuple[Rate, ...] | None


@dataclass(frozen=True, slots=True)
class _GatewaySpec:
    where: str  # the entry's path in the file, for error messages
    name: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _ProviderSpec:
    where: str
    name: str
    cost_card: str | None
    values: dict[str, Any]
    gateways: tuple[_GatewaySpec, ...] | None


@dataclass(frozen=True, slots=True)
class _AccountSpec:
    where: str
    username: str
    password: str | None
    ha1_md5: str | None
    ha1_sha256: str | None
    allow_md5: bool
    enabled: bool
    credentials_given: bool  # a password or a digest key is present, even if invalid


@dataclass(frozen=True, slots=True)
class _AclSpec:
    where: str
    network: str
    tech_prefix: str


@dataclass(frozen=True, slots=True)
class _CustomerSpec:
    where: str
    name: str
    sell_card: str | None
    values: dict[str, Any]
    providers: tuple[str | None, ...] | None
    accounts: tuple[_AccountSpec, ...] | None
    acl: tuple[_AclSpec, ...] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    prune: bool
    rate_cards: tuple[_CardSpec, ...]
    providers: tuple[_ProviderSpec, ...]
    customers: tuple[_CustomerSpec, ...]


class _Invalid(Exception):
    """One value failed; the message is already the full error line."""


_MISSING: Any = object()


class _Reader:
    """Reads typed values out of a YAML mapping, recording errors with their path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def mapping(self, value: Any, where: str, allowed: Iterable[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(where, f"expected a mapping, got {_show(value)}")
            return None
        known = set(allowed)
        for key in value:
            if key not in known:
                self.error(where, f"unknown key {key!r}")
        return value

    def items(self, table: dict[str, Any], key: str, where: str) -> list[Any] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(f"{where}.{key}", f"expected a list, got {_show(value)}")
            return None
        return value

    def get(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        convert: Callable[[Any], Any],
        default: Any = _MISSING,
    ) -> Any:
        value = table.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.error(f"{where}.{key}", "required")
                return None
            return default
        try:
            return convert(value)
        except _Invalid as exc:
            self.error(f"{where}.{key}", str(exc))
            return default if default is not _MISSING else None


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _text(pattern: re.Pattern[str] | None = None, hint: str = "", max_length: int = 255) -> Any:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            extra = f" (quote it: '{value}')" if isinstance(value, int | float) else ""
            raise _Invalid(f"expected a string, got {_show(value)}{extra}")
        if len(value) > max_length:
            raise _Invalid(f"{value!r} is longer than {max_length} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise _Invalid(f"{value!r} is not {hint}")
        return value

    return convert


def _name(value: Any) -> str:
    text: str = _text(max_length=_NAME_MAX)(value)
    if not text.strip():
        raise _Invalid("must not be empty")
    return text


def _integer(minimum: int = 0, maximum: int | None = None) -> Any:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {_show(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and {maximum}" if maximum is not None else ""
            bound = f"between {minimum}{upper}" if maximum is not None else f">= {minimum}"
            raise _Invalid(f"{value} is not {bound}")
        return value

    return convert


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_show(value)}")
    return value


def _choice(options: Iterable[str]) -> Any:
    allowed = tuple(options)

    def convert(value: Any) -> str:
        if value not in allowed:
            raise _Invalid(f"{_show(value)} is not one of {', '.join(allowed)}")
        return str(value)

    return convert


def _decimal_text(value: Any) -> Decimal:
    """A price: YAML numbers are read through their text so 0.1 stays exactly 0.1."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _Invalid(f"{_show(value)} is not a decimal")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise _Invalid(f"{_show(value)} is not a decimal") from exc
    if not amount.is_finite():
        raise _Invalid(f"{_show(value)} is not a decimal")
    if amount < 0:
        raise _Invalid(f"{_show(value)} is negative")
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > _PRICE_DECIMALS:
        raise _Invalid(f"{_show(value)} has more than {_PRICE_DECIMALS} decimal places")
    if amount >= Decimal(10) ** _PRICE_INTEGER_DIGITS:
        raise _Invalid(f"{_show(value)} is too large")
    return amount


def _timestamp(value: Any) -> datetime:
    """ISO 8601; a time without an offset is UTC, a bare date is its midnight UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise _Invalid(f"{value!r} is not an ISO 8601 date or time") from exc
    else:
        raise _Invalid(f"{_show(value)} is not an ISO 8601 date or time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# Rates: one checker for inline YAML entries and CSV lines, so both report alike.


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
        except _Invalid as exc:
            errors.append(f"{where}: {column} {exc}")
            return None

    def digits(value: Any) -> str:
        # An unquoted YAML prefix is an int; E.164 prefixes never start with 0.
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            value = str(value)
        text = value.strip() if isinstance(value, str) else None
        if not text or not _DIGITS.fullmatch(text) or len(text) > 32:
            raise _Invalid(f"{_show(value)} is not a string of digits")
        return text

    def destination(value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"{_show(value)} is not text")
        if len(value) > 128:
            raise _Invalid("is longer than 128 characters")
        return value.strip()

    def count(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _Invalid(f"{_show(value)} is not a whole number of seconds")
        return value

    prefix = read("prefix", digits)
    name = read("destination", destination, "")
    price = read("price_per_minute", _decimal_text)
    connect_fee = read("connect_fee", _decimal_text, Decimal(0))
    initial = read("initial_increment", count, 60)
    following = read("next_increment", count, 60)
    start = read("effective_from", _timestamp, None)
    end = read("effective_until", _timestamp, None)
    if following == 0:
        errors.append(f"{where}: next_increment 0 is not a whole number of seconds >= 1")
    if start is not None and end is not None and end <= start:
        errors.append(f"{where}: effective_until is not after effective_from")
    if len(errors) != before:
        return None
    return Rate(prefix, name, price, connect_fee, initial, following, start, end)


def _csv_rates(path: Path, where: str, errors: list[str]) -> tuple[Rate, ...]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        errors.append(f"{where}.file: cannot read {str(path)!r} ({exc.strerror})")
        return ()
    try:
        with handle:
            return _read_csv_rates(handle, path, where, errors)
    except (UnicodeDecodeError, csv.Error) as exc:
        errors.append(f"{where}.file {path.name}: not a UTF-8 CSV file ({exc})")
        return ()


def _read_csv_rates(
    handle: Iterable[str], path: Path, where: str, errors: list[str]
) -> tuple[Rate, ...]:
    rates: list[Rate] = []
    reader = csv.DictReader(handle)
    header = [name.strip() for name in reader.fieldnames or ()]
    unknown = [name for name in header if name not in RATE_CSV_COLUMNS]
    missing = [name for name in ("prefix", "price_per_minute") if name not in header]
    if unknown or missing:
        problems = [f"unknown column {name!r}" for name in unknown]
        problems += [f"missing column {name!r}" for name in missing]
        errors.append(f"{where}.file {path.name} line 1: {'; '.join(problems)}")
        return ()
    reader.fieldnames = header
    for row in reader:
        line = reader.line_num
        if None in row:
            errors.append(f"{where}.rates line {line}: more cells than columns")
            continue
        rate = parse_rate(row, f"{where}.rates line {line}", errors)
        if rate is not None:
            rates.append(rate)
    return tuple(rates)


def _label(section: str, index: int, entry: Any, key: str) -> str:
    """``customers[2] 'acme'``: the path of a list entry, with its name when it has one."""
    name = entry.get(key) if isinstance(entry, dict) else None
    return f"{section}[{index}] {name!r}" if isinstance(name, str) else f"{section}[{index}]"


def _duplicates(
    entries: Iterable[tuple[str, Any]], what: str, errors: list[str], show: Callable[[Any], str]
) -> None:
    """Reports each repeated key at every entry after its first occurrence."""
    seen: Counter[Any] = Counter()
    for where, key in entries:
        if key is None:
            continue
        seen[key] += 1
        if seen[key] > 1:
            errors.append(f"{where}.{what}: duplicate {show(key)}")


_CARD_KEYS = ("name", "currency", "rounding", "decimals", "kind", "rates", "file")
_PROVIDER_KEYS = ("name", "enabled", "cost_card", "priority", "weight", "gateways")
_GATEWAY_KEYS = (
    "name",
    "host",
    "port",
    "transport",
    "strip_digits",
    "add_prefix",
    "enabled",
    "max_channels",
)
_CUSTOMER_KEYS = (
    "name",
    "enabled",
    "sell_card",
    "strategy",
    "allow_negative_margin",
    "max_call_duration_s",
    "numbering",
    "providers",
    "accounts",
    "acl",
)
_NUMBERING_KEYS = ("country_code", "national_prefix", "international_prefix", "strip_prefix")
_ACCOUNT_KEYS = ("username", "password", "ha1_md5", "ha1_sha256", "allow_md5", "enabled")
_DIGIT_STRING = _text(_DIGITS, "a string of digits", 16)


def _parse(raw: Any, base: Path, errors: list[str]) -> _Plan:
    """The plan in ``raw`` (parsed YAML); problems go to ``errors``, in file order."""
    r = _Reader(errors)
    top = r.mapping(
        raw if raw is not None else {}, "(file)", ("prune", "rate_cards", "providers", "customers")
    )
    if top is None:
        return _Plan(False, (), (), ())
    prune = r.get(top, "prune", "(file)", _boolean, False)

    cards: list[_CardSpec] = []
    names: list[tuple[str, Any]] = []
    for i, entry in enumerate(r.items(top, "rate_cards", "(file)") or ()):
        where = _label("rate_cards", i, entry, "name")
        if (table := r.mapping(entry, where, _CARD_KEYS)) is not None:
            cards.append(_parse_card(r, table, where, base))
            names.append((where, cards[-1].name))
    _duplicates(names, "name", errors, repr)

    providers: list[_ProviderSpec] = []
    names = []
    for i, entry in enumerate(r.items(top, "providers", "(file)") or ()):
        where = _label("providers", i, entry, "name")
        if (table := r.mapping(entry, where, _PROVIDER_KEYS)) is not None:
            providers.append(_parse_provider(r, table, where))
            names.append((where, providers[-1].name))
    _duplicates(names, "name", errors, repr)
    _duplicates(
        (
            (gateway.where, gateway.name)
            for provider in providers
            for gateway in provider.gateways or ()
        ),
        "name",
        errors,
        repr,
    )

    customers: list[_CustomerSpec] = []
    names = []
    for i, entry in enumerate(r.items(top, "customers", "(file)") or ()):
        where = _label("customers", i, entry, "name")
        if (table := r.mapping(entry, where, _CUSTOMER_KEYS)) is not None:
            customers.append(_parse_customer(r, table, where))
            names.append((where, customers[-1].name))
    _duplicates(names, "name", errors, repr)
    # Usernames and ACL keys are unique across customers, so duplicates are file-wide.
    _duplicates(
        (
            (account.where, account.username)
            for customer in customers
            for account in customer.accounts or ()
        ),
        "username",
        errors,
        repr,
    )
    _duplicates(
        (
            (entry.where, (entry.network, entry.tech_prefix))
            for customer in customers
            for entry in customer.acl or ()
        ),
        "network",
        errors,
        lambda key: repr(key[0]) + (f" with tech_prefix {key[1]!r}" if key[1] else ""),
    )
    return _Plan(prune, tuple(cards), tuple(providers), tuple(customers))


def _parse_card(r: _Reader, table: dict[str, Any], where: str, base: Path) -> _CardSpec:
    name = r.get(table, "name", where, _name)
    currency = r.get(table, "currency", where, _text(_CURRENCY, "an ISO 4217 code"), "EUR")
    rounding = r.get(table, "rounding", where, _choice(Rounding), Rounding.HALF_UP.value)
    decimals = r.get(table, "decimals", where, _integer(0, 6), 4)
    kind = r.get(table, "kind", where, _choice(RateCardKind.values), RateCardKind.SELL.value)
    rates: tuple[Rate, ...] | None = None
    if "rates" in table and "file" in table:
        r.error(where, "give either 'rates' or 'file', not both")
    elif "file" in table:
        file_name = r.get(table, "file", where, _text())
        if file_name is not None:
            rates = _csv_rates(base / file_name, where, r.errors)
    elif "rates" in table:
        parsed: list[Rate] = []
        for j, item in enumerate(r.items(table, "rates", where) or ()):
            if not isinstance(item, dict):
                r.error(f"{where}.rates[{j}]", f"expected a mapping, got {_show(item)}")
                continue
            if unknown := [k for k in item if k not in RATE_CSV_COLUMNS]:
                r.error(f"{where}.rates[{j}]", f"unknown key {unknown[0]!r}")
            if (rate := parse_rate(item, f"{where}.rates[{j}]", r.errors)) is not None:
                parsed.append(rate)
        rates = tuple(parsed)
    # One price per prefix and start date: two would make the rate depend on row order.
    _duplicates(
        ((f"{where}.rates", (rate.prefix, rate.effective_from)) for rate in rates or ()),
        "prefix",
        r.errors,
        lambda key: repr(key[0]) + (f" from {key[1].isoformat()}" if key[1] is not None else ""),
    )
    return _CardSpec(name, currency, rounding, decimals, kind, rates)


def _parse_provider(r: _Reader, table: dict[str, Any], where: str) -> _ProviderSpec:
    name = r.get(table, "name", where, _name)
    cost_card = r.get(table, "cost_card", where, _name, None)
    values = {
        "enabled": r.get(table, "enabled", where, _boolean, True),
        "priority": r.get(table, "priority", where, _integer(), 100),
        "weight": r.get(table, "weight", where, _integer(), 100),
    }
    gateways: list[_GatewaySpec] | None = None
    if "gateways" in table:
        gateways = []
        for j, item in enumerate(r.items(table, "gateways", where) or ()):
            gw_where = f"{where}." + _label("gateways", j, item, "name")
            if (gw := r.mapping(item, gw_where, _GATEWAY_KEYS)) is not None:
                gateways.append(_parse_gateway(r, gw, gw_where))
    return _ProviderSpec(
        where, name, cost_card, values, tuple(gateways) if gateways is not None else None
    )


def _parse_gateway(r: _Reader, gw: dict[str, Any], where: str) -> _GatewaySpec:
    add_prefix = _text(_GATEWAY_PREFIX, "digits, '#', '*' with an optional '+'", 32)
    return _GatewaySpec(
        where=where,
        name=r.get(gw, "name", where, _name),
        values={
            "host": r.get(gw, "host", where, _text(_HOST, "a host name or IP address")),
            "port": r.get(gw, "port", where, _integer(1, 65535), 5060),
            "transport": r.get(gw, "transport", where, _choice(SipTransport), "udp"),
            "strip_digits": r.get(gw, "strip_digits", where, _integer(0, 32), 0),
            "add_prefix": r.get(gw, "add_prefix", where, add_prefix, ""),
            "enabled": r.get(gw, "enabled", where, _boolean, True),
            "max_channels": r.get(gw, "max_channels", where, _integer(), 0),
        },
    )


def _parse_customer(r: _Reader, table: dict[str, Any], where: str) -> _CustomerSpec:
    name = r.get(table, "name", where, _name)
    sell_card = r.get(table, "sell_card", where, _name, None)
    values = {
        "enabled": r.get(table, "enabled", where, _boolean, True),
        "strategy": r.get(table, "strategy", where, _choice(RoutingStrategy), "lcr"),
        "allow_negative_margin": r.get(table, "allow_negative_margin", where, _boolean, False),
        "max_call_duration_s": r.get(table, "max_call_duration_s", where, _integer(1), 7200),
    }
    num_where = f"{where}.numbering"
    numbering = r.mapping(table.get("numbering") or {}, num_where, _NUMBERING_KEYS) or {}
    for key, default in (
        ("country_code", ""),
        ("national_prefix", "0"),
        ("international_prefix", "00"),
        ("strip_prefix", ""),
    ):
        values[key] = r.get(numbering, key, num_where, _DIGIT_STRING, default)
    allow: tuple[str | None, ...] | None = None
    if "providers" in table:
        # Invalid names stay as None so that later messages keep the file's indices.
        allow = tuple(
            _safe(r, f"{where}.providers[{j}]", _name, item)
            for j, item in enumerate(r.items(table, "providers", where) or ())
        )
    accounts: tuple[_AccountSpec, ...] | None = None
    if "accounts" in table:
        accounts = tuple(
            _parse_account(r, acc, f"{where}.accounts[{j}]")
            for j, item in enumerate(r.items(table, "accounts", where) or ())
            if (acc := r.mapping(item, f"{where}.accounts[{j}]", _ACCOUNT_KEYS)) is not None
        )
    acl: list[_AclSpec] | None = None
    if "acl" in table:
        acl = []
        for j, item in enumerate(r.items(table, "acl", where) or ()):
            acl_where = f"{where}.acl[{j}]"
            if (entry := r.mapping(item, acl_where, ("network", "tech_prefix"))) is None:
                continue
            network = r.get(entry, "network", acl_where, _network)
            tech_prefix = r.get(entry, "tech_prefix", acl_where, _DIGIT_STRING, "")
            if network is not None and tech_prefix is not None:
                acl.append(_AclSpec(acl_where, network, tech_prefix))
    return _CustomerSpec(
        where, name, sell_card, values, allow, accounts, tuple(acl) if acl is not None else None
    )


def _parse_account(r: _Reader, acc: dict[str, Any], where: str) -> _AccountSpec:
    username = r.get(acc, "username", where, _text(_USERNAME, "a valid SIP user name", 64))
    password = r.get(acc, "password", where, _text(max_length=256), None)
    ha1_md5 = r.get(acc, "ha1_md5", where, _text(_HEX_MD5, "32 lower-case hex digits"), None)
    ha1_sha256 = r.get(
        acc, "ha1_sha256", where, _text(_HEX_SHA256, "64 lower-case hex digits"), None
    )
    allow_md5 = r.get(acc, "allow_md5", where, _boolean, False)
    enabled = r.get(acc, "enabled", where, _boolean, True)
    if password is not None and (ha1_md5 is not None or ha1_sha256 is not None):
        r.error(where, "give either 'password' or HA1 digests, not both")
    elif password == "":
        r.error(f"{where}.password", "must not be empty")
    elif ha1_md5 is not None and ha1_sha256 is None:
        r.error(f"{where}.ha1_sha256", "required with ha1_md5")
    elif ha1_sha256 is not None and ha1_md5 is None and allow_md5:
        r.error(f"{where}.ha1_md5", "required unless allow_md5 is false")
    given = any(key in acc for key in ("password", "ha1_md5", "ha1_sha256"))
    return _AccountSpec(where, username, password, ha1_md5, ha1_sha256, allow_md5, enabled, given)


def _safe(r: _Reader, where: str, convert: Callable[[Any], Any], value: Any) -> Any:
    try:
        return convert(value)
    except _Invalid as exc:
        r.error(where, str(exc))
        return None


def _network(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{_show(value)} is not an IP network in CIDR form")
    try:
        return str(parse_network(value))
    except Exception as exc:  # a django ValidationError; its text is not needed here
        raise _Invalid(f"{value!r} is not an IP network in CIDR form") from exc


def _check_references(plan: _Plan, errors: list[str]) -> None:
    """Names used by the file exist (in the file or the database), with the right kind."""
    kinds = dict(RateCard.objects.values_list("name", "kind"))
    kinds.update((card.name, card.kind) for card in plan.rate_cards)
    if plan.prune:
        kinds = {card.name: card.kind for card in plan.rate_cards}

    def card(where: str, name: str | None, kind: str) -> None:
        if name is None:
            return
        if name not in kinds:
            errors.append(f"{where}: unknown rate card {name!r}")
        elif kinds[name] is not None and kinds[name] != kind:
            errors.append(f"{where}: rate card {name!r} is a {kinds[name]} card, not {kind}")

    for provider in plan.providers:
        card(f"{provider.where}.cost_card", provider.cost_card, RateCardKind.COST)

    provider_names = {p.name for p in plan.providers}
    if not plan.prune:
        provider_names.update(Provider.objects.values_list("name", flat=True))
    for customer in plan.customers:
        card(f"{customer.where}.sell_card", customer.sell_card, RateCardKind.SELL)
        for j, name in enumerate(customer.providers or ()):
            if name is not None and name not in provider_names:
                errors.append(f"{customer.where}.providers[{j}]: unknown provider {name!r}")

    # Natural keys that are unique across parents must not silently move between them.
    owners = _owners(Gateway, "name", "provider__name")
    for provider in plan.providers:
        for gateway in provider.gateways or ():
            owner = owners.get(gateway.name) if gateway.name is not None else None
            if owner is not None and provider.name is not None and owner != provider.name:
                errors.append(f"{gateway.where}.name: already belongs to provider {owner!r}")
    account_owner = _owners(Account, "username", "customer__name")
    with_md5 = set(Account.objects.exclude(ha1_md5="").values_list("username", flat=True))
    acl_owner = {
        (network, tech_prefix): owner
        for network, tech_prefix, owner in AclEntry.objects.values_list(
            "network", "tech_prefix", "customer__name"
        )
    }
    for customer in plan.customers:
        for account in customer.accounts or ():
            if account.username is None or customer.name is None:
                continue
            owner = account_owner.get(account.username)
            if owner is not None and owner != customer.name:
                errors.append(
                    f"{account.where}.username: {account.username!r} already belongs "
                    f"to customer {owner!r}"
                )
            if owner is None and not account.credentials_given:
                errors.append(f"{account.where}: a new account needs 'password' or HA1 digests")
            elif (
                owner is not None
                and account.allow_md5
                and not account.credentials_given
                and account.username not in with_md5
            ):
                errors.append(
                    f"{account.where}.allow_md5: needs 'password' (or ha1_md5) again: the "
                    "MD5 digest is kept only for accounts that allow MD5"
                )
        for entry in customer.acl or ():
            owner = acl_owner.get((entry.network, entry.tech_prefix))
            if owner is not None and customer.name is not None and owner != customer.name:
                errors.append(
                    f"{entry.where}.network: {entry.network!r} already belongs to "
                    f"customer {owner!r}"
                )


def _owners(model: type[models.Model], key: str, owner: str) -> dict[str, str]:
    return dict(model._default_manager.values_list(key, owner))


# Apply.


def _upsert(
    model: type[models.Model], lookup: dict[str, Any], values: dict[str, Any]
) -> tuple[Any, Outcome]:
    """Create or update the row found by ``lookup``; validated like an admin form save."""
    obj = model._default_manager.filter(**lookup).first()
    if obj is None:
        obj = model(**lookup, **values)
        obj.full_clean()
        obj.save()
        return obj, "created"
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    if not changed:
        return obj, "unchanged"
    for name in changed:
        setattr(obj, name, values[name])
    obj.full_clean()
    obj.save(update_fields=changed)
    return obj, "updated"


def _apply(plan: _Plan, realm: str, counts: dict[str, Counts]) -> None:
    cards: dict[str, RateCard] = {}
    for spec in plan.rate_cards:
        card, outcome = _upsert(
            RateCard,
            {"name": spec.name},
            {
                "currency": spec.currency,
                "rounding": spec.rounding,
                "decimals": spec.decimals,
                "kind": spec.kind,
            },
        )
        counts["rate_cards"].add(outcome)
        cards[spec.name] = card
        if spec.rates is not None:
            _replace_rates(card, spec.rates, counts["rates"])

    def card_id(name: str | None) -> int | None:
        if name is None:
            return None
        if name not in cards:
            cards[name] = RateCard.objects.get(name=name)
        return cards[name].pk

    providers: dict[str, Provider] = {}
    for pspec in plan.providers:
        provider, outcome = _upsert(
            Provider,
            {"name": pspec.name},
            {"cost_card_id": card_id(pspec.cost_card), **pspec.values},
        )
        counts["providers"].add(outcome)
        providers[pspec.name] = provider
        for gspec in pspec.gateways or ():
            _, outcome = _upsert(
                Gateway, {"name": gspec.name}, {"provider_id": provider.pk, **gspec.values}
            )
            counts["gateways"].add(outcome)

    for cspec in plan.customers:
        customer, outcome = _upsert(
            Customer,
            {"name": cspec.name},
            {"sell_card_id": card_id(cspec.sell_card), **cspec.values},
        )
        if cspec.providers is not None:
            wanted = set(
                Provider.objects.filter(name__in=cspec.providers).values_list("pk", flat=True)
            )
            current = set(customer.providers.values_list("pk", flat=True))
            if wanted != current:
                customer.providers.set(wanted)
                if outcome == "unchanged":
                    outcome = "updated"
        counts["customers"].add(outcome)
        for aspec in cspec.accounts or ():
            values: dict[str, Any] = {
                "customer_id": customer.pk,
                "allow_md5": aspec.allow_md5,
                "enabled": aspec.enabled,
            }
            if aspec.password is not None:
                values["ha1_md5"], values["ha1_sha256"] = ha1_digests(
                    aspec.username, realm, aspec.password, md5=aspec.allow_md5
                )
            elif aspec.ha1_sha256 is not None:
                # The MD5 HA1 is kept only for accounts that allow MD5 (Account.save).
                values["ha1_md5"] = (aspec.ha1_md5 or "") if aspec.allow_md5 else ""
                values["ha1_sha256"] = aspec.ha1_sha256
            _, outcome = _upsert(Account, {"username": aspec.username}, values)
            counts["accounts"].add(outcome)
        for lspec in cspec.acl or ():
            _, outcome = _upsert(
                AclEntry,
                {"network": lspec.network, "tech_prefix": lspec.tech_prefix},
                {"customer_id": customer.pk},
            )
            counts["acl"].add(outcome)

    if plan.prune:
        _prune(plan, counts)


def _replace_rates(card: RateCard, rates: tuple[Rate, ...], counts: Counts) -> None:
    # A rate card is one price list: the declared rates replace the card's rates.
    result = rating_services.sync_rates(card, rates)
    counts.created += result.created
    counts.deleted += result.deleted
    counts.unchanged += result.unchanged


def _prune(plan: _Plan, counts: dict[str, Counts]) -> None:
    def delete(queryset: models.QuerySet[Any], kind: str) -> None:
        removed = queryset.count()
        if removed:
            queryset.delete()
            counts[kind].deleted += removed

    customer_names = {c.name for c in plan.customers}
    usernames = {a.username for c in plan.customers for a in c.accounts or ()}
    acl_keys = {(e.network, e.tech_prefix) for c in plan.customers for e in c.acl or ()}
    # Children first, so that their count is not hidden inside a parent's cascade.
    delete(Account.objects.exclude(username__in=usernames), "accounts")
    stale_acl = [
        pk
        for pk, network, tech_prefix in AclEntry.objects.values_list("pk", "network", "tech_prefix")
        if (network, tech_prefix) not in acl_keys
    ]
    delete(AclEntry.objects.filter(pk__in=stale_acl), "acl")
    delete(Customer.objects.exclude(name__in=customer_names), "customers")
    gateway_names = {g.name for p in plan.providers for g in p.gateways or ()}
    delete(Gateway.objects.exclude(name__in=gateway_names), "gateways")
    delete(Provider.objects.exclude(name__in={p.name for p in plan.providers}), "providers")
    stale_cards = RateCard.objects.exclude(name__in={c.name for c in plan.rate_cards})
    counts["rates"].deleted += RateModel.objects.filter(card__in=stale_cards).count()
    delete(stale_cards, "rate_cards")


def _describe(exc: ValidationError | IntegrityError) -> str:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(
            f"{name}: {' '.join(str(m) for m in messages)}"
            for name, messages in exc.message_dict.items()
        )
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def load_plan_file(path: Path | str, *, realm: str, dry_run: bool = False) -> LoadReport:
    """Validate and apply the plan file at ``path``; see the module docstring.

    ``realm`` is the SIP digest realm that account passwords are hashed for
    (``settings.sip.realm``). With ``dry_run`` everything is checked and applied, then
    rolled back: the report says what a real load would do.

    Raises :class:`PlanFileError` listing every problem; nothing is changed then.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanFileError(path, [f"(file): cannot read {str(path)!r} ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise PlanFileError(path, [f"(file): not UTF-8 text ({exc.reason})"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"(file) line {mark.line + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanFileError(path, [f"{where}: not valid YAML: {problem}"]) from exc

    errors: list[str] = []
    plan = _parse(raw, path.parent, errors)
    counts = {kind: Counts() for kind in KINDS}
    with transaction.atomic():
        _check_references(plan, errors)
        if errors:
            raise PlanFileError(path, errors)
        before = config_version()
        # One bump for the whole load, and only if something changed.
        try:
            with config_batch():
                _apply(plan, realm, counts)
        except (ValidationError, IntegrityError) as exc:
            raise PlanApplyError(path, [f"(database): {_describe(exc)}"]) from exc
        version = config_version()
        if dry_run:
            transaction.set_rollback(True)
            version = before
    report = LoadReport(path, dry_run, plan.prune, version, counts)
    logger.info(
        "%s %s: %s",
        "checked" if dry_run else "loaded",
        path,
        ", ".join(
            f"{kind} +{c.created} ~{c.updated} -{c.deleted}"
            for kind, c in counts.items()
            if c.created or c.updated or c.deleted
        )
        or "no change",
    )
    return report
