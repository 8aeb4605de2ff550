"""The indexed routing plan and least-cost routing.

:func:`build_plan` turns the web layer's :class:`~tollguard.domain.plan.PlanData` into
a :class:`Plan`: every reference checked, every rate card indexed by prefix, so that
the call path answers "who is this", "what does it cost" and "which gateways, in what
order" without scanning anything. A plan never changes; the switch swaps in a new one
when the configuration does.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import assert_never

from tollguard.domain.dids import DidIndex, index_dids
from tollguard.domain.errors import PlanError
from tollguard.domain.plan import (
    Account,
    AclEntry,
    Customer,
    FraudPlan,
    Gateway,
    PlanData,
    Provider,
    Rate,
    RateCard,
    RoutingStrategy,
)
from tollguard.domain.prefix import PrefixIndex

__all__ = [
    "CUSTOMER_DISABLED",
    "NO_PROVIDER",
    "NO_ROUTE",
    "FailoverPolicy",
    "Plan",
    "Rejection",
    "RouteCandidate",
    "RouteDecision",
    "build_plan",
    "failover_policy",
    "rate_in_force",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a call cannot be routed: the SIP final response and its Q.850 cause."""

    status: int
    reason: str
    q850_cause: int


# Q.850 cause 3 "no route to destination" maps to 404 (RFC 3398 §7.2.4.1).
NO_ROUTE = Rejection(404, "No route to destination", 3)
# Cause 34 "no circuit/channel available" maps to 503 (RFC 3398 §7.2.4.1).
NO_PROVIDER = Rejection(503, "No provider available", 34)
# Cause 21 "call rejected" maps to 403.
CUSTOMER_DISABLED = Rejection(403, "Customer disabled", 21)


