"""The admin of the money: balances on the customer pages, posting top-ups and
adjustments (billing and administrator roles only), a ledger nobody can edit, and
webhook secrets shown once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from auditlog.models import LogEntry as AuditEntry
from django.contrib.admin.models import LogEntry as AdminHistory
from django.contrib.auth import get_user_model
from django.test import Client

from tollguard.web.billing import services
from tollguard.web.billing.models import BalanceAlerts, EntryKind, LedgerEntry
from tollguard.web.billing.selectors import balance_of
from tollguard.web.customers.models import Customer

from .. import factories
from ..api import people

ADD = "/hidden/billing/ledgerentry/add/"
LIST = "/hidden/billing/ledgerentry/"


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _superuser() -> Any:
    user = get_user_model().objects.create(username="root", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    return user


def _customer() -> Customer:
    return factories.customer("acme", sell_card=factories.rate_card("card"))


def test_billing_posts_a_top_up_and_it_is_audited() -> None:
    acme = _customer()
    clerk = people.role_user("billing")
    response = _signed_in(clerk).post(
        ADD,
        {"customer": acme.pk, "kind": "top_up", "amount": "40", "reference": "wire-2026-03"},
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 302, response.content
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.balance_after) == ("top_up", Decimal(40), Decimal(40))
    assert (entry.created_by_id, entry.created_by_name) == (clerk.pk, clerk.username)
    assert balance_of(acme.pk) == Decimal(40)
    audit = AuditEntry.objects.get_for_object(entry).get()
    assert (audit.actor, audit.remote_addr) == (clerk, "10.1.2.3")
    history = AdminHistory.objects.get(object_id=str(entry.pk), user=clerk)
    # The history (and the page's message) names the customer, not its id.
    assert history.object_repr == f"top-up of 40 {acme.currency} for acme"


def test_an_adjustment_without_a_reason_is_refused_on_the_form() -> None:
    acme = _customer()
    response = _signed_in(people.role_user("billing")).post(
        ADD, {"customer": acme.pk, "kind": "adjustment", "amount": "-5", "reason": ""}
    )
    assert response.status_code == 200
    assert b"needs a reason" in response.content
    assert not LedgerEntry.objects.exists()


def test_a_call_charge_cannot_be_posted_by_hand() -> None:
    acme = _customer()
    response = _signed_in(people.role_user("billing")).post(
        ADD, {"customer": acme.pk, "kind": "call", "amount": "-5"}
    )
    assert response.status_code == 200
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("role", ["operator", "read-only"])
def test_other_roles_read_the_ledger_but_cannot_post(role: str) -> None:
    acme = _customer()
    services.post_entry(acme, EntryKind.TOP_UP, Decimal(5), reference="seen")
    client = _signed_in(people.role_user(role))
    assert client.get(LIST).status_code == 200
    assert b"seen" in client.get(LIST).content
    assert client.get(ADD).status_code == 403
    response = client.post(ADD, {"customer": acme.pk, "kind": "top_up", "amount": "1000"})
    assert response.status_code == 403
    assert LedgerEntry.objects.count() == 1


@pytest.mark.parametrize("role", ["billing", "administrator", "superuser"])
def test_nobody_changes_or_deletes_an_entry(role: str) -> None:
    entry = services.post_entry(_customer(), EntryKind.TOP_UP, Decimal(5))
    user = _superuser() if role == "superuser" else people.role_user(role)
    client = _signed_in(user)
    page = client.get(f"{LIST}{entry.pk}/change/")
    assert page.status_code == 200  # shown read-only
    assert b'name="_save"' not in page.content
    changed = client.post(f"{LIST}{entry.pk}/change/", {"amount": "5000", "kind": "top_up"})
    assert changed.status_code == 403
    assert client.post(f"{LIST}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(LIST, {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert bulk.status_code in {200, 302}
    assert LedgerEntry.objects.get(pk=entry.pk).amount == Decimal(5)


def test_the_customer_pages_show_the_balance() -> None:
    acme = _customer()
    services.post_entry(acme, EntryKind.TOP_UP, Decimal("12.5"))
    client = _signed_in(people.role_user("billing"))
    listing = client.get("/hidden/customers/customer/").content.decode()
    assert "12.500000 EUR" in listing
    page = client.get(f"/hidden/customers/customer/{acme.pk}/change/").content.decode()
    assert "12.500000 EUR" in page
    assert f"{ADD}?customer={acme.pk}" in page
    assert f"{LIST}?customer__id__exact={acme.pk}" in page


def test_the_customer_form_refuses_a_currency_its_card_does_not_price_in() -> None:
    acme = _customer()  # an EUR card
    client = _signed_in(_superuser())
    data = {
        "name": "acme",
        "enabled": "on",
        "sell_card": acme.sell_card_id,
        "strategy": "lcr",
        "max_call_duration_s": "7200",
        "national_prefix": "0",
        "international_prefix": "00",
        "media": "default",
        "billing_mode": "prepaid",
        "credit_limit": "0",
        "currency": "USD",
        "accounts-TOTAL_FORMS": "0",
        "accounts-INITIAL_FORMS": "0",
        "acl-TOTAL_FORMS": "0",
        "acl-INITIAL_FORMS": "0",
    }
    response = client.post(f"/hidden/customers/customer/{acme.pk}/change/", data)
    assert response.status_code == 200
    assert b"The sell card prices in EUR; the customer pays in USD" in response.content
    assert Customer.objects.get(pk=acme.pk).currency == "EUR"
    data |= {"currency": "EUR", "billing_mode": "postpaid", "credit_limit": "50"}
    response = client.post(f"/hidden/customers/customer/{acme.pk}/change/", data)
    assert response.status_code == 302, response.content
    stored = Customer.objects.get(pk=acme.pk)
    assert (stored.billing_mode, stored.credit_limit) == ("postpaid", Decimal(50))


def test_a_webhook_secret_is_shown_once_and_kept_out_of_the_trail() -> None:
    acme = _customer()
    alerts = BalanceAlerts.objects.create(
        customer=acme, thresholds="10", webhook_url="https://hooks.acme.test/t"
    )
    response = _signed_in(people.role_user("billing")).post(
        "/hidden/billing/balancealerts/",
        {"action": "generate_webhook_secret", "_selected_action": [acme.pk]},
    )
    assert response.status_code == 200
    alerts.refresh_from_db()
    assert alerts.webhook_secret.startswith("whsec_") and len(alerts.webhook_secret) > 40
    assert alerts.webhook_secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    trail = AuditEntry.objects.get_for_object(alerts)
    assert all(alerts.webhook_secret not in str(entry.changes) for entry in trail)
    # The change page never shows it again.
    page = _signed_in(_superuser()).get(f"/hidden/billing/balancealerts/{acme.pk}/change/")
    assert alerts.webhook_secret not in page.content.decode()
