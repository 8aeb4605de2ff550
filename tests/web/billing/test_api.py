"""The ledger and balances through the REST API: scopes, roles, isolation, top-ups."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from tollguard.web.api.errors import KeyRequestError
from tollguard.web.api.models import Scope
from tollguard.web.billing import services
from tollguard.web.billing.models import EntryKind, LedgerEntry
from tollguard.web.billing.selectors import balance_of

from ..api import people

LEDGER = "/api/v1/ledger/"


def _client(issued: Any) -> Client:
    return Client(headers={"Authorization": f"Bearer {issued.secret}"})


@pytest.fixture
def w() -> people.World:
    world = people.world()
    services.post_entry(world.a, EntryKind.TOP_UP, Decimal(20), reference="alpha-wire")
    services.post_entry(world.b, EntryKind.TOP_UP, Decimal(30), reference="bravo-wire")
    return world


def _top_up(client: Client, customer: int, amount: str = "15", **extra: str) -> Any:
    return client.post(
        LEDGER,
        {"customer": customer, "kind": "top_up", "amount": amount, **extra},
        content_type="application/json",
    )


def test_billing_tops_up_with_a_scoped_key(w: people.World) -> None:
    clerk = people.role_user("billing")
    response = _top_up(_client(people.key(clerk, Scope.WRITE_LEDGER)), w.a.pk, reference="p-1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["amount"], body["balance_after"]) == (
        "top_up",
        "15.000000",
        "35.000000",
    )
    assert body["created_by_name"] == clerk.username
    assert balance_of(w.a.pk) == Decimal(35)


def test_a_retried_top_up_is_not_booked_twice(w: people.World) -> None:
    client = _client(people.key(people.role_user("billing"), Scope.WRITE_LEDGER))
    assert _top_up(client, w.a.pk, reference="stripe-pi_9").status_code == 201
    again = _top_up(client, w.a.pk, reference="stripe-pi_9")
    assert again.status_code == 409
    assert balance_of(w.a.pk) == Decimal(35)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"kind": "top_up", "amount": "-5"}, "amount > 0"),
        ({"kind": "adjustment", "amount": "-5"}, "needs a reason"),
        ({"kind": "call", "amount": "-5"}, "kind"),
        ({"kind": "top_up", "amount": "1.0000001"}, "amount"),
        ({"kind": "top_up", "amount": "abc"}, "amount"),
    ],
    ids=["negative-top-up", "no-reason", "call-charge", "places", "not-a-number"],
)
def test_bad_entries_are_refused(w: people.World, payload: dict[str, str], field: str) -> None:
    client = _client(people.key(people.role_user("billing"), Scope.WRITE_LEDGER))
    response = client.post(LEDGER, {"customer": w.a.pk, **payload}, content_type="application/json")
    assert response.status_code == 400
    assert field in response.content.decode()
    assert LedgerEntry.objects.count() == 2


@pytest.mark.parametrize("role", ["operator", "read-only"])
def test_only_billing_and_administrators_post(w: people.World, role: str) -> None:
    issued = people.key(people.role_user(role), Scope.WRITE_LEDGER, Scope.READ_LEDGER)
    client = _client(issued)
    assert _top_up(client, w.a.pk).status_code == 403
    assert client.get(LEDGER).status_code == 200
    assert balance_of(w.a.pk) == Decimal(20)


def test_an_administrator_posts_an_adjustment(w: people.World) -> None:
    client = _client(people.key(people.role_user("administrator"), Scope.WRITE_LEDGER))
    response = client.post(
        LEDGER,
        {"customer": w.b.pk, "kind": "adjustment", "amount": "-4.5", "reason": "duplicate top-up"},
        content_type="application/json",
    )
    assert response.status_code == 201
    assert balance_of(w.b.pk) == Decimal("25.5")


def test_a_key_without_the_scope_cannot(w: people.World) -> None:
    client = _client(people.key(people.role_user("billing"), Scope.WRITE_PROVISIONING))
    assert _top_up(client, w.a.pk).status_code == 403
    assert client.get(LEDGER).status_code == 403


def test_entries_are_never_changed_through_the_api(w: people.World) -> None:
    client = _client(people.key(people.role_user("administrator"), Scope.WRITE_LEDGER))
    entry = LedgerEntry.objects.filter(customer=w.a).get()
    url = f"{LEDGER}{entry.pk}/"
    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(url, {"amount": "999"}, content_type="application/json")
        assert response.status_code == 405, method
    assert LedgerEntry.objects.get(pk=entry.pk).amount == Decimal(20)


def test_a_customer_reads_its_own_ledger_only(w: people.World) -> None:
    user = people.customer_user("cust-a", w.a)
    client = _client(people.key(user, Scope.READ_LEDGER))
    listing = client.get(LEDGER).json()
    assert [row["reference"] for row in listing["results"]] == ["alpha-wire"]
    other = LedgerEntry.objects.filter(customer=w.b).get()
    assert client.get(f"{LEDGER}{other.pk}/").status_code == 404
    # The filter by customer is not theirs to use: it is ignored, not obeyed.
    filtered = client.get(LEDGER, {"customer": w.b.pk}).json()
    assert [row["reference"] for row in filtered["results"]] == ["alpha-wire"]
    assert _top_up(client, w.a.pk).status_code == 403


def test_a_customer_key_cannot_hold_the_write_scope(w: people.World) -> None:
    user = people.customer_user("cust-a", w.a)
    with pytest.raises(KeyRequestError):
        people.key(user, Scope.WRITE_LEDGER)


def test_staff_filter_the_ledger(w: people.World) -> None:
    client = _client(people.key(people.role_user("billing"), Scope.READ_LEDGER))
    rows = client.get(LEDGER, {"customer": w.b.pk}).json()["results"]
    assert [row["reference"] for row in rows] == ["bravo-wire"]
    rows = client.get(LEDGER, {"kind": "call"}).json()["results"]
    assert rows == []


def test_customers_carry_their_balance_and_terms(w: people.World) -> None:
    staff = _client(people.key(people.role_user("billing"), Scope.READ_PROVISIONING))
    body = staff.get(f"/api/v1/customers/{w.a.pk}/").json()
    assert (body["balance"], body["billing_mode"], body["currency"]) == (
        "20.000000",
        "prepaid",
        "EUR",
    )
    own = _client(people.key(people.customer_user("cust-a", w.a), Scope.READ_PROVISIONING))
    assert own.get(f"/api/v1/customers/{w.a.pk}/").json()["balance"] == "20.000000"


def test_the_api_enforces_the_currency_rules(w: people.World) -> None:
    client = _client(people.key(people.role_user("administrator"), Scope.WRITE_PROVISIONING))
    # Card b prices in USD; customer a pays in EUR.
    response = client.patch(
        f"/api/v1/customers/{w.a.pk}/", {"sell_card": w.card_b.pk}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "prices in USD" in response.content.decode()
    # Customer a has ledger entries: its currency is fixed.
    response = client.patch(
        f"/api/v1/customers/{w.a.pk}/",
        {"sell_card": w.card_b.pk, "currency": "USD"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "currency is fixed" in response.content.decode()
    # A card its customers pay another currency for keeps its currency.
    response = client.patch(
        f"/api/v1/rate-cards/{w.card_a.pk}/", {"currency": "GBP"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "alpha" in response.content.decode()
    response = client.patch(
        f"/api/v1/customers/{w.a.pk}/",
        {"billing_mode": "prepaid", "credit_limit": "10"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "Only a postpaid customer" in response.content.decode()
