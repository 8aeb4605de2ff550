"""The routing plan: an immutable snapshot of the configuration the switch runs on.

The web layer builds a :class:`Plan` from the database (``web/*/selectors.py``); the
switch holds exactly one and swaps it atomically when the configuration changes. The
call path reads only these objects, never the ORM.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from enum import StrEnum
from typing import Protocol

from tollguard.domain.errors import PlanError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RoutingStrategy(StrEnum):
    LEAST_COST = "lcr"
    PRIORITY = "priority"
    WEIGHT = "weight"


class SipTransport(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


class MediaChoice(StrEnum):
    """Which media backend a customer's or provider's calls use (``default``: no choice)."""

    DEFAULT = "default"
    BYPASS = "bypass"
    RELAY = "relay"
    RTPENGINE = "rtpengine"


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


# -- credit terms (docs/billing.md) --------------------------------------------------


class BillingMode(StrEnum):
    """How a customer pays: from a balance paid in advance, or on credit up to a limit."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


@dataclass(frozen=True, slots=True)
class CreditTerms:
    """What a customer may spend: its mode, credit limit and the one currency it pays in.

    A call may start or go on while ``balance - reserved - amount >= floor``.
    """

    mode: BillingMode = BillingMode.PREPAID
    credit_limit: Decimal = Decimal(0)  # only a postpaid customer's counts
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if not self.credit_limit.is_finite() or self.credit_limit < 0:
            raise PlanError("credit terms", f"credit limit {self.credit_limit} is not >= 0")

    @property
    def floor(self) -> Decimal:
        """How low the balance less reservations may go: 0, or minus the credit limit."""
        if self.mode is BillingMode.POSTPAID:
            return -self.credit_limit
        return Decimal(0)


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
    credit: CreditTerms = field(default_factory=CreditTerms)
    media: MediaChoice = MediaChoice.DEFAULT


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
    # A short number other accounts of the same customer dial to reach this one
    # (digits only, unique within the customer); "" for none.
    extension: str = ""


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
    media: MediaChoice = MediaChoice.DEFAULT
    # The provider's per-minute price for calls it delivers to our DIDs, matched on the
    # DID number by longest prefix; None: inbound calls cost nothing per minute.
    inbound_card_id: int | None = None


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


# -- DIDs: numbers the operator's providers deliver to it (docs/provisioning.md) ---------


class DidTarget(StrEnum):
    """Where an inbound call to a DID goes."""

    ACCOUNT = "account"  # the contacts a registered account of the owner has bound
    TRUNK = "trunk"  # the owner's SIP trunk: an address, then a failover address
    DID = "did"  # the same call as if it had been made to another DID


@dataclass(frozen=True, slots=True)
class SipAddress:
    """A fixed place to send a call to: a customer's trunk."""

    host: str
    port: int = 5060
    transport: SipTransport = SipTransport.UDP


@dataclass(frozen=True, slots=True)
class Did:
    """A number, or an inclusive range ``first``..``last`` of numbers of one length, that
    a customer owns. Numbers are E.164 digits without "+", as normalisation makes them.

    Exactly the field of ``target`` is set: ``account_id`` (an account of the same
    customer), ``trunk`` (one or two addresses, tried in order) or ``forward_to`` (a
    number another DID holds). ``price_per_minute`` and ``monthly_price`` are what the
    owner pays, in ``currency``.
    """

    id: int
    customer_id: int
    first: str
    last: str = ""  # "" or equal to first: a single number
    target: DidTarget = DidTarget.ACCOUNT
    account_id: int | None = None
    trunk: tuple[SipAddress, ...] = ()
    forward_to: str = ""
    price_per_minute: Decimal = Decimal(0)
    monthly_price: Decimal = Decimal(0)
    currency: str = "EUR"
    enabled: bool = True

    @property
    def end(self) -> str:
        """The last number of the range (``first`` for a single number)."""
        return self.last or self.first


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
    dids: tuple[Did, ...] = ()
    # FraudPlan is defined below, after the types it holds: hence the lambda.
    fraud: FraudPlan = field(default_factory=lambda: FraudPlan())  # noqa: PLW0108


