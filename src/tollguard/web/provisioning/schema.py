"""The plan file's schema: YAML (and the CSV rate files it names) read into checked specs.

:func:`read` parses the YAML with PyYAML's safe loader, keeping the line of every
mapping, key and list item; :func:`parse` checks the result against itself only (types,
ranges, names repeated within the file) and reports every problem with the line and
path of its entry, e.g. ``plan.yaml:12: customers[2] 'acme'.accounts[0].username:
duplicate 'alice'``, marking the line of each entry and field it reads so that later
steps can name them too. What the database already holds is checked by
:mod:`tollguard.web.provisioning.validation`. The rules are in ``docs/provisioning.md``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from tollguard.domain.credit import check_amount
from tollguard.domain.errors import CreditError
from tollguard.domain.fraud import parse_caller_range
from tollguard.domain.numbers import NumberKind
from tollguard.domain.plan import (
    BillingMode,
    DestinationMatch,
    FraudAction,
    MediaChoice,
    Rate,
    Rounding,
    RoutingStrategy,
    SipTransport,
)
from tollguard.web.billing.models import MAX_THRESHOLDS
from tollguard.web.carriers.models import GATEWAY_FIELDS
from tollguard.web.customers.fields import parse_network
from tollguard.web.provisioning.errors import Problems
from tollguard.web.rating.models import RateCardKind
from tollguard.web.rating.rate_rows import (
    RATE_COLUMNS,
    InvalidValue,
    header_problems,
    parse_rate,
    show,
)

__all__ = [
    "AccountSpec",
    "AclSpec",
    "AlertsSpec",
    "CardSpec",
    "CreditSpec",
    "CustomerSpec",
    "DidSpec",
    "FraudSpec",
    "GatewaySpec",
    "PlanSpec",
    "ProviderSpec",
    "parse",
    "read",
]

_GATEWAY_PREFIX = re.compile(r"\+?[0-9#*]*")
_CURRENCY = re.compile(r"[A-Z]{3}")
_HEX_MD5 = re.compile(r"[0-9a-f]{32}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?")
_USERNAME = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}")
_DIGITS = re.compile(r"[0-9]*")
_NAME_MAX = 100


# Validated declarations. ``None`` for a nested list means "not declared: leave alone".


@dataclass(frozen=True, slots=True)
class CardSpec:
    where: str  # the entry's path in the file, for error messages
    name: str
    currency: str
    rounding: str
    decimals: int
    kind: str
    rates: tuple[Rate, ...] | None


@dataclass(frozen=True, slots=True)
class FraudSpec:
    """A customer's or account's fraud policy (``fraud:``) or a gateway's ``limits:``;
    declaring it replaces the whole policy, rules and quiet hours included."""

    where: str
    values: dict[str, Any]
    destinations: tuple[dict[str, Any], ...] = ()
    quiet_hours: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    where: str  # the entry's path in the file, for error messages
    name: str
    values: dict[str, Any]
    limits: FraudSpec | None = None


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    where: str
    name: str
    cost_card: str | None
    values: dict[str, Any]
    gateways: tuple[GatewaySpec, ...] | None
    inbound_card: str | None = None


@dataclass(frozen=True, slots=True)
class AccountSpec:
    where: str
    username: str
    password: str | None
    ha1_md5: str | None
    ha1_sha256: str | None
    allow_md5: bool
    enabled: bool
    credentials_given: bool  # a password or a digest key is present, even if invalid
    fraud: FraudSpec | None = None
    extension: str = ""


@dataclass(frozen=True, slots=True)
class AclSpec:
    where: str
    network: str
    tech_prefix: str


@dataclass(frozen=True, slots=True)
class CreditSpec:
    mode: str
    credit_limit: Decimal
    currency: str | None  # None: the sell card's


@dataclass(frozen=True, slots=True)
class AlertsSpec:
    thresholds: tuple[Decimal, ...]  # highest first
    email: str
    webhook_url: str


@dataclass(frozen=True, slots=True)
class CustomerSpec:
    where: str
    name: str
    sell_card: str | None
    values: dict[str, Any]
    providers: tuple[str | None, ...] | None
    accounts: tuple[AccountSpec, ...] | None
    acl: tuple[AclSpec, ...] | None
    fraud: FraudSpec | None = None
    credit: CreditSpec | None = None  # None: not declared, left alone
    alerts: AlertsSpec | None = None


@dataclass(frozen=True, slots=True)
class DidSpec:
    """A DID: ``values`` are the model's fields but its customer and account, which are
    named (``customer``, ``account``) and looked up when applied."""

    where: str
    first: str
    customer: str
    account: str | None
    values: dict[str, Any]

    def key_of(self, field: str) -> str | None:
        """The file's key for the model field ``field`` (``trunk_port``: ``trunk``)."""
        if field == "first" and not self.values["last"]:
            return "number"
        return _DID_KEY_OF_FIELD.get(field)