@dataclass(frozen=True, slots=True)
class RouteCandidate:
    """One gateway to try, with the provider's price and the number as it expects it."""

    provider: Provider
    gateway: Gateway
    cost_rate: Rate
    dial_number: str


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Either the sell rate and the gateways to try in order, or a rejection."""

    sell_rate: Rate | None
    candidates: tuple[RouteCandidate, ...] = ()
    rejection: Rejection | None = None


def rate_in_force(rates: tuple[Rate, ...], now: datetime) -> Rate | None:
    """The rate of ``rates`` (one prefix, latest start first) that applies at ``now``."""
    for rate in rates:
        start, end = rate.effective_from, rate.effective_until
        if (start is None or start <= now) and (end is None or now < end):
            return rate
    return None


type _Networks = dict[int, dict[int, tuple[AclEntry, ...]]]


class Plan:
    """An immutable, indexed configuration snapshot. Build it with :func:`build_plan`."""

    __slots__ = (
        "_account_ids",
        "_accounts",
        "_acl4",
        "_acl6",
        "_cards",
        "_cost_currency",
        "_customers",
        "_extensions",
        "_gateway_sources",
        "_gateways",
        "_indexes",
        "_providers",
        "_providers_by_id",
        "acl",
        "dids",
        "fraud",
        "version",
    )

    def __init__(
        self,
        *,
        version: int,
        customers: dict[int, Customer],
        accounts: dict[str, Account],
        acl: tuple[AclEntry, ...],
        providers: dict[int, Provider],
        gateways: dict[int, tuple[Gateway, ...]],
        cards: dict[int, RateCard],
        indexes: dict[int, PrefixIndex[tuple[Rate, ...]]],
        fraud: FraudPlan | None = None,
        dids: DidIndex | None = None,
    ) -> None:
        self.version = version
        # The fraud rules and the IP lists as given: the switch builds its fraud engine
        # and the shield's allow-list from them at each swap.
        self.fraud = fraud or FraudPlan()
        self.acl = acl
        self._customers = customers
        self._accounts = accounts
        self._account_ids = {account.id: account for account in accounts.values()}
        self._extensions = {
            (account.customer_id, account.extension): account
            for account in accounts.values()
            if account.extension
        }
        self.dids = dids or index_dids((), self._account_ids, customers)
        self._acl4, self._acl6 = _index_acl(acl)
        self._providers_by_id = providers
        # Usable providers in id order: the order ties fall back to.
        self._providers = tuple(
            p for _, p in sorted(providers.items()) if p.enabled and p.cost_card_id is not None
        )
        self._gateways = gateways
        # Gateways whose host is an IP address, by address: the sources a provider's
        # inbound calls are recognised by (a hostname gateway is never matched).
        self._gateway_sources: dict[tuple[int, int], Gateway] = {}
        for group in gateways.values():
            for gateway in group:
                source = _address(gateway.host)
                if source is not None and gateway.enabled:
                    self._gateway_sources.setdefault(source, gateway)
        self._cards = cards
        self._indexes = indexes
        self._cost_currency = {
            p.id: cards[p.cost_card_id].currency for p in self._providers if p.cost_card_id
        }

    def gateways(self) -> list[Gateway]:
        """Every gateway of every provider."""
        return [gateway for gateways in self._gateways.values() for gateway in gateways]

    def customer(self, customer_id: int) -> Customer | None:
        return self._customers.get(customer_id)

    def account_by_username(self, username: str) -> Account | None:
        return self._accounts.get(username)

    def account(self, account_id: int) -> Account | None:
        return self._account_ids.get(account_id)

    def account_by_extension(self, customer_id: int, extension: str) -> Account | None:
        """The account of ``customer_id`` that answers to ``extension``, or None."""
        return self._extensions.get((customer_id, extension))

    def gateway_from(self, ip: str) -> Gateway | None:
        """The enabled gateway whose host is the address ``ip``: a provider calling in."""
        source = _address(ip)
        return self._gateway_sources.get(source) if source is not None else None

    def inbound_rate(self, provider: Provider, number: str, now: datetime) -> Rate | None:
        """What ``provider`` charges per minute for delivering a call to DID ``number``."""
        if provider.inbound_card_id is None:
            return None
        return self._rate(provider.inbound_card_id, number, now)

    def provider(self, provider_id: int) -> Provider | None:
        return self._providers_by_id.get(provider_id)

    def rate_card(self, card_id: int) -> RateCard:
        """A rate card the plan references (build_plan checked it exists)."""
        try:
            return self._cards[card_id]
        except KeyError as exc:
            raise PlanError(f"rate card {card_id}", "not in this plan") from exc

    def match_acl(self, ip: str, called: str) -> tuple[AclEntry, str] | None:
        """The ACL entry for a call from ``ip`` to ``called``, and the number without
        the entry's tech prefix.

        The most specific network wins; among entries of that network, the longest
        tech prefix that ``called`` starts with. An entry with a tech prefix the
        number lacks does not match at all.
        """
        parsed = _address(ip)
        if parsed is None:
            return None
        bits, value = parsed
        table = self._acl4 if bits == 32 else self._acl6
        for prefixlen, networks in table.items():
            entries = networks.get(value >> (bits - prefixlen))
            if entries is None:
                continue
            # Entries come longest tech prefix first.
            for entry in entries:
                if called.startswith(entry.tech_prefix):
                    return entry, called[len(entry.tech_prefix) :]
        return None

    def sell_rate(self, customer: Customer, number: str, now: datetime) -> Rate | None:
        """The customer's price for ``number`` at ``now``: the longest prefix in force."""
        if customer.sell_card_id is None:
            return None
        return self._rate(customer.sell_card_id, number, now)

    def cost_rate(self, provider: Provider, number: str, now: datetime) -> Rate | None:
        """The provider's price for ``number`` at ``now``."""
        if provider.cost_card_id is None:
            return None
        return self._rate(provider.cost_card_id, number, now)

    def route(
        self,
        customer: Customer,
        number: str,
        now: datetime,
        rng: random.Random | None = None,
    ) -> RouteDecision:
        """Price ``number`` for ``customer`` and list the gateways to try, in order.

        Only providers whose cost card is in the currency of the customer's sell card
        are offered: a margin is never worked out across currencies, and costs in
        different currencies cannot be ordered by price (docs/provisioning.md).
        ``rng`` orders providers under the WEIGHT strategy (pass a seeded one in tests).
        """
        if not customer.enabled:
            return RouteDecision(None, rejection=CUSTOMER_DISABLED)
        sell = self.sell_rate(customer, number, now)
        if sell is None or customer.sell_card_id is None:
            return RouteDecision(None, rejection=NO_ROUTE)
        currency = self._cards[customer.sell_card_id].currency
        offers: list[tuple[Provider, Rate]] = []
        if customer.provider_ids:
            allowed = set(customer.provider_ids)
            providers: Iterable[Provider] = (p for p in self._providers if p.id in allowed)
        else:
            providers = self._providers
        for provider in providers:
            if self._cost_currency.get(provider.id) != currency:
                continue
            cost = self.cost_rate(provider, number, now)
            if cost is None:
                continue
            if cost.price_per_minute > sell.price_per_minute and not customer.allow_negative_margin:
                continue
            offers.append((provider, cost))
        ordered = _order(offers, customer.strategy, rng or _RNG)
        candidates = tuple(
            RouteCandidate(provider, gateway, cost, _dial(number, gateway))
            for provider, cost in ordered
            for gateway in self._gateways.get(provider.id, ())
            if gateway.enabled
        )
        if not candidates:
            return RouteDecision(sell, rejection=NO_PROVIDER)
        return RouteDecision(sell, candidates)

    def _rate(self, card_id: int, number: str, now: datetime) -> Rate | None:
        index = self._indexes.get(card_id)
        if index is None:
            return None
        rates = index.get(number)
        if rates is None:
            return None
        first = rates[0]
        if len(rates) == 1 and first.effective_from is None and first.effective_until is None:
            # Most prefixes have one undated rate: no need to walk shorter prefixes.
            return first
        for rates in index.matches(number):
            rate = rate_in_force(rates, now)
            if rate is not None:
                return rate
        return None

    def __repr__(self) -> str:
        return (
            f"<Plan version {self.version}: {len(self._customers)} customers, "
            f"{len(self._providers_by_id)} providers, {len(self._cards)} rate cards>"
        )


