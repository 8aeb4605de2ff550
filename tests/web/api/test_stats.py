"""Traffic statistics from a known set of CDRs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from tollguard.web.api.models import Scope
from tollguard.web.api.statistics import traffic_stats
from tollguard.web.cdr.models import Cdr

from . import people

RANGE = "since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z"


def fixture_cdrs() -> people.World:
    """Customer A: 3 calls, 2 answered (60 s and 120 s); customer B: 1 answered call (30 s);
    one call of A the day before, outside the range."""
    w = people.world()
    Cdr.objects.all().delete()
    t0 = people.T0
    common: dict[str, Any] = {"provider": w.provider}
    people.cdr(
        w.a,
        t0,
        answered_at=t0,
        duration_ms=60_000,
        billed_s=60,
        sell_amount=Decimal("0.60"),
        cost_amount=Decimal("0.40"),
        margin=Decimal("0.20"),
        destination="Germany",
        **common,
    )
    people.cdr(
        w.a,
        t0 + timedelta(minutes=5),
        answered_at=t0,
        duration_ms=120_000,
        billed_s=120,
        sell_amount=Decimal("1.20"),
        cost_amount=Decimal("0.90"),
        margin=Decimal("0.30"),
        destination="Germany",
        **common,
    )
    people.cdr(w.a, t0 + timedelta(minutes=9), sip_code=486, destination="France", **common)
    people.cdr(
        w.b,
        t0 + timedelta(hours=1),
        answered_at=t0,
        duration_ms=30_000,
        billed_s=60,
        sell_amount=Decimal("0.10"),
        cost_amount=Decimal("0.15"),
        margin=None,  # sold in USD, bought in EUR: written before routing refused it
        destination="Germany",
        **common,
    )
    people.cdr(
        w.a,
        t0 - timedelta(days=1),
        answered_at=t0,
        duration_ms=999_000,
        billed_s=999,
        sell_amount=Decimal("9"),
        destination="Germany",
        **common,
    )
    return w


@pytest.fixture
def admin_api() -> Client:
    admin = people.user("root", is_staff=True, is_superuser=True)
    return Client(**people.bearer(people.key(admin, Scope.READ_STATS)))


def by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in body["rows"]}


def test_per_customer(admin_api: Client) -> None:
    w = fixture_cdrs()
    response = admin_api.get(f"/api/v1/stats/?{RANGE}&group_by=customer")
    assert response.status_code == 200, response.content
    rows = by_key(response.json())
    a, b = rows[str(w.a.pk)], rows[str(w.b.pk)]
    assert response.json()["rows"][0]["key"] == str(w.a.pk)  # most calls first
    assert (a["name"], a["calls"], a["answered"]) == ("alpha", 3, 2)
    assert a["asr"] == "66.67"
    assert a["acd_s"] == "90.0"
    assert a["minutes"] == "3.00"
    assert a["billed_minutes"] == "3.00"
    assert (a["sell"], a["cost"], a["margin"]) == ("1.800000", "1.300000", "0.500000")
    assert a["currency"] == "EUR"
    assert (b["calls"], b["asr"], b["acd_s"], b["minutes"]) == (1, "100.00", "30.0", "0.50")
    assert b["billed_minutes"] == "1.00"
    # Bravo sells in USD over a provider costing EUR: the cost is not added to dollars,
    # and there is no margin; nothing of it went into alpha's EUR figures either.
    assert (b["currency"], b["sell"], b["cost"], b["margin"]) == ("USD", "0.100000", None, None)


def test_per_destination_and_provider(admin_api: Client) -> None:
    w = fixture_cdrs()
    body = admin_api.get(f"/api/v1/stats/?{RANGE}&group_by=destination").json()
    # One row per destination and sell currency: Germany was sold in EUR and in USD.
    assert [(r["key"], r["currency"], r["calls"]) for r in body["rows"]] == [
        ("Germany", "EUR", 2),
        ("France", "EUR", 1),
        ("Germany", "USD", 1),
    ]
    dest = by_key(body)
    assert dest["France"]["asr"] == "0.00"
    assert dest["France"]["acd_s"] == "0.0"
    prov = admin_api.get(f"/api/v1/stats/?{RANGE}&group_by=provider").json()["rows"]
    assert sum(r["calls"] for r in prov if r["key"] == str(w.provider.pk)) == 4
    prov = by_key({"rows": prov})
    assert prov[str(w.provider.pk)]["name"] == "carrier-x"


def test_empty_range(admin_api: Client) -> None:
    fixture_cdrs()
    body = admin_api.get(
        "/api/v1/stats/?since=2030-01-01T00:00Z&until=2030-01-02T00:00Z&group_by=customer"
    ).json()
    assert body["rows"] == []


@pytest.mark.parametrize(
    "query",
    [
        "group_by=customer",
        f"{RANGE}&group_by=planet",
        "since=2026-03-02T00:00Z&until=2026-03-01T00:00Z&group_by=customer",
    ],
    ids=["no-range", "bad-group", "reversed-range"],
)
def test_bad_queries(admin_api: Client, query: str) -> None:
    assert admin_api.get(f"/api/v1/stats/?{query}").status_code == 400


def test_customer_sees_own_stats_without_cost() -> None:
    w = fixture_cdrs()
    owner = people.customer_user("cust-b", w.b)
    client = Client(**people.bearer(people.key(owner, Scope.READ_STATS)))
    body = client.get(f"/api/v1/stats/?{RANGE}&group_by=customer").json()
    assert [row["key"] for row in body["rows"]] == [str(w.b.pk)]
    assert "cost" not in body["rows"][0]
    assert "margin" not in body["rows"][0]
    assert client.get(f"/api/v1/stats/?{RANGE}&group_by=provider").status_code == 403


def test_selector_counts_unknown_customer_as_a_group() -> None:
    fixture_cdrs()
    people.cdr(None, people.T0, sip_code=403)
    stats = traffic_stats(Cdr.objects.filter(customer__isnull=True), "customer")
    assert [(s.key, s.calls, s.asr) for s in stats] == [("", 1, Decimal("0.00"))]