@dataclass(frozen=True, slots=True)
class PlanSpec:
    prune: bool
    rate_cards: tuple[CardSpec, ...]
    providers: tuple[ProviderSpec, ...]
    customers: tuple[CustomerSpec, ...]
    dids: tuple[DidSpec, ...] = ()


# --- the YAML, with its lines ----------------------------------------------------------


class _Mapping(dict[Any, Any]):
    """A YAML mapping that knows the line (1-based) it and each of its keys start on."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}


class _Sequence(list[Any]):
    """A YAML list that knows the line it and each of its items start on."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int, item_lines: list[int]) -> None:
        super().__init__()
        self.line = line
        self.item_lines = item_lines


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _LineLoader(yaml.SafeLoader):
    """PyYAML's safe loader, building mappings and lists that keep their lines."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_Mapping]:
    # A generator, as PyYAML's own constructors of collections: the empty mapping is
    # handed out first, so that an alias inside it can refer to it.
    data = _Mapping(_line(node))
    yield data
    data.update(loader.construct_mapping(node))
    # construct_mapping has merged any "<<" keys into node.value; a later key wins, as
    # in the mapping itself. Keys are built already: construct_object returns them.
    for key_node, _ in node.value:
        data.key_lines[loader.construct_object(key_node)] = _line(key_node)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[_Sequence]:
    data = _Sequence(_line(node), [_line(item) for item in node.value])
    yield data
    data.extend(loader.construct_sequence(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def read(text: str) -> Any:
    """The YAML document in ``text``, its mappings and lists knowing their lines.

    Raises ``yaml.YAMLError`` as :func:`yaml.safe_load` does: it reads the same values.
    """
    # _LineLoader is a SafeLoader: no tag builds anything but plain values.
    return yaml.load(text, Loader=_LineLoader)  # noqa: S506


# --- reading values ------------------------------------------------------------------------

_MISSING: Any = object()
_TOP = "(file)"  # the path of the file's top level


class _Reader:
    """Reads typed values out of YAML mappings, reporting problems with their path and
    line, and marking the line of every entry and field it reads."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def error(self, where: str, message: str, *, line: int | None = None) -> None:
        self.problems.add(where, message, line=line)

    def mapping(self, value: Any, where: str, allowed: Iterable[str]) -> dict[str, Any] | None:
        if isinstance(value, _Mapping | _Sequence):
            self.problems.mark(where, value.line)
        if not isinstance(value, dict):
            self.error(where, f"expected a mapping, got {show(value)}")
            return None
        known = set(allowed)
        lines = value.key_lines if isinstance(value, _Mapping) else {}
        for key in value:
            line = lines.get(key)
            if line is not None:
                self.problems.mark(f"{where}.{key}", line)
            if key not in known:
                self.error(where, f"unknown key {key!r}", line=line)
        return value

    def items(self, table: dict[str, Any], key: str, where: str) -> list[Any] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(f"{where}.{key}", f"expected a list, got {show(value)}")
            return None
        if isinstance(value, _Sequence):
            for j, line in enumerate(value.item_lines):
                self.problems.mark(f"{where}.{key}[{j}]", line)
        return value

    def entries(
        self, table: dict[str, Any], key: str, where: str, *names: str
    ) -> Iterator[tuple[str, Any]]:
        """Each item of the list ``table[key]`` with its path, ``key[index] 'its name'``
        (the first of ``names`` it has; under ``where`` unless that is the file's top
        level), its line marked."""
        items = self.items(table, key, where) or []
        lines = items.item_lines if isinstance(items, _Sequence) else []
        parent = "" if where == _TOP else f"{where}."
        for j, item in enumerate(items):
            label = parent + _label(key, j, item, *names)
            if j < len(lines):
                self.problems.mark(label, lines[j])
            yield label, item

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
        except InvalidValue as exc:
            self.error(f"{where}.{key}", str(exc))
            return default if default is not _MISSING else None


def _text(pattern: re.Pattern[str] | None = None, hint: str = "", max_length: int = 255) -> Any:
    def convert(value: Any) -> str:
        if not isinstance(value, str):
            extra = f" (quote it: '{value}')" if isinstance(value, int | float) else ""
            raise InvalidValue(f"expected a string, got {show(value)}{extra}")
        if len(value) > max_length:
            raise InvalidValue(f"{value!r} is longer than {max_length} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise InvalidValue(f"{value!r} is not {hint}")
        return value

    return convert


def _name(value: Any) -> str:
    text: str = _text(max_length=_NAME_MAX)(value)
    if not text.strip():
        raise InvalidValue("must not be empty")
    return text


def _integer(minimum: int = 0, maximum: int | None = None) -> Any:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"expected an integer, got {show(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and {maximum}" if maximum is not None else ""
            bound = f"between {minimum}{upper}" if maximum is not None else f">= {minimum}"
            raise InvalidValue(f"{value} is not {bound}")
        return value

    return convert


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"expected true or false, got {show(value)}")
    return value


