"""The DID admin: list, search, the table rules on save, protected deletes, audit."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.test import Client

from tollguard.web.core.selectors import config_version
from tollguard.web.customers.models import Did

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

ADD = "/hidden/customers/did/add/"


def _form(customer_id: int, first: str, **values: object) -> dict[str, object]:
    return {
        "customer": customer_id,
        "first": first,
        "last": "",
        "enabled": "on",
        "target": "account",
        "account": "",
        "forward_to": "",
        "trunk_host": "",
        "trunk_port": 5060,
        "trunk_transport": "udp",
        "failover_host": "",
        "failover_port": 5060,
        "failover_transport": "udp",
        "price_per_minute": "0",
        "monthly_price": "0",
        **values,
    }


def test_list_shows_owner_target_and_prices_and_searches_by_number(client: Client) -> None:
    acme, other = factories.customer("acme"), factories.customer("globex")
    alice = factories.account(acme)
    factories.did(acme, "442071234567", account=alice, monthly_price="2.5")
    factories.did(other, "33140000000", target="trunk", trunk_host="pbx.globex.test")
    page = client.get("/hidden/customers/did/").content.decode()
    for text in ("442071234567", "account alice", "2.5", "pbx.globex.test:5060 (udp)", "globex"):
        assert text in page, text
    found = client.get("/hidden/customers/did/", {"q": "4420712"}).content.decode()
    assert "442071234567" in found and "33140000000" not in found
    by_customer = client.get("/hidden/customers/did/", {"q": "globex"}).content.decode()
    assert "33140000000" in by_customer and "442071234567" not in by_customer


def test_the_form_uses_search_boxes_and_saves_a_valid_did(client: Client) -> None:
    acme = factories.customer("acme")
    alice = factories.account(acme)
    form = client.get(ADD).content.decode()
    assert 'name="customer"' in form and "admin-autocomplete" in form
    version = config_version()
    response = client.post(ADD, _form(acme.pk, "442071234567", account=alice.pk))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Did.objects.get().account == alice
    assert config_version() == version + 1
    entry = LogEntry.objects.get_for_object(Did.objects.get()).get()
    assert entry.actor is not None and entry.actor.username == "root"


def test_the_form_reports_table_errors_on_their_fields(client: Client) -> None:
    acme, other = factories.customer("acme"), factories.customer("globex")
    bob = factories.account(other, "bob")
    factories.did(acme, "442071234500", last="442071234599", target="trunk", trunk_host="h")
    response = client.post(ADD, _form(acme.pk, "442071234567", target="trunk", trunk_host="h"))
    assert response.status_code == 200
    assert "Number held by range 442071234500-442071234599." in response.content.decode()
    response = client.post(ADD, _form(acme.pk, "4420", account=bob.pk))
    assert "Account &#x27;bob&#x27; belongs to another customer." in response.content.decode()
    response = client.post(ADD, _form(acme.pk, "4421", target="did", forward_to="4499"))
    assert "Forwards to 4499, no DID." in response.content.decode()
    assert Did.objects.count() == 1


def test_a_did_another_forwards_to_cannot_be_deleted(client: Client) -> None:
    acme = factories.customer("acme")
    alice = factories.account(acme)
    target = factories.did(acme, "4420", account=alice)
    factories.did(acme, "4421", target="did", forward_to="4420")
    url = f"/hidden/customers/did/{target.pk}/delete/"
    page = client.get(url).content.decode()
    assert "DID 4421 forwards to 4420, no DID" in page
    # Django answers the refused POST with the same page, and deletes nothing.
    assert "forwards to 4420" in client.post(url, {"post": "yes"}).content.decode()
    assert Did.objects.filter(pk=target.pk).exists()


def test_account_extension_and_provider_inbound_card_are_edited(client: Client) -> None:
    acme = factories.customer("acme")
    alice = factories.account(acme)
    page = client.get(f"/hidden/customers/account/{alice.pk}/change/").content.decode()
    assert 'name="extension"' in page
    provider = factories.provider()
    page = client.get(f"/hidden/carriers/provider/{provider.pk}/change/").content.decode()
    assert 'name="inbound_card"' in page