class PlanSource(Protocol):
    """Port: where the switch gets its configuration (implemented by the web layer)."""

    def current_version(self) -> int:
        """A number that changes whenever the configuration changes (cheap to call)."""
        ...

    def load(self) -> PlanData:
        """A consistent snapshot of the whole configuration."""
        ...


# --- Fraud policy: limits, destination policy, caller IDs, time windows, velocity ---------
# Read by tollguard.domain.fraud; built by the web layer's fraud selectors.


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Limits of one customer, account or gateway; 0 or ``None`` means no limit."""

    max_concurrent: int = 0
    calls_per_second: float = 0.0
    cps_burst: int = 0  # 0: one second's worth
    calls_per_hour: int = 0
    calls_per_day: int = 0
    spend_per_hour: Decimal | None = None
    spend_per_day: Decimal | None = None
    max_price_per_minute: Decimal | None = None


class DestinationMatch(StrEnum):
    PREFIX = "prefix"  # E.164 digits the number starts with
    COUNTRY = "country"  # ISO 3166-1 alpha-2 of the number's country ("001": satellite etc.)
    KIND = "kind"  # a tollguard.domain.numbers.NumberKind value


@dataclass(frozen=True, slots=True)
class DestinationRule:
    """Allow or deny a destination. ``international_only`` limits a rule to numbers
    outside the customer's own country code (for "international premium rate")."""

    allow: bool
    match: DestinationMatch
    value: str
    international_only: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Calls are refused from ``start`` to ``end`` (local time in ``timezone``) on the
    given ``days`` (0 = Monday); a window whose end is not after its start runs past
    midnight into the next day. ``international_only``: only calls abroad are refused."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str = "UTC"
    international_only: bool = True


class FraudAction(StrEnum):
    ALERT = "alert"  # an event and a log line; the call goes on
    BLOCK = "block"  # the call is refused
    SUSPEND_ACCOUNT = "suspend_account"  # refused, and the account's calls until released
    SUSPEND_CUSTOMER = "suspend_customer"  # refused, and the customer's calls until released


@dataclass(frozen=True, slots=True)
class VelocityPolicy:
    """Spikes against an account's own last week.

    * distinct destinations in the last hour above ``destinations_factor`` times the
      week's hourly average (and at least ``destinations_min``);
    * more than ``new_countries`` countries in a day not called in the 30 days before;
    * spend in the last hour above ``spend_factor`` times the week's hourly average
      (and at least ``spend_min``).
    """

    destinations_factor: float = 10.0
    destinations_min: int = 20
    new_countries: int = 3
    spend_factor: float = 10.0
    spend_min: Decimal = Decimal(20)
    action: FraudAction = FraudAction.BLOCK
    suspend_s: int = 0  # how long a suspension lasts; 0: until released


@dataclass(frozen=True, slots=True)
class FraudPolicy:
    """The fraud rules of one customer or account (an account's apply on top of its
    customer's: both limits hold, its destination rules are read first)."""

    limits: CallLimits = field(default_factory=CallLimits)
    destination_rules: tuple[DestinationRule, ...] = ()
    # E.164 prefixes or "first-last" ranges a caller ID must fall in; empty: any.
    caller_ranges: tuple[str, ...] = ()
    allow_anonymous: bool = False
    quiet_hours: tuple[TimeWindow, ...] = ()
    # ISO codes the account may call from (GeoIP of the source address); empty: any.
    source_countries: tuple[str, ...] = ()
    velocity: VelocityPolicy | None = None


@dataclass(frozen=True, slots=True)
class FraudPlan:
    """Every fraud rule of the configuration. ``defaults`` (the high-risk list) are read
    after a customer's and an account's own destination rules."""

    defaults: tuple[DestinationRule, ...] = ()
    customers: dict[int, FraudPolicy] = field(default_factory=dict)
    accounts: dict[int, FraudPolicy] = field(default_factory=dict)
    gateways: dict[int, CallLimits] = field(default_factory=dict)