def _choice(options: Iterable[str]) -> Any:
    allowed = tuple(options)

    def convert(value: Any) -> str:
        if value not in allowed:
            raise InvalidValue(f"{show(value)} is not one of {', '.join(allowed)}")
        return str(value)

    return convert


# Rates from the CSV file a card names. Each row, like an inline entry and a line of an
# admin upload, goes through the rating app's checks, so all three report alike. A row's
# problems name the CSV file and its line (the header is line 1), as the plan file's
# problems name theirs: ``rates.csv:17: rate_cards[0] 'retail'.rates: ...``.


def _csv_rates(base: Path, name: str, where: str, problems: Problems) -> tuple[Rate, ...]:
    path = base / name
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        problems.add(f"{where}.file", f"cannot read {str(path)!r} ({exc.strerror})")
        return ()
    try:
        with handle:
            return _read_csv_rates(handle, name, f"{where}.rates", problems)
    except (UnicodeDecodeError, csv.Error) as exc:
        problems.add(f"{where}.file", f"{name} is not a UTF-8 CSV file ({exc})")
        return ()


def _read_csv_rates(
    handle: Iterable[str], name: str, where: str, problems: Problems
) -> tuple[Rate, ...]:
    rates: list[Rate] = []
    reader = csv.DictReader(handle)
    header = [column.strip() for column in reader.fieldnames or ()]
    if wrong := header_problems(header):
        problems.add_in(name, 1, where, "; ".join(wrong))
        return ()
    reader.fieldnames = header
    first_line: dict[tuple[str, Any], int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.add_in(name, line, where, "more cells than columns")
            continue
        rate = parse_rate(row, f"{name}:{line}: {where}", problems.messages)
        if rate is None:
            continue
        # One price per prefix and start date: two would make the rate depend on order.
        key = (rate.prefix, rate.effective_from)
        if key in first_line:
            problems.add_in(
                name,
                line,
                where,
                f"duplicate prefix {_show_rate_key(key)} (first on line {first_line[key]})",
            )
            continue
        first_line[key] = line
        rates.append(rate)
    return tuple(rates)


def _show_rate_key(key: tuple[str, Any]) -> str:
    prefix, start = key
    return repr(prefix) + (f" from {start.isoformat()}" if start is not None else "")


def _label(section: str, index: int, entry: Any, *keys: str) -> str:
    """``customers[2] 'acme'``: the path of a list entry, with its name when it has one
    (the value of the first of ``keys`` that the entry has)."""
    key = next((key for key in keys if isinstance(entry, dict) and key in entry), None)
    name = entry.get(key) if key is not None else None
    return f"{section}[{index}] {name!r}" if isinstance(name, str) else f"{section}[{index}]"


def _duplicates(
    entries: Iterable[tuple[str, Any]],
    what: str,
    problems: Problems,
    show: Callable[[Any], str],
) -> None:
    """Reports each repeated key at every entry after its first occurrence."""
    seen: Counter[Any] = Counter()
    for where, key in entries:
        if key is None:
            continue
        seen[key] += 1
        if seen[key] > 1:
            problems.add(f"{where}.{what}", f"duplicate {show(key)}")


_CARD_KEYS = ("name", "currency", "rounding", "decimals", "kind", "rates", "file")
_PROVIDER_KEYS = (
    "name",
    "enabled",
    "cost_card",
    "inbound_card",
    "priority",
    "weight",
    "media",
    "gateways",
)
_GATEWAY_KEYS = GATEWAY_FIELDS
_CUSTOMER_KEYS = (
    "name",
    "enabled",
    "sell_card",
    "strategy",
    "allow_negative_margin",
    "max_call_duration_s",
    "media",
    "numbering",
    "providers",
    "accounts",
    "acl",
    "fraud",
    "credit",
    "alerts",
)
_CREDIT_KEYS = ("mode", "credit_limit", "currency")
_ALERT_KEYS = ("thresholds", "email", "webhook_url")
_NUMBERING_KEYS = ("country_code", "national_prefix", "international_prefix", "strip_prefix")
_ACCOUNT_KEYS = (
    "username",
    "password",
    "ha1_md5",
    "ha1_sha256",
    "allow_md5",
    "enabled",
    "fraud",
    "extension",
)
_DIGIT_STRING = _text(_DIGITS, "a string of digits", 16)
_DID_KEYS = (
    "number",
    "first",
    "last",
    "customer",
    "account",
    "trunk",
    "failover",
    "forward",
    "price_per_minute",
    "monthly_price",
    "enabled",
)
# The file's key of each model field of a DID (a single number's ``first`` is ``number``).
_DID_KEY_OF_FIELD = {
    "first": "first",
    "last": "last",
    "customer": "customer",
    "customer_id": "customer",
    "account": "account",
    "account_id": "account",
    "trunk": "trunk",
    "trunk_host": "trunk",
    "trunk_port": "trunk",
    "trunk_transport": "trunk",
    "failover_host": "failover",
    "failover_port": "failover",
    "failover_transport": "failover",
    "forward_to": "forward",
    "price_per_minute": "price_per_minute",
    "monthly_price": "monthly_price",
    "enabled": "enabled",
}
_E164 = re.compile(r"[0-9]{1,20}")
# host[:port][;transport=udp|tcp|tls]; an IPv6 address in brackets.
_SIP_ADDRESS = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.\-]{1,253})"
    r"(?::(?P<port>[0-9]{1,5}))?(?:;transport=(?P<transport>udp|tcp|tls))?"
)


