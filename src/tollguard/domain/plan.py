"""The routing plan: an immutable snapshot of the configuration the switch runs on.

The web layer builds a :class:`Plan` from the database (``web/*/selectors.py``); the
switch holds exactly one and swaps it atomically when the configuration changes. The
call path reads only these objects, never the ORM.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum
from typing import Protocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RoutingStrategy(StrEnum):
    LEAST_COST = "lcr"
    PRIORITY = "priority"
    WEIGHT = "weight"


class SipTransport(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class Rounding(StrEnum):
    """How a rate card rounds a charge to its number of decimals."""

    HALF_UP = "half_up"
    HALF_EVEN = "half_even"
    UP = "up"
    DOWN = "down"
    CEILING = "ceiling"

    @property
    def decimal_mode(self) -> str:
        return _DECIMAL_MODES[self]


_DECIMAL_MODES = {
    Rounding.HALF_UP: ROUND_HALF_UP,
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
    Rounding.UP: ROUND_UP,
    Rounding.DOWN: ROUND_DOWN,
    Rounding.CEILING: ROUND_CEILING,
}


@dataclass(frozen=True, slots=True)
class Rate:
    """One line of a rate card. Prices are per minute; increments are in seconds."""

    prefix: str
    destination: str
    price_per_minute: Decimal
    connect_fee: Decimal = Decimal(0)
    initial_increment: int = 60
    next_increment: int = 60
    effective_from: datetime | None = None
    effective_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RateCard:
    id: int
    name: str
    currency: str = "EUR"
    rounding: Rounding = Rounding.HALF_UP
    decimals: int = 4
    rates: tuple[Rate, ...] = ()


@dataclass(frozen=True, slots=True)
class NumberRules:
    """How a customer dials: used to bring the called number to E.164 (digits, no '+')."""

    country_code: str = ""  # e.g. "44"; empty: national numbers cannot be normalized
    national_prefix: str = "0"  # trunk prefix, e.g. "0" in 020 7946 0000
    international_prefix: str = "00"  # e.g. "00" (most of the world) or "011" (NANP)
    strip_prefix: str = ""  # removed first when present (e.g. a dial-plan access code)


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    enabled: bool = True
    sell_card_id: int | None = None
    strategy: RoutingStrategy = RoutingStrategy.LEAST_COST
    allow_negative_margin: bool = False
    max_call_duration_s: int = 7200
    number_rules: NumberRules = field(default_factory=NumberRules)
    # Provider ids usable by this customer; empty means every enabled provider.
    provider_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Account:
    """A customer's SIP account. Only HA1 digests are kept, never the password."""

    id: int
    customer_id: int
    username: str
    ha1_md5: str  # hex MD5(username:realm:password)
    ha1_sha256: str  # hex SHA-256(username:realm:password)
    allow_md5: bool = False
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AclEntry:
    """Calls from ``network`` belong to ``customer_id`` without digest authentication.

    When ``tech_prefix`` is set, the called number must start with it; it is stripped
    before normalization, and it disambiguates customers sharing one address.
    """

    id: int
    customer_id: int
    network: IPNetwork
    tech_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Provider:
    id: int
    name: str
    enabled: bool = True
    cost_card_id: int | None = None
    priority: int = 100  # lower is tried first under the PRIORITY strategy
    weight: int = 100  # share of calls under the WEIGHT strategy


@dataclass(frozen=True, slots=True)
class Gateway:
    id: int
    provider_id: int
    name: str
    host: str
    port: int = 5060
    transport: SipTransport = SipTransport.UDP
    strip_digits: int = 0  # digits removed from the front of the E.164 number
    add_prefix: str = ""  # then prepended (e.g. a carrier tech prefix or "+")
    enabled: bool = True
    max_channels: int = 0  # 0: unlimited


@dataclass(frozen=True, slots=True)
class PlanData:
    """Everything the web layer hands over; the routing module indexes it into a Plan."""

    version: int
    customers: tuple[Customer, ...] = ()
    accounts: tuple[Account, ...] = ()
    acl: tuple[AclEntry, ...] = ()
    providers: tuple[Provider, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    rate_cards: tuple[RateCard, ...] = ()


class PlanSource(Protocol):
    """Port: where the switch gets its configuration (implemented by the web layer)."""

    def current_version(self) -> int:
        """A number that changes whenever the configuration changes (cheap to call)."""
        ...

    def load(self) -> PlanData:
        """A consistent snapshot of the whole configuration."""
        ...
