"""Provisioning through the API: CRUD, write-only SIP passwords, configuration version."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tollguard.web.api.models import Scope
from tollguard.web.core.selectors import config_version
from tollguard.web.customers.models import Account
from tollguard.web.customers.services import ha1_digests
from tollguard.web.rating.models import Rate

from . import people

PASSWORD = "correct horse battery"


def test_account_password_is_hashed_and_never_returned(api: Client) -> None:
    w = people.world()
    before = config_version()
    response = people.send(
        api,
        "post",
        "/api/v1/accounts/",
        {"customer": w.a.pk, "username": "carol", "password": PASSWORD},
    )
    assert response.status_code == 201, response.content
    assert PASSWORD not in response.content.decode()
    assert "password" not in response.json()
    account = Account.objects.get(username="carol")
    realm = settings.TOLLGUARD.sip.realm
    assert (account.ha1_md5, account.ha1_sha256) == ha1_digests("carol", realm, PASSWORD, md5=False)
    assert config_version() > before
    listed = people.send(api, "get", "/api/v1/accounts/").content.decode()
    assert account.ha1_sha256 not in listed
    assert "ha1" not in listed


def test_allowing_md5_over_the_api_needs_the_password(api: Client) -> None:
    w = people.world()
    path = f"/api/v1/accounts/{w.account_a.pk}/"
    Account.objects.filter(pk=w.account_a.pk).update(allow_md5=False, ha1_md5="")
    refused = people.send(api, "patch", path, {"allow_md5": True})
    assert refused.status_code == 400
    assert "Allowing MD5 needs the SIP password again" in refused.json()["password"][0]
    assert Account.objects.get(pk=w.account_a.pk).allow_md5 is False
    done = people.send(api, "patch", path, {"allow_md5": True, "password": PASSWORD})
    assert done.status_code == 200, done.content
    account = Account.objects.get(pk=w.account_a.pk)
    realm = settings.TOLLGUARD.sip.realm
    expected = ha1_digests(account.username, realm, PASSWORD, md5=True)
    assert (account.ha1_md5, account.ha1_sha256) == expected
    assert people.send(api, "patch", path, {"allow_md5": False}).status_code == 200
    assert Account.objects.get(pk=w.account_a.pk).ha1_md5 == ""


def test_account_password_change_and_rename_rules(api: Client) -> None:
    w = people.world()
    path = f"/api/v1/accounts/{w.account_a.pk}/"
    renamed = people.send(api, "patch", path, {"username": "alicia"})
    assert renamed.status_code == 400
    assert "password" in renamed.json()
    changed = people.send(api, "patch", path, {"username": "alicia", "password": PASSWORD})
    assert changed.status_code == 200
    account = Account.objects.get(pk=w.account_a.pk)
    realm = settings.TOLLGUARD.sip.realm
    assert account.ha1_sha256 == ha1_digests("alicia", realm, PASSWORD, md5=False)[1]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "dave"},
        {"username": "dave", "password": "short"},
        {"username": "bad name", "password": PASSWORD},
    ],
    ids=["no-password", "short-password", "bad-username"],
)
def test_account_validation(api: Client, body: dict[str, Any]) -> None:
    w = people.world()
    response = people.send(api, "post", "/api/v1/accounts/", {"customer": w.a.pk, **body})
    assert response.status_code == 400
    assert not Account.objects.filter(username=body["username"]).exists()


def test_provider_gateway_card_and_rate_crud_bump_version(api: Client) -> None:
    before = config_version()
    card = people.send(api, "post", "/api/v1/rate-cards/", {"name": "wholesale", "kind": "cost"})
    assert card.status_code == 201
    provider = people.send(
        api, "post", "/api/v1/providers/", {"name": "carrier-z", "cost_card": card.json()["id"]}
    )
    assert provider.status_code == 201
    gateway = people.send(
        api,
        "post",
        "/api/v1/gateways/",
        {"provider": provider.json()["id"], "name": "gw-z", "host": "192.0.2.50"},
    )
    assert gateway.status_code == 201
    rate = people.send(
        api,
        "post",
        "/api/v1/rates/",
        {"card": card.json()["id"], "prefix": "44", "price_per_minute": "0.012300"},
    )
    assert rate.status_code == 201
    assert rate.json()["price_per_minute"] == "0.012300"
    assert Rate.objects.get(pk=rate.json()["id"]).price_per_minute == people.money("0.0123")
    assert config_version() >= before + 4
    deleted = people.send(api, "delete", f"/api/v1/gateways/{gateway.json()['id']}/")
    assert deleted.status_code == 204


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/v1/providers/", "cost_card"), ("/api/v1/customers/", "sell_card")],
    ids=["provider-with-sell-card", "customer-with-cost-card"],
)
def test_card_kind_is_checked(api: Client, path: str, field: str) -> None:
    w = people.world()
    card = w.card_a if field == "cost_card" else w.cost_card
    response = people.send(api, "post", path, {"name": "wrong-kind", field: card.pk})
    assert response.status_code == 400
    assert field in response.json()


def test_deleting_a_card_in_use_is_a_conflict(api: Client) -> None:
    w = people.world()
    response = people.send(api, "delete", f"/api/v1/rate-cards/{w.card_a.pk}/")
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("network", "status"),
    [("192.0.2.0/24", 201), ("2001:db8::/48", 201), ("192.0.2.1/24", 400), ("banana", 400)],
    ids=["v4", "v6", "host-bits", "garbage"],
)
def test_acl_networks(api: Client, network: str, status: int) -> None:
    w = people.world()
    response = people.send(api, "post", "/api/v1/acl/", {"customer": w.a.pk, "network": network})
    assert response.status_code == status


def test_provisioning_pages(api: Client) -> None:
    w = people.world()
    for n in range(5):
        people.factories.rate(w.card_a, f"49{n}", "0.01")
    first = people.send(api, "get", "/api/v1/rates/?page_size=2").json()
    assert first["count"] == 7
    assert len(first["results"]) == 2
    assert first["next"]


@pytest.mark.parametrize(
    ("path", "own"),
    [
        ("/api/v1/customers/", lambda w: {w.a.pk}),
        ("/api/v1/accounts/", lambda w: {w.account_a.pk}),
        ("/api/v1/acl/", lambda w: {w.acl_a.pk}),
        ("/api/v1/rate-cards/", lambda w: {w.card_a.pk}),
        ("/api/v1/rates/", lambda w: {w.rate_a.pk}),
    ],
    ids=["customers", "accounts", "acl", "rate-cards", "rates"],
)
def test_customer_reads_only_own_provisioning(path: str, own: Any) -> None:
    w = people.world()
    owner = people.customer_user("cust-a", w.a)
    client = Client(**people.bearer(people.key(owner, Scope.READ_PROVISIONING)))
    body = client.get(path).json()
    assert {row["id"] for row in body["results"]} == own(w)
    assert "providers" not in body["results"][0]
    assert "strategy" not in body["results"][0]


@pytest.mark.parametrize(
    "path", ["/api/v1/providers/", "/api/v1/gateways/"], ids=["providers", "gateways"]
)
def test_carriers_are_closed_to_customers(path: str) -> None:
    w = people.world()
    owner = people.customer_user("cust-a", w.a)
    client = Client(**people.bearer(people.key(owner, Scope.READ_PROVISIONING)))
    assert client.get(path).status_code == 403


def test_customers_cannot_write_even_their_own_objects() -> None:
    w = people.world()
    client = Client()
    client.force_login(people.customer_user("cust-a", w.a))
    response = people.send(client, "patch", f"/api/v1/customers/{w.a.pk}/", {"name": "renamed"})
    assert response.status_code == 403