def parse(raw: Any, base: Path, problems: Problems) -> PlanSpec:
    """The plan in ``raw`` (from :func:`read`); problems go to ``problems``, in file
    order, and the line of every entry and field is marked there."""
    r = _Reader(problems)
    top = r.mapping(
        raw if raw is not None else {},
        _TOP,
        ("prune", "rate_cards", "providers", "customers", "dids"),
    )
    if top is None:
        return PlanSpec(False, (), (), ())
    prune = r.get(top, "prune", _TOP, _boolean, False)

    cards: list[CardSpec] = []
    for where, entry in r.entries(top, "rate_cards", _TOP, "name"):
        if (table := r.mapping(entry, where, _CARD_KEYS)) is not None:
            cards.append(_parse_card(r, table, where, base))
    _duplicates(((card.where, card.name) for card in cards), "name", problems, repr)

    providers: list[ProviderSpec] = []
    for where, entry in r.entries(top, "providers", _TOP, "name"):
        if (table := r.mapping(entry, where, _PROVIDER_KEYS)) is not None:
            providers.append(_parse_provider(r, table, where))
    _duplicates(((p.where, p.name) for p in providers), "name", problems, repr)
    _duplicates(
        (
            (gateway.where, gateway.name)
            for provider in providers
            for gateway in provider.gateways or ()
        ),
        "name",
        problems,
        repr,
    )

    customers: list[CustomerSpec] = []
    for where, entry in r.entries(top, "customers", _TOP, "name"):
        if (table := r.mapping(entry, where, _CUSTOMER_KEYS)) is not None:
            customers.append(_parse_customer(r, table, where))
    _duplicates(((c.where, c.name) for c in customers), "name", problems, repr)
    # Usernames and ACL keys are unique across customers, so duplicates are file-wide.
    _duplicates(
        (
            (account.where, account.username)
            for customer in customers
            for account in customer.accounts or ()
        ),
        "username",
        problems,
        repr,
    )
    _duplicates(
        (
            (entry.where, (entry.network, entry.tech_prefix))
            for customer in customers
            for entry in customer.acl or ()
        ),
        "network",
        problems,
        lambda key: repr(key[0]) + (f" with tech_prefix {key[1]!r}" if key[1] else ""),
    )
    # An extension is unique within its customer.
    for customer in customers:
        _duplicates(
            ((account.where, account.extension or None) for account in customer.accounts or ()),
            "extension",
            problems,
            repr,
        )

    dids: list[DidSpec] = []
    for where, entry in r.entries(top, "dids", _TOP, "number", "first"):
        table = r.mapping(entry, where, _DID_KEYS)
        if table is not None and (did := _parse_did(r, table, where)) is not None:
            dids.append(did)
    _duplicates(((did.where, did.first) for did in dids), "number", problems, repr)
    return PlanSpec(prune, tuple(cards), tuple(providers), tuple(customers), tuple(dids))


def _parse_card(r: _Reader, table: dict[str, Any], where: str, base: Path) -> CardSpec:
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
            rates = _csv_rates(base, file_name, where, r.problems)
    elif "rates" in table:
        parsed: list[tuple[str, Rate]] = []
        for j, item in enumerate(r.items(table, "rates", where) or ()):
            item_where = f"{where}.rates[{j}]"
            if r.mapping(item, item_where, RATE_COLUMNS) is None:
                continue
            rate = parse_rate(item, r.problems.at(item_where), r.problems.messages)
            if rate is not None:
                parsed.append((item_where, rate))
        # One price per prefix and start date: two would make the rate depend on order.
        _duplicates(
            ((item_where, (rate.prefix, rate.effective_from)) for item_where, rate in parsed),
            "prefix",
            r.problems,
            _show_rate_key,
        )
        rates = tuple(rate for _, rate in parsed)
    return CardSpec(where, name, currency, rounding, decimals, kind, rates)


