"""Customers, accounts and ACL entries from the ORM as domain values, and which
customer a signed-in user acts for."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tollguard.domain.plan import (
    Account,
    AclEntry,
    BillingMode,
    CreditTerms,
    Customer,
    Did,
    DidTarget,
    MediaChoice,
    NumberRules,
    RoutingStrategy,
    SipAddress,
    SipTransport,
)
from tollguard.web.carriers.models import Provider
from tollguard.web.customers import models
from tollguard.web.rating.models import RateCard


def customer_of(user: Any) -> models.Customer | None:
    """The customer ``user`` is confined to, or ``None`` for an operator or anonymous user.

    The link is the portal's ``CustomerUser`` (``Customer.users``); it is read through the
    relation rather than the portal's model, so that the API, which asks this on every
    request, does not import the portal, and the portal can import the API's keys.
    """
    if user is None or not user.is_authenticated:
        return None
    return models.Customer.objects.filter(users__user_id=user.pk).first()


def customers() -> tuple[Customer, ...]:
    allowed: dict[int, list[int]] = defaultdict(list)
    through = models.Customer.providers.through
    for customer_id, provider_id in through.objects.order_by(
        "customer_id", "provider_id"
    ).values_list("customer_id", "provider_id"):
        allowed[customer_id].append(provider_id)
    rows = models.Customer.objects.order_by("id").values_list(
        "id",
        "name",
        "enabled",
        "sell_card_id",
        "strategy",
        "allow_negative_margin",
        "max_call_duration_s",
        "country_code",
        "national_prefix",
        "international_prefix",
        "strip_prefix",
        "billing_mode",
        "credit_limit",
        "currency",
        "media",
    )
    return tuple(
        Customer(
            id=pk,
            name=name,
            enabled=enabled,
            sell_card_id=sell_card_id,
            strategy=RoutingStrategy(strategy),
            allow_negative_margin=allow_negative_margin,
            max_call_duration_s=max_call_duration_s,
            number_rules=NumberRules(
                country_code=country_code,
                national_prefix=national_prefix,
                international_prefix=international_prefix,
                strip_prefix=strip_prefix,
            ),
            provider_ids=tuple(allowed.get(pk, ())),
            credit=CreditTerms(
                mode=BillingMode(billing_mode), credit_limit=credit_limit, currency=currency
            ),
            media=MediaChoice(media),
        )
        for (
            pk,
            name,
            enabled,
            sell_card_id,
            strategy,
            allow_negative_margin,
            max_call_duration_s,
            country_code,
            national_prefix,
            international_prefix,
            strip_prefix,
            billing_mode,
            credit_limit,
            currency,
            media,
        ) in rows
    )


def accounts() -> tuple[Account, ...]:
    rows = models.Account.objects.order_by("id").values_list(
        "id",
        "customer_id",
        "username",
        "ha1_md5",
        "ha1_sha256",
        "allow_md5",
        "enabled",
        "extension",
    )
    return tuple(Account(*row) for row in rows)


DID_COLUMNS = (
    "id",
    "customer_id",
    "first",
    "last",
    "target",
    "account_id",
    "trunk_host",
    "trunk_port",
    "trunk_transport",
    "failover_host",
    "failover_port",
    "failover_transport",
    "forward_to",
    "price_per_minute",
    "monthly_price",
    "enabled",
)


def dids() -> tuple[Did, ...]:
    """Every DID with its owner's currency (what its prices are in)."""
    rows = models.Did.objects.order_by("id").values_list(*DID_COLUMNS, "customer__currency")
    return tuple(
        did_value(dict(zip(DID_COLUMNS, row[:-1], strict=True)), currency=row[-1]) for row in rows
    )