# Weighted routing only needs an unpredictable order, not a secret one.
_RNG = random.Random()

# Source addresses already read: a trunk calls from few addresses, and parsing one costs
# more than the rest of the ACL lookup. Bounded, cleared when full.
_ADDRESSES: dict[str, tuple[int, int] | None] = {}
_ADDRESSES_MAX = 4096


def _address(ip: str) -> tuple[int, int] | None:
    """(address bits, address as an integer) for ``ip``; IPv4-mapped IPv6 reads as IPv4."""
    try:
        return _ADDRESSES[ip]
    except KeyError:
        pass
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        parsed = None
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        parsed = (32 if address.version == 4 else 128, int(address))
    if len(_ADDRESSES) >= _ADDRESSES_MAX:
        _ADDRESSES.clear()
    _ADDRESSES[ip] = parsed
    return parsed


def _order(
    offers: list[tuple[Provider, Rate]], strategy: RoutingStrategy, rng: random.Random
) -> list[tuple[Provider, Rate]]:
    match strategy:
        case RoutingStrategy.LEAST_COST:
            return sorted(offers, key=lambda o: (o[1].price_per_minute, o[0].priority, o[0].id))
        case RoutingStrategy.PRIORITY:
            return sorted(offers, key=lambda o: (o[0].priority, o[1].price_per_minute, o[0].id))
        case RoutingStrategy.WEIGHT:
            # Weighted sampling without replacement (Efraimidis & Spirakis): sort by
            # u ** (1 / weight); a provider of weight 0 only comes after the others.
            keys = [rng.random() ** (1 / p.weight) if p.weight > 0 else -1.0 for p, _ in offers]
            ranked = sorted(range(len(offers)), key=lambda i: (-keys[i], offers[i][0].id))
            return [offers[i] for i in ranked]
        case _:
            assert_never(strategy)


def _dial(number: str, gateway: Gateway) -> str:
    return gateway.add_prefix + number[gateway.strip_digits :]


