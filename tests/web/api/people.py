"""Users, customers, CDRs and keys shared by the API, portal and access-control tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from tollguard.web.api.keys import IssuedKey, create_api_key
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.portal.models import CustomerUser
from tollguard.web.rating.models import Rate, RateCard

from .. import factories

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROLE_NAMES = ("administrator", "operator", "billing", "read-only")

# Used only when the security app has not created the role groups: the walk derives
# every expectation from the user's permissions, so any definition is tested faithfully.
_FALLBACK_ROLES: dict[str, tuple[str, ...]] = {
    "administrator": ("add", "change", "delete", "view"),
    "operator": ("add", "change", "view"),
    "billing": ("view",),
    "read-only": ("view",),
}
_CONFIG_APPS = ("customers", "carriers", "rating", "cdr", "api", "portal")


def user(username: str, **values: Any) -> Any:
    account = get_user_model().objects.create(username=username, **values)
    account.set_unusable_password()
    account.save()
    return account


def customer_user(username: str, customer: Customer) -> Any:
    account = user(username)
    CustomerUser.objects.create(user=account, customer=customer)
    return account


def role_user(role: str) -> Any:
    group = Group.objects.filter(name=role).first()
    if group is None:
        group = Group.objects.create(name=role)
        actions = _FALLBACK_ROLES[role]
        perms = Permission.objects.filter(content_type__app_label__in=_CONFIG_APPS)
        if role == "billing":
            perms = perms.filter(content_type__app_label__in=("cdr", "rating"))
        group.permissions.set(p for p in perms if p.codename.split("_", 1)[0] in actions)
    account = user(f"role-{role}", is_staff=True)
    account.groups.add(group)
    return account


@dataclass(frozen=True, slots=True)
class World:
    """Two customers with everything a customer owns, and one provider."""

    a: Customer
    b: Customer
    card_a: RateCard
    card_b: RateCard
    cost_card: RateCard
    rate_a: Rate
    rate_b: Rate
    account_a: Account
    account_b: Account
    acl_a: AclEntry
    acl_b: AclEntry
    provider: Provider
    gateway: Gateway
    cdr_a: Cdr
    cdr_b: Cdr


def cdr(customer: Customer | None, started_at: datetime, **values: Any) -> Cdr:
    fields: dict[str, Any] = {
        "call_id": f"call-{started_at.timestamp()}-{values.get('callee', '')}",
        "started_at": started_at,
        "ended_at": started_at + timedelta(seconds=values.get("billed_s", 0) + 5),
        "customer": customer,
        "source_ip": "192.0.2.1",
        "source_port": 5060,
        "sip_code": 200,
        "hangup_side": "caller",
    }
    # Each amount in its card's currency, as the switch writes it.
    if customer is not None and customer.sell_card is not None:
        fields["sell_currency"] = customer.sell_card.currency
    provider = values.get("provider")
    if provider is not None and provider.cost_card is not None:
        fields["cost_currency"] = provider.cost_card.currency
    fields.update(values)
    return Cdr.objects.create(**fields)


def world() -> World:
    card_a = factories.rate_card("sell-a", currency="EUR")
    card_b = factories.rate_card("sell-b", currency="USD")
    cost_card = factories.rate_card("cost", kind="cost")
    a = factories.customer("alpha", sell_card=card_a)
    b = factories.customer("bravo", sell_card=card_b)
    provider = factories.provider("carrier-x", cost_card=cost_card)
    return World(
        a=a,
        b=b,
        card_a=card_a,
        card_b=card_b,
        cost_card=cost_card,
        rate_a=factories.rate(card_a, "4930", "0.0100", destination="Germany Berlin"),
        rate_b=factories.rate(card_b, "1212", "0.0200", destination="USA New York"),
        account_a=factories.account(a, "alice"),
        account_b=factories.account(b, "bob"),
        acl_a=factories.acl(a, "198.51.100.0/24"),
        acl_b=factories.acl(b, "203.0.113.0/24"),
        provider=provider,
        gateway=factories.gateway(provider, "gw-x"),
        cdr_a=cdr(a, T0, callee="4930123", answered_at=T0, billed_s=60, provider=provider),
        cdr_b=cdr(b, T0, callee="1212555", answered_at=T0, billed_s=30, provider=provider),
    )


def key(owner: Any, *scopes: str, **values: Any) -> IssuedKey:
    return create_api_key(owner=owner, name=values.pop("name", "test"), scopes=scopes, **values)


def bearer(issued: IssuedKey) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {issued.secret}"}


def money(text: str) -> Decimal:
    return Decimal(text)


def send(client: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """``client``'s ``method`` on ``path``, with ``body`` as JSON when given."""
    call = getattr(client, method)
    if body is None:
        return call(path)
    return call(path, json.dumps(body), content_type="application/json")