def did_value(row: Mapping[str, Any], *, currency: str = "EUR", every_target: bool = False) -> Did:
    """One DID as the domain sees it, from the values of :data:`DID_COLUMNS` (a row, or a
    model being checked: :func:`tollguard.web.customers.dids.did_errors`).

    Only the fields of the DID's target are carried over, the others left empty: a
    stored DID's leftovers of an earlier target mean nothing. With ``every_target``
    every target's fields are kept, so that the DID rules report a stray one on a DID
    about to be saved. Raises ``ValueError`` for a target or transport that is none.
    """
    kind = DidTarget(row["target"])
    trunk: tuple[SipAddress, ...] = ()
    if every_target or kind is DidTarget.TRUNK:
        trunk = tuple(
            # A port not given yet (a form's empty field) is 0, which the rules refuse.
            SipAddress(host, port or 0, SipTransport(transport))
            for host, port, transport in (
                (row["trunk_host"], row["trunk_port"], row["trunk_transport"]),
                (row["failover_host"], row["failover_port"], row["failover_transport"]),
            )
            if host
        )
    return Did(
        id=row["id"],
        customer_id=row["customer_id"],
        first=row["first"],
        last=row["last"],
        target=kind,
        account_id=row["account_id"] if every_target or kind is DidTarget.ACCOUNT else None,
        trunk=trunk,
        forward_to=row["forward_to"] if every_target or kind is DidTarget.DID else "",
        price_per_minute=row["price_per_minute"],
        monthly_price=row["monthly_price"],
        currency=currency,
        enabled=row["enabled"],
    )


def acl() -> tuple[AclEntry, ...]:
    rows = models.AclEntry.objects.order_by("id").values_list(
        "id", "customer_id", "network", "tech_prefix"
    )
    return tuple(
        AclEntry(
            id=pk,
            customer_id=customer_id,
            network=ipaddress.ip_network(network),
            tech_prefix=tech_prefix,
        )
        for pk, customer_id, network, tech_prefix in rows
    )


@dataclass(frozen=True, slots=True)
class CurrencyMismatch:
    """A customer's calls cannot go over a provider, or over any: the currencies differ.

    The switch routes a call only over providers whose cost card is in the currency of
    the customer's sell card (:meth:`tollguard.domain.routing.Plan.route`).
    """

    customer: str
    currency: str  # the customer's sell card's
    listed: tuple[tuple[str, str], ...]  # (provider, its currency) the customer names
    no_provider: bool  # no enabled provider the customer may use is in its currency

    def describe(self) -> str:
        parts = []
        if self.listed:
            names = ", ".join(f"{name!r} ({currency})" for name, currency in self.listed)
            parts.append(
                f"lists providers whose cost card is in another currency: {names}; its "
                "calls are never routed to them"
            )
        if self.no_provider:
            parts.append(
                f"no enabled provider it may use has a cost card in {self.currency}: "
                "every call is refused (503)"
            )
        return f"customer {self.customer!r} sells in {self.currency}: " + "; ".join(parts)


def currency_mismatches() -> list[CurrencyMismatch]:
    """Enabled customers with a sell card that name providers in another currency, or
    that no provider serves in their currency (one query per table)."""
    card_currency = dict(RateCard.objects.values_list("pk", "currency"))
    providers = {
        pk: (name, card_currency[card])
        for pk, name, card in Provider.objects.filter(
            enabled=True, cost_card__isnull=False
        ).values_list("pk", "name", "cost_card_id")
    }
    listed: dict[int, list[int]] = defaultdict(list)
    for customer_id, provider_id in models.Customer.providers.through.objects.values_list(
        "customer_id", "provider_id"
    ):
        listed[customer_id].append(provider_id)
    found = []
    for pk, name, card in (
        models.Customer.objects.filter(enabled=True, sell_card__isnull=False)
        .order_by("name")
        .values_list("pk", "name", "sell_card_id")
    ):
        currency = card_currency[card]
        if listed[pk]:
            usable = [providers[p] for p in listed[pk] if p in providers]
            named = tuple(sorted((n, c) for n, c in usable if c != currency))
        else:
            usable, named = list(providers.values()), ()
        # Without any provider at all there is nothing to say about currencies.
        none_left = bool(providers) and all(c != currency for _, c in usable)
        if named or none_left:
            found.append(CurrencyMismatch(name, currency, named, none_left))
    return found