def _index_acl(acl: tuple[AclEntry, ...]) -> tuple[_Networks, _Networks]:
    """ACL entries by family, then prefix length (longest first), then network bits."""
    grouped: tuple[dict[int, dict[int, list[AclEntry]]], ...] = ({}, {})
    for entry in acl:
        network = entry.network
        table = grouped[0] if network.version == 4 else grouped[1]
        key = int(network.network_address) >> (network.max_prefixlen - network.prefixlen)
        table.setdefault(network.prefixlen, {}).setdefault(key, []).append(entry)
    v4, v6 = (
        {
            prefixlen: {
                key: tuple(sorted(entries, key=lambda e: (-len(e.tech_prefix), e.id)))
                for key, entries in networks.items()
            }
            for prefixlen, networks in sorted(table.items(), reverse=True)
        }
        for table in grouped
    )
    return v4, v6


@dataclass(frozen=True, slots=True)
class FailoverPolicy:
    """Which final responses from a gateway send the call to the next one."""

    codes: frozenset[int]  # listed exactly, e.g. 408
    classes: frozenset[int]  # listed as a class, e.g. 5 for "5xx"

    def should_failover(self, status: int) -> bool:
        if status in self.codes:
            return True
        if status < 300 or status > 699:
            return False
        # 486 Busy Here and 6xx are the callee's answer (RFC 3261 §21.4, §21.6): another
        # carrier would reach the same busy or refusing user, so only an exact listing
        # (or "6xx" for 6xx) retries them.
        if status == 486:
            return False
        return status // 100 in self.classes


def failover_policy(codes: Iterable[str]) -> FailoverPolicy:
    """Parse entries such as ``"408"``, ``"503"`` or ``"5xx"``."""
    exact: set[int] = set()
    classes: set[int] = set()
    for code in codes:
        text = code.strip().lower()
        if len(text) == 3 and text[0] in "3456" and text[1:] == "xx":
            classes.add(int(text[0]))
        elif len(text) == 3 and text.isascii() and text.isdigit() and 300 <= int(text) <= 699:
            exact.add(int(text))
        else:
            raise PlanError(
                f"failover code {code!r}",
                "expected a final status such as 503 or a class such as 5xx",
            )
    return FailoverPolicy(frozenset(exact), frozenset(classes))


def build_plan(data: PlanData) -> Plan:
    """Check ``data`` for consistency and index it. Raises :class:`PlanError`."""
    cards: dict[int, RateCard] = {}
    for card in data.rate_cards:
        _unique(cards, card.id, f"rate card {card.id}")
        cards[card.id] = card
    customers: dict[int, Customer] = {}
    for customer in data.customers:
        name = f"customer {customer.name!r}"
        _unique(customers, customer.id, name)
        if customer.sell_card_id is not None and customer.sell_card_id not in cards:
            raise PlanError(name, f"unknown rate card {customer.sell_card_id}")
        customers[customer.id] = customer
    providers: dict[int, Provider] = {}
    for provider in data.providers:
        name = f"provider {provider.name!r}"
        _unique(providers, provider.id, name)
        if provider.cost_card_id is not None and provider.cost_card_id not in cards:
            raise PlanError(name, f"unknown rate card {provider.cost_card_id}")
        if provider.weight < 0:
            raise PlanError(name, f"negative weight {provider.weight}")
        if provider.inbound_card_id is not None and provider.inbound_card_id not in cards:
            raise PlanError(name, f"unknown inbound rate card {provider.inbound_card_id}")
        providers[provider.id] = provider
    for customer in data.customers:
        for provider_id in customer.provider_ids:
            if provider_id not in providers:
                raise PlanError(f"customer {customer.name!r}", f"unknown provider {provider_id}")
    accounts: dict[str, Account] = {}
    account_ids: set[int] = set()
    for account in data.accounts:
        name = f"account {account.username!r}"
        if account.username in accounts or account.id in account_ids:
            raise PlanError(name, "defined twice")
        if account.customer_id not in customers:
            raise PlanError(name, f"unknown customer {account.customer_id}")
        if account.extension and not (account.extension.isascii() and account.extension.isdigit()):
            raise PlanError(name, f"extension {account.extension!r} is not digits")
        accounts[account.username] = account
        account_ids.add(account.id)
    acl_ids: set[int] = set()
    for entry in data.acl:
        name = f"acl entry {entry.id} ({entry.network})"
        if entry.id in acl_ids:
            raise PlanError(name, "defined twice")
        if entry.customer_id not in customers:
            raise PlanError(name, f"unknown customer {entry.customer_id}")
        acl_ids.add(entry.id)
    gateways: dict[int, list[Gateway]] = {}
    gateway_ids: set[int] = set()
    for gateway in data.gateways:
        name = f"gateway {gateway.name!r}"
        if gateway.id in gateway_ids:
            raise PlanError(name, "defined twice")
        if gateway.provider_id not in providers:
            raise PlanError(name, f"unknown provider {gateway.provider_id}")
        if gateway.strip_digits < 0:
            raise PlanError(name, f"negative strip_digits {gateway.strip_digits}")
        gateway_ids.add(gateway.id)
        gateways.setdefault(gateway.provider_id, []).append(gateway)
    return Plan(
        version=data.version,
        customers=customers,
        accounts=accounts,
        acl=data.acl,
        providers=providers,
        gateways={pid: tuple(sorted(gws, key=lambda g: g.id)) for pid, gws in gateways.items()},
        cards=cards,
        indexes={card.id: _index_card(card) for card in cards.values()},
        fraud=data.fraud,
        dids=index_dids(data.dids, {a.id: a for a in accounts.values()}, customers),
    )


