"""Every admin page of the configuration and CDR apps renders for a superuser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db.models import Model
from django.test import Client

from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.rating.models import Rate, RateCard

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MODELS: list[type[Model]] = [RateCard, Rate, Provider, Gateway, Customer, Account, AclEntry, Cdr]


def make_rows() -> dict[type[Model], Model]:
    card = factories.rate_card("retail")
    provider = factories.provider("carrier-a", cost_card=factories.rate_card("cost", "cost"))
    customer = factories.customer("acme", sell_card=card)
    return {
        RateCard: card,
        Rate: factories.rate(card, "4930", "0.0100", destination="Germany Berlin"),
        Provider: provider,
        Gateway: factories.gateway(provider),
        Customer: customer,
        Account: factories.account(customer),
        AclEntry: factories.acl(customer, "198.51.100.0/24"),
        Cdr: Cdr.objects.create(
            call_id="c1",
            started_at=T0,
            ended_at=T0,
            source_ip="192.0.2.1",
            source_port=5060,
            sip_code=486,
            hangup_side="callee",
            customer=customer,
        ),
    }


def url(model: type[Model], view: str, pk: object = None) -> str:
    opts = model._meta
    base = f"/hidden/{opts.app_label}/{opts.model_name}/"
    return {"changelist": base, "add": f"{base}add/", "change": f"{base}{pk}/change/"}[view]


@pytest.mark.parametrize("model", MODELS, ids=[m._meta.label for m in MODELS])
@pytest.mark.parametrize("view", ["changelist", "add", "change"])
def test_page_renders(client: Client, model: type[Model], view: str) -> None:
    rows = make_rows()
    response = client.get(url(model, view, rows[model].pk))
    if model is Cdr and view == "add":
        assert response.status_code == 403  # nobody adds a CDR
        return
    assert response.status_code == 200
    if view == "changelist":
        assert url(model, "change", rows[model].pk) in response.content.decode()


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (Customer, "q=acme&enabled__exact=1"),
        (Account, "q=alice&allow_md5__exact=0"),
        (Provider, "q=carrier&o=2"),
        (Gateway, "q=192.0.2&transport__exact=udp"),
        (Rate, "q=49"),
        (RateCard, "kind__exact=sell"),
        (AclEntry, "q=198.51"),
    ],
    ids=lambda v: v._meta.label if isinstance(v, type) and issubclass(v, Model) else v,
)
def test_searches_and_filters_find_the_row(client: Client, model: type[Model], query: str) -> None:
    rows = make_rows()
    response = client.get(f"{url(model, 'changelist')}?{query}")
    assert response.status_code == 200
    assert url(model, "change", rows[model].pk) in response.content.decode()


def test_customer_page_has_account_and_acl_inlines(client: Client) -> None:
    rows = make_rows()
    body = client.get(url(Customer, "change", rows[Customer].pk)).content.decode()
    assert 'id="accounts-group"' in body
    assert 'id="acl-group"' in body
    assert "alice" in body and "198.51.100.0/24" in body


def test_provider_page_has_gateway_inline(client: Client) -> None:
    rows = make_rows()
    body = client.get(url(Provider, "change", rows[Provider].pk)).content.decode()
    assert 'id="gateways-group"' in body
    assert "gw-a1" in body


def test_provider_list_counts_gateways(client: Client) -> None:
    rows = make_rows()
    factories.gateway(rows[Provider], "gw-a2", enabled=False)  # type: ignore[arg-type]
    body = client.get(url(Provider, "changelist")).content.decode()
    assert '<td class="field-gateway_count">2</td>' in body
    assert '<td class="field-enabled_gateway_count">1</td>' in body


def test_rate_card_page_links_import_and_export(client: Client) -> None:
    card = make_rows()[RateCard]
    body = client.get(url(RateCard, "change", card.pk)).content.decode()
    assert f"/hidden/rating/ratecard/{card.pk}/import/" in body
    assert f"/hidden/rating/ratecard/{card.pk}/export/" in body


def test_admin_index_links_the_dashboard(client: Client) -> None:
    body = client.get("/hidden/").content.decode()
    assert 'href="/hidden/cdr/cdr/dashboard/"' in body


def test_customer_search_leaves_out_other_customers(client: Client) -> None:
    rows = make_rows()
    other = factories.customer("zeta")
    body = client.get(f"{url(Customer, 'changelist')}?q=acme").content.decode()
    assert url(Customer, "change", rows[Customer].pk) in body
    assert url(Customer, "change", other.pk) not in body