def _parse_provider(r: _Reader, table: dict[str, Any], where: str) -> ProviderSpec:
    name = r.get(table, "name", where, _name)
    cost_card = r.get(table, "cost_card", where, _name, None)
    inbound_card = r.get(table, "inbound_card", where, _name, None)
    values = {
        "enabled": r.get(table, "enabled", where, _boolean, True),
        "priority": r.get(table, "priority", where, _integer(), 100),
        "weight": r.get(table, "weight", where, _integer(), 100),
        "media": r.get(table, "media", where, _choice(MediaChoice), "default"),
    }
    gateways: list[GatewaySpec] | None = None
    if "gateways" in table:
        gateways = []
        for gw_where, item in r.entries(table, "gateways", where, "name"):
            if (gw := r.mapping(item, gw_where, (*_GATEWAY_KEYS, "limits"))) is not None:
                gateways.append(_parse_gateway(r, gw, gw_where))
    return ProviderSpec(
        where,
        name,
        cost_card,
        values,
        tuple(gateways) if gateways is not None else None,
        inbound_card,
    )


def _parse_gateway(r: _Reader, gw: dict[str, Any], where: str) -> GatewaySpec:
    add_prefix = _text(_GATEWAY_PREFIX, "digits, '#', '*' with an optional '+'", 32)
    return GatewaySpec(
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
        limits=_parse_fraud(r, gw["limits"], f"{where}.limits", limits_only=True)
        if "limits" in gw
        else None,
    )


