"""Customers, accounts and ACL entries from the ORM as domain values, and which
customer a signed-in user acts for."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Any

from tollguard.domain.plan import (
    Account,
    AclEntry,
    BillingMode,
    CreditTerms,
    Customer,
    NumberRules,
    RoutingStrategy,
)
from tollguard.web.customers import models


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
        ) in rows
    )


def accounts() -> tuple[Account, ...]:
    rows = models.Account.objects.order_by("id").values_list(
        "id", "customer_id", "username", "ha1_md5", "ha1_sha256", "allow_md5", "enabled"
    )
    return tuple(Account(*row) for row in rows)


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