def _unique(seen: Mapping[int, object], key: int, name: str) -> None:
    if key in seen:
        raise PlanError(name, "defined twice")


_ZERO = Decimal(0)


def _index_card(card: RateCard) -> PrefixIndex[tuple[Rate, ...]]:
    """Group a card's rates by prefix, latest start first, and index them."""
    by_prefix: dict[str, list[Rate]] = {}
    for rate in card.rates:
        if (
            rate.price_per_minute < _ZERO
            or rate.connect_fee < _ZERO
            or rate.initial_increment < 1
            or rate.next_increment < 1
        ):
            raise PlanError(
                f"rate card {card.name!r} prefix {rate.prefix!r}",
                "prices must not be negative and increments must be at least 1 s",
            )
        if rate.effective_from is not None or rate.effective_until is not None:
            _check_dates(card, rate)
        held = by_prefix.get(rate.prefix)
        if held is None:
            by_prefix[rate.prefix] = [rate]
        else:
            held.append(rate)
    groups = [
        (prefix, (rates[0],) if len(rates) == 1 else _dated(card, prefix, rates))
        for prefix, rates in by_prefix.items()
    ]
    try:
        return PrefixIndex(groups)
    except PlanError as exc:
        raise PlanError(f"rate card {card.name!r} {exc.entry}", exc.message) from exc


def _check_dates(card: RateCard, rate: Rate) -> None:
    start, end = rate.effective_from, rate.effective_until
    for moment in (start, end):
        if moment is not None and moment.utcoffset() is None:
            raise PlanError(
                f"rate card {card.name!r} prefix {rate.prefix!r}",
                "effective dates must be UTC-aware",
            )
    if start is not None and end is not None and end <= start:
        raise PlanError(
            f"rate card {card.name!r} prefix {rate.prefix!r}",
            "effective_until is not after effective_from",
        )


def _dated(card: RateCard, prefix: str, rates: list[Rate]) -> tuple[Rate, ...]:
    starts = [rate.effective_from for rate in rates]
    if len(set(starts)) != len(starts):
        raise PlanError(
            f"rate card {card.name!r} prefix {prefix!r}",
            "several rates take effect at the same time",
        )
    # None (always in force) sorts last: any dated rate supersedes it once started.
    return tuple(
        sorted(
            rates,
            key=lambda r: (r.effective_from is not None, r.effective_from or datetime.min),
            reverse=True,
        )
    )