def _parse_customer(r: _Reader, table: dict[str, Any], where: str) -> CustomerSpec:
    name = r.get(table, "name", where, _name)
    sell_card = r.get(table, "sell_card", where, _name, None)
    values = {
        "enabled": r.get(table, "enabled", where, _boolean, True),
        "strategy": r.get(table, "strategy", where, _choice(RoutingStrategy), "lcr"),
        "allow_negative_margin": r.get(table, "allow_negative_margin", where, _boolean, False),
        "max_call_duration_s": r.get(table, "max_call_duration_s", where, _integer(1), 7200),
        "media": r.get(table, "media", where, _choice(MediaChoice), "default"),
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
    accounts: tuple[AccountSpec, ...] | None = None
    if "accounts" in table:
        accounts = tuple(
            _parse_account(r, acc, f"{where}.accounts[{j}]")
            for j, item in enumerate(r.items(table, "accounts", where) or ())
            if (acc := r.mapping(item, f"{where}.accounts[{j}]", _ACCOUNT_KEYS)) is not None
        )
    acl: list[AclSpec] | None = None
    if "acl" in table:
        acl = []
        for j, item in enumerate(r.items(table, "acl", where) or ()):
            acl_where = f"{where}.acl[{j}]"
            if (entry := r.mapping(item, acl_where, ("network", "tech_prefix"))) is None:
                continue
            network = r.get(entry, "network", acl_where, _network)
            tech_prefix = r.get(entry, "tech_prefix", acl_where, _DIGIT_STRING, "")
            if network is not None and tech_prefix is not None:
                acl.append(AclSpec(acl_where, network, tech_prefix))
    return CustomerSpec(
        where,
        name,
        sell_card,
        values,
        allow,
        accounts,
        tuple(acl) if acl is not None else None,
        _parse_fraud(r, table["fraud"], f"{where}.fraud") if "fraud" in table else None,
        _parse_credit(r, table, where),
        _parse_alerts(r, table, where),
    )


def _parse_credit(r: _Reader, table: dict[str, Any], where: str) -> CreditSpec | None:
    if "credit" not in table:
        return None
    credit_where = f"{where}.credit"
    credit = r.mapping(table["credit"], credit_where, _CREDIT_KEYS)
    if credit is None:
        return None
    modes = (BillingMode.PREPAID.value, BillingMode.POSTPAID.value)
    mode = r.get(credit, "mode", credit_where, _choice(modes), BillingMode.PREPAID.value)
    limit = r.get(credit, "credit_limit", credit_where, _amount(signed=False), Decimal(0))
    currency = r.get(credit, "currency", credit_where, _text(_CURRENCY, "an ISO 4217 code"), None)
    if mode == BillingMode.PREPAID.value and limit:
        r.error(f"{credit_where}.credit_limit", "only a postpaid customer has a credit limit")
    return CreditSpec(mode, limit or Decimal(0), currency)


def _parse_alerts(r: _Reader, table: dict[str, Any], where: str) -> AlertsSpec | None:
    if "alerts" not in table:
        return None
    alerts_where = f"{where}.alerts"
    alerts = r.mapping(table["alerts"], alerts_where, _ALERT_KEYS)
    if alerts is None:
        return None
    thresholds: set[Decimal] = set()
    for j, item in enumerate(r.items(alerts, "thresholds", alerts_where) or ()):
        amount = _safe(r, f"{alerts_where}.thresholds[{j}]", _amount(signed=True), item)
        if amount is not None:
            thresholds.add(amount)
    if len(thresholds) > MAX_THRESHOLDS:
        r.error(f"{alerts_where}.thresholds", f"at most {MAX_THRESHOLDS} thresholds")
    email = r.get(
        alerts, "email", alerts_where, _validated(EmailValidator(), "an e-mail address"), ""
    )
    webhook_url = r.get(
        alerts,
        "webhook_url",
        alerts_where,
        _validated(URLValidator(schemes=["https"]), "an https URL"),
        "",
    )
    return AlertsSpec(tuple(sorted(thresholds, reverse=True)), email, webhook_url)


def _amount(*, signed: bool) -> Any:
    """Money: a quoted decimal or an integer (a YAML float would not be exact), at most
    six places and ten digits before the point."""

    def convert(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidValue(f"{show(value)} is not an amount (quote it: '1.50')")
        try:
            amount = Decimal(str(value).strip())
        except ArithmeticError as exc:
            raise InvalidValue(f"{show(value)} is not an amount") from exc
        try:
            check_amount(amount, signed=signed)
        except CreditError as exc:
            raise InvalidValue(f"{show(value)} is not an amount ({exc})") from exc
        if abs(amount) >= Decimal(10) ** 10:
            raise InvalidValue(f"{show(value)} is too large")
        return amount

    return convert


def _validated(validator: Callable[[str], None], hint: str) -> Any:
    def convert(value: Any) -> str:
        text: str = _text(max_length=200)(value)
        try:
            validator(text)
        except ValidationError as exc:
            raise InvalidValue(f"{text!r} is not {hint}") from exc
        return text

    return convert


def _parse_account(r: _Reader, acc: dict[str, Any], where: str) -> AccountSpec:
    username = r.get(acc, "username", where, _text(_USERNAME, "a valid SIP user name", 64))
    password = r.get(acc, "password", where, _text(max_length=256), None)
    ha1_md5 = r.get(acc, "ha1_md5", where, _text(_HEX_MD5, "32 lower-case hex digits"), None)
    ha1_sha256 = r.get(
        acc, "ha1_sha256", where, _text(_HEX_SHA256, "64 lower-case hex digits"), None
    )
    allow_md5 = r.get(acc, "allow_md5", where, _boolean, False)
    enabled = r.get(acc, "enabled", where, _boolean, True)
    extension = r.get(acc, "extension", where, _DIGIT_STRING, "")
    if password is not None and (ha1_md5 is not None or ha1_sha256 is not None):
        r.error(where, "give either 'password' or HA1 digests, not both")
    elif password == "":
        r.error(f"{where}.password", "must not be empty")
    elif ha1_md5 is not None and ha1_sha256 is None:
        r.error(f"{where}.ha1_sha256", "required with ha1_md5")
    elif ha1_sha256 is not None and ha1_md5 is None and allow_md5:
        r.error(f"{where}.ha1_md5", "required unless allow_md5 is false")
    given = any(key in acc for key in ("password", "ha1_md5", "ha1_sha256"))
    fraud = _parse_fraud(r, acc["fraud"], f"{where}.fraud") if "fraud" in acc else None
    return AccountSpec(
        where,
        username,
        password,
        ha1_md5,
        ha1_sha256,
        allow_md5,
        enabled,
        given,
        fraud,
        extension or "",
    )


def _sip_address(value: Any) -> tuple[str, int, str]:
    """``host[:port][;transport=tcp]`` as (host, port, transport); an IPv6 host in brackets."""
    text: str = _text(max_length=300)(value)
    match = _SIP_ADDRESS.fullmatch(text)
    if match is None:
        raise InvalidValue(f"{text!r} is not host[:port][;transport=udp|tcp|tls]")
    port = int(match["port"] or 5060)
    if not 1 <= port <= 65535:
        raise InvalidValue(f"port {port} is not between 1 and 65535")
    return match["host"].strip("[]"), port, match["transport"] or SipTransport.UDP.value


_E164_TEXT = _text(_E164, "a number of 1 to 20 digits (E.164 without '+')", 20)


def _parse_did(r: _Reader, table: dict[str, Any], where: str) -> DidSpec | None:
    """One ``dids[]`` entry: a number or a ``first``/``last`` range, its customer, one
    target (``account``, ``trunk`` with an optional ``failover``, or ``forward``)."""
    if "number" in table and ("first" in table or "last" in table):
        r.error(where, "give either 'number' or 'first' and 'last', not both")
        return None
    if "number" in table:
        first = r.get(table, "number", where, _E164_TEXT)
        last = ""
    else:
        first = r.get(table, "first", where, _E164_TEXT)
        last = r.get(table, "last", where, _E164_TEXT)
    customer = r.get(table, "customer", where, _name)
    targets = [key for key in ("account", "trunk", "forward") if key in table]
    if len(targets) != 1:
        r.error(where, "give exactly one target: 'account', 'trunk' or 'forward'")
        return None
    values: dict[str, Any] = {
        "last": last or "",
        "target": {"account": "account", "trunk": "trunk", "forward": "did"}[targets[0]],
        "trunk_host": "",
        "trunk_port": 5060,
        "trunk_transport": SipTransport.UDP.value,
        "failover_host": "",
        "failover_port": 5060,
        "failover_transport": SipTransport.UDP.value,
        "forward_to": "",
        "price_per_minute": r.get(
            table, "price_per_minute", where, _amount(signed=False), Decimal(0)
        ),
        "monthly_price": r.get(table, "monthly_price", where, _amount(signed=False), Decimal(0)),
        "enabled": r.get(table, "enabled", where, _boolean, True),
    }
    if "failover" in table and targets[0] != "trunk":
        r.error(f"{where}.failover", "only a 'trunk' target has a failover")
    account = None
    if targets[0] == "account":
        account = r.get(table, "account", where, _text(_USERNAME, "a valid SIP user name", 64))
    elif targets[0] == "trunk":
        trunk = r.get(table, "trunk", where, _sip_address)
        if trunk is not None:
            values["trunk_host"], values["trunk_port"], values["trunk_transport"] = trunk
        failover = r.get(table, "failover", where, _sip_address, None)
        if failover is not None:
            values["failover_host"], values["failover_port"], values["failover_transport"] = (
                failover
            )
    else:
        values["forward_to"] = r.get(table, "forward", where, _E164_TEXT) or ""
    if first is not None and last and (len(last) != len(first) or last < first):
        r.error(f"{where}.last", f"{last!r} is not a number as long as {first!r} and not below it")
    if first is None or customer is None:
        return None
    return DidSpec(where, first, customer, account, values)


def _safe(r: _Reader, where: str, convert: Callable[[Any], Any], value: Any) -> Any:
    try:
        return convert(value)
    except InvalidValue as exc:
        r.error(where, str(exc))
        return None


def _network(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{show(value)} is not an IP network in CIDR form")
    try:
        return str(parse_network(value))
    except Exception as exc:  # a django ValidationError; its text is not needed here
        raise InvalidValue(f"{value!r} is not an IP network in CIDR form") from exc


# --- fraud policies (``fraud:`` of a customer or account, ``limits:`` of a gateway) -------

_LIMIT_KEYS = (
    "max_concurrent",
    "calls_per_second",
    "cps_burst",
    "calls_per_hour",
    "calls_per_day",
    "spend_per_hour",
    "spend_per_day",
    "max_price_per_minute",
)
_FRAUD_KEYS = (
    "limits",
    "destinations",
    "caller_ranges",
    "allow_anonymous",
    "source_countries",
    "quiet_hours",
    "velocity",
)
_VELOCITY_KEYS = (
    "destinations_factor",
    "destinations_min",
    "new_countries",
    "spend_factor",
    "spend_min",
    "action",
    "suspend_s",
)
_QUIET_KEYS = ("days", "start", "end", "timezone", "international_only")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_DAYS = re.compile(r"[0-6]{1,7}")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidValue(f"expected a number >= 0, got {show(value)}")
    return float(value)


def _money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidValue(f"expected an amount such as '25.00', got {show(value)}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidValue(f"{value!r} is not an amount") from exc
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidValue(f"{value!r} is not an amount >= 0 with at most 4 decimals")
    if amount >= _MONEY_CEILING:
        # The database keeps 12 digits, 4 of them decimals: say so here, with the path.
        raise InvalidValue(f"{value!r} is too large (at most 8 digits before the point)")
    return amount


_MONEY_CEILING = Decimal(10) ** 8
_INT_MAX = 2**31 - 1  # a PostgreSQL integer


def _parse_fraud(
    r: _Reader, raw: Any, where: str, *, limits_only: bool = False
) -> FraudSpec | None:
    if limits_only:
        table = r.mapping(raw, where, _LIMIT_KEYS)
        return None if table is None else FraudSpec(where, _parse_limits(r, table, where))
    table = r.mapping(raw, where, _FRAUD_KEYS)
    if table is None:
        return None
    values: dict[str, Any] = {}
    if "limits" in table:
        limits = r.mapping(table["limits"], f"{where}.limits", _LIMIT_KEYS)
        values.update(_parse_limits(r, limits or {}, f"{where}.limits"))
    ranges = []
    for j, item in enumerate(r.items(table, "caller_ranges", where) or ()):
        text = _safe(r, f"{where}.caller_ranges[{j}]", _caller_range, item)
        if text is not None:
            ranges.append(text)
    values["caller_ranges"] = "\n".join(ranges)
    values["allow_anonymous"] = r.get(table, "allow_anonymous", where, _boolean, False)
    countries = [
        _safe(
            r,
            f"{where}.source_countries[{j}]",
            _text(_COUNTRY, "a two-letter country code", 2),
            item,
        )
        for j, item in enumerate(r.items(table, "source_countries", where) or ())
    ]
    values["source_countries"] = " ".join(c.upper() for c in countries if c)
    values["velocity"] = "velocity" in table
    if "velocity" in table:
        v_where = f"{where}.velocity"
        velocity = r.mapping(table["velocity"] or {}, v_where, _VELOCITY_KEYS) or {}
        values.update(
            velocity_destinations_factor=r.get(
                velocity, "destinations_factor", v_where, _number, 10.0
            ),
            velocity_destinations_min=r.get(velocity, "destinations_min", v_where, _integer(), 20),
            velocity_new_countries=r.get(velocity, "new_countries", v_where, _integer(), 3),
            velocity_spend_factor=r.get(velocity, "spend_factor", v_where, _number, 10.0),
            velocity_spend_min=r.get(velocity, "spend_min", v_where, _money, Decimal(20)),
            velocity_action=r.get(velocity, "action", v_where, _choice(FraudAction), "block"),
            velocity_suspend_s=r.get(velocity, "suspend_s", v_where, _integer(), 0),
        )
    destinations = []
    for j, item in enumerate(r.items(table, "destinations", where) or ()):
        rule = _parse_destination(r, item, f"{where}.destinations[{j}]")
        if rule is not None:
            destinations.append(rule)
    quiet = []
    for j, item in enumerate(r.items(table, "quiet_hours", where) or ()):
        q_where = f"{where}.quiet_hours[{j}]"
        if (window := r.mapping(item, q_where, _QUIET_KEYS)) is None:
            continue
        quiet.append(
            {
                "days": r.get(
                    window,
                    "days",
                    q_where,
                    _text(_DAYS, "weekday digits 0 (Monday) to 6", 7),
                    "0123456",
                ),
                "start": r.get(window, "start", q_where, _clock),
                "end": r.get(window, "end", q_where, _clock),
                "timezone": r.get(window, "timezone", q_where, _timezone, "UTC"),
                "international_only": r.get(window, "international_only", q_where, _boolean, True),
            }
        )
    return FraudSpec(where, values, tuple(destinations), tuple(quiet))


def _parse_limits(r: _Reader, table: dict[str, Any], where: str) -> dict[str, Any]:
    return {
        "max_concurrent": r.get(table, "max_concurrent", where, _integer(maximum=_INT_MAX), 0),
        "calls_per_second": r.get(table, "calls_per_second", where, _number, 0.0),
        "cps_burst": r.get(table, "cps_burst", where, _integer(maximum=_INT_MAX), 0),
        "calls_per_hour": r.get(table, "calls_per_hour", where, _integer(maximum=_INT_MAX), 0),
        "calls_per_day": r.get(table, "calls_per_day", where, _integer(maximum=_INT_MAX), 0),
        "spend_per_hour": r.get(table, "spend_per_hour", where, _money, None),
        "spend_per_day": r.get(table, "spend_per_day", where, _money, None),
        "max_price_per_minute": r.get(table, "max_price_per_minute", where, _money, None),
    }


def _parse_destination(r: _Reader, raw: Any, where: str) -> dict[str, Any] | None:
    table = r.mapping(raw, where, ("allow", "deny", "international_only", "note"))
    if table is None:
        return None
    verbs = [verb for verb in ("allow", "deny") if verb in table]
    if len(verbs) != 1:
        r.error(where, "give exactly one of 'allow' or 'deny', e.g. deny: kind premium")
        return None
    verb = verbs[0]
    text = table[verb]
    match, _, value = str(text).strip().partition(" ")
    value = value.strip()
    problem = _destination_problem(match, value)
    if not isinstance(text, str) or problem:
        r.error(
            f"{where}.{verb}", problem or f"expected text such as 'country CU', got {show(text)}"
        )
        return None
    return {
        "allow": verb == "allow",
        "match": match,
        "value": value.upper() if match == DestinationMatch.COUNTRY else value,
        "international_only": r.get(table, "international_only", where, _boolean, False),
        "note": r.get(table, "note", where, _text(max_length=100), ""),
    }


def _destination_problem(match: str, value: str) -> str:
    if match == DestinationMatch.PREFIX:
        return "" if value.isascii() and value.isdigit() else f"{value!r} is not a digit prefix"
    if match == DestinationMatch.COUNTRY:
        ok = value == "001" or (len(value) == 2 and value.isascii() and value.isalpha())
        return "" if ok else f"{value!r} is not a two-letter country code or 001"
    if match == DestinationMatch.KIND:
        kinds = {kind.value for kind in NumberKind}
        return "" if value in kinds else f"{value!r} is not one of {', '.join(sorted(kinds))}"
    return f"{match!r}: expected 'prefix DIGITS', 'country CODE' or 'kind KIND'"


def _caller_range(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidValue(f"expected a number prefix or a range, got {show(value)}")
    try:
        parse_caller_range(value)
    except ValueError as exc:
        raise InvalidValue(str(exc)) from exc
    return value.strip()


def _clock(value: Any) -> time:
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        raise InvalidValue(f"expected a time such as '22:00', got {show(value)}")
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _timezone(value: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, str):
        raise InvalidValue(f"expected a time zone such as 'Europe/London', got {show(value)}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidValue(f"unknown time zone {value!r}") from exc
    return value
