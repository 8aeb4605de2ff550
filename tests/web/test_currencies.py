"""Routes across currencies are refused, and said so before a call is lost to them.

A customer selling in USD over a provider whose cost card is in EUR got CDRs whose sell,
cost and margin were all labelled USD, and neither ``tollguard load`` nor ``tollguard
check`` said a word. The switch now routes a call only over providers in the sell
card's currency (``tests/domain/test_routing.py``); here the checks that tell the
operator: the system check behind ``tollguard check``, the load, and the admin forms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from tollguard.web.customers.checks import check_currencies
from tollguard.web.customers.selectors import currency_mismatches
from tollguard.web.provisioning import PlanFileError, load_plan_file

from . import factories

pytestmark = pytest.mark.usefixtures("db")

REALM = "tollguard.test"


def world(*, listed: bool) -> dict[str, Any]:
    eur_cost = factories.rate_card("eur-cost", kind="cost", currency="EUR")
    usd_sell = factories.rate_card("usd-retail", currency="USD")
    eur_sell = factories.rate_card("eur-retail", currency="EUR")
    carrier = factories.provider("carrier-eur", cost_card=eur_cost)
    usd = factories.customer("usd-shop", sell_card=usd_sell)
    eur = factories.customer("eur-shop", sell_card=eur_sell)
    if listed:
        usd.providers.add(carrier)
    return {"carrier": carrier, "usd": usd, "eur": eur, "usd_sell": usd_sell}


def test_a_listed_provider_in_another_currency_is_named() -> None:
    world(listed=True)
    (found,) = currency_mismatches()
    assert (found.customer, found.currency, found.listed, found.no_provider) == (
        "usd-shop",
        "USD",
        (("carrier-eur", "EUR"),),
        True,
    )
    assert found.describe() == (
        "customer 'usd-shop' sells in USD: lists providers whose cost card is in another "
        "currency: 'carrier-eur' (EUR); its calls are never routed to them; no enabled "
        "provider it may use has a cost card in USD: every call is refused (503)"
    )


def test_a_customer_no_provider_serves_in_its_currency_is_named() -> None:
    world(listed=False)
    (found,) = currency_mismatches()
    assert (found.customer, found.listed, found.no_provider) == ("usd-shop", (), True)
    # A provider in dollars settles it; the euro customer was never concerned.
    usd_cost = factories.rate_card("usd-cost", kind="cost", currency="USD")
    factories.provider("carrier-usd", cost_card=usd_cost)
    assert currency_mismatches() == []


def test_tollguard_check_warns() -> None:
    world(listed=True)
    (warning,) = check_currencies()
    assert warning.id == "customers.W001"
    assert "usd-shop" in warning.msg and "carrier-eur" in warning.msg
    with pytest.raises(SystemCheckError, match=r"customers\.W001"):
        call_command("check", deploy=True, fail_level="WARNING", tags=["security"])


PLAN = """
rate_cards:
  - {name: eur-cost, kind: cost, currency: EUR, rates: [{prefix: "44", price_per_minute: "0.01"}]}
  - {name: usd-retail, kind: sell, currency: USD, rates: [{prefix: "44", price_per_minute: "0.02"}]}
providers:
  - {name: carrier-eur, cost_card: eur-cost}
customers:
  - name: usd-shop
    sell_card: usd-retail
"""


def test_load_refuses_a_customer_listing_a_provider_in_another_currency(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN + "    providers: [carrier-eur]\n")
    with pytest.raises(PlanFileError) as caught:
        load_plan_file(path, realm=REALM)
    assert caught.value.errors == (
        "plan.yaml:10: customers[0] 'usd-shop'.providers: customer 'usd-shop' sells in USD: "
        "lists providers whose cost card is in "
        "another currency: 'carrier-eur' (EUR); its calls are never routed to them; no "
        "enabled provider it may use has a cost card in USD: every call is refused (503)",
    )
    assert currency_mismatches() == []  # nothing was loaded


def test_load_warns_when_no_provider_is_in_the_customers_currency(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    report = load_plan_file(path, realm=REALM)
    assert report.warnings == (
        "customer 'usd-shop' sells in USD: no enabled provider it may use has a cost card "
        "in USD: every call is refused (503)",
    )
    assert "  warning: customer 'usd-shop' sells in USD" in report.summary()


@pytest.fixture
def admin_client(admin_urls: None, superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def admin_urls() -> Any:
    from django.test import override_settings

    with override_settings(ROOT_URLCONF="tests.web.admin.urls", ALLOWED_HOSTS=["testserver"]):
        yield


@pytest.fixture
def superuser() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create(username="root", is_staff=True, is_superuser=True)


def customer_form(**values: Any) -> dict[str, Any]:
    return {
        "name": "usd-shop",
        "enabled": "on",
        "strategy": "lcr",
        "max_call_duration_s": "7200",
        "national_prefix": "0",
        "international_prefix": "00",
        "media": "default",
        "accounts-TOTAL_FORMS": "0",
        "accounts-INITIAL_FORMS": "0",
        "acl-TOTAL_FORMS": "0",
        "acl-INITIAL_FORMS": "0",
        **values,
    }


def test_the_customer_form_refuses_a_provider_in_another_currency(admin_client: Client) -> None:
    w = world(listed=False)
    url = f"/hidden/customers/customer/{w['usd'].pk}/change/"
    refused = admin_client.post(
        url, customer_form(sell_card=w["usd_sell"].pk, providers=[w["carrier"].pk])
    )
    assert refused.status_code == 200
    assert "The sell card usd-retail is in USD, but these providers&#x27; cost cards are not: " in (
        refused.content.decode()
    )
    assert not w["usd"].providers.exists()


def test_the_provider_form_refuses_a_cost_card_its_customers_cannot_use(
    admin_client: Client,
) -> None:
    w = world(listed=False)
    usd_cost = factories.rate_card("usd-cost", kind="cost", currency="USD")
    carrier = factories.provider("carrier-usd", cost_card=usd_cost)
    w["usd"].providers.add(carrier)
    eur_cost = w["carrier"].cost_card
    refused = admin_client.post(
        f"/hidden/carriers/provider/{carrier.pk}/change/",
        {
            "name": "carrier-usd",
            "enabled": "on",
            "cost_card": eur_cost.pk,
            "priority": "100",
            "weight": "100",
            "gateways-TOTAL_FORMS": "0",
            "gateways-INITIAL_FORMS": "0",
        },
    )
    assert refused.status_code == 200
    assert "customers that list this provider sell in another currency: usd-shop (USD)" in (
        refused.content.decode()
    )
    carrier.refresh_from_db()
    assert carrier.cost_card_id == usd_cost.pk
