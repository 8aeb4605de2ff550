"""The portal's balance and ledger: own entries only, pages, and the CSV export."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from tollguard.web.adapters import DbCdrSink
from tollguard.web.billing import services
from tollguard.web.billing.models import EntryKind
from tollguard.web.customers.models import Customer
from tollguard.web.portal import views

from ..api import people
from .test_ledger import make_cdr


def _text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return str(response.content.decode())


@pytest.fixture
def w() -> people.World:
    world = people.world()
    services.post_entry(world.a, EntryKind.TOP_UP, Decimal(20), reference="alpha-wire")
    services.post_entry(world.b, EntryKind.TOP_UP, Decimal(30), reference="bravo-wire")
    DbCdrSink().write_batch([make_cdr(1, world.a.pk, "0.25"), make_cdr(2, world.b.pk, "1")])
    return world


@pytest.fixture
def alice(w: people.World) -> Client:
    client = Client()
    client.force_login(people.customer_user("cust-a", w.a))
    return client


def test_the_overview_shows_the_balance(alice: Client) -> None:
    html = _text(alice.get("/portal/"))
    assert '<dd id="funds-balance">19.7500 EUR</dd>' in html
    assert "funds-limit" not in html  # prepaid: no credit


def test_a_postpaid_customer_sees_its_credit(w: people.World, alice: Client) -> None:
    Customer.objects.filter(pk=w.a.pk).update(billing_mode="postpaid", credit_limit=50)
    html = _text(alice.get("/portal/"))
    assert '<dd id="funds-limit">50.0000 EUR</dd>' in html
    assert '<dd id="funds-available">69.7500 EUR</dd>' in html


def test_the_ledger_lists_own_entries_newest_first(alice: Client) -> None:
    response = alice.get("/portal/ledger/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = _text(response)
    assert html.index("call-1@192.0.2.1") < html.index("alpha-wire")
    assert "bravo" not in html
    assert "call-2@" not in html


def test_the_ledger_pages(w: people.World, alice: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        services.post_entry(w.a, EntryKind.TOP_UP, Decimal(1), reference=f"page-{n}")
    monkeypatch.setattr(views, "LEDGER_PAGE_SIZE", 2)
    seen: list[str] = []
    url = "/portal/ledger/"
    for _ in range(5):
        html = _text(alice.get(url))
        seen += [
            ref for ref in ("page-2", "page-1", "page-0", "call-1@", "alpha-wire") if ref in html
        ]
        marker = 'href="?after='
        if marker not in html:
            break
        start = html.index(marker) + len('href="')
        url = "/portal/ledger/" + html[start : html.index('"', start)].replace("&amp;", "&")
    assert seen == ["page-2", "page-1", "page-0", "call-1@", "alpha-wire"]


def test_the_ledger_exports_as_csv(alice: Client) -> None:
    response = alice.get("/portal/ledger/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="ledger-')
    rows = list(csv.DictReader(io.StringIO(_text(response))))
    assert [(r["kind"], r["amount"], r["balance_after"], r["currency"]) for r in rows] == [
        ("top_up", "20.000000", "20.000000", "EUR"),
        ("call", "-0.250000", "19.750000", "EUR"),
    ]
    assert rows[1]["call_id"] == "call-1@192.0.2.1"


def test_operators_have_no_ledger_in_the_portal(w: people.World) -> None:
    client = Client()
    client.force_login(people.role_user("billing"))
    assert client.get("/portal/ledger/").status_code == 403
    assert client.get("/portal/ledger/export.csv").status_code == 403
