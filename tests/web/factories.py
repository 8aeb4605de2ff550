"""Small helpers that create configuration rows for the web tests."""

from __future__ import annotations

from decimal import Decimal

from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.customers.models import Account, AclEntry, Customer, Did
from tollguard.web.customers.services import ha1_digests
from tollguard.web.rating.models import Rate, RateCard

REALM = "tollguard.test"


def rate_card(name: str = "retail", kind: str = "sell", **values: object) -> RateCard:
    return RateCard.objects.create(name=name, kind=kind, **values)


def rate(card: RateCard, prefix: str, price: str, **values: object) -> Rate:
    return Rate.objects.create(card=card, prefix=prefix, price_per_minute=Decimal(price), **values)


def provider(name: str = "carrier-a", **values: object) -> Provider:
    return Provider.objects.create(name=name, **values)


def gateway(provider: Provider, name: str = "gw-a1", **values: object) -> Gateway:
    return Gateway.objects.create(provider=provider, name=name, host="192.0.2.10", **values)


def customer(name: str = "acme", **values: object) -> Customer:
    return Customer.objects.create(name=name, **values)


def account(
    customer: Customer, username: str = "alice", password: str = "pw", *, allow_md5: bool = False
) -> Account:
    md5, sha256 = ha1_digests(username, REALM, password, md5=allow_md5)
    return Account.objects.create(
        customer=customer, username=username, ha1_md5=md5, ha1_sha256=sha256, allow_md5=allow_md5
    )


def acl(customer: Customer, network: str, tech_prefix: str = "") -> AclEntry:
    return AclEntry.objects.create(customer=customer, network=network, tech_prefix=tech_prefix)


def did(customer: Customer, first: str, **values: object) -> Did:
    """A DID, checked as the admin checks one (``full_clean``), then saved."""
    row = Did(customer=customer, first=first, **values)
    row.full_clean()
    row.save()
    return row
