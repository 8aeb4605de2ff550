"""The CDR admin: read-only, filtered, searched, exported, and never counting the table."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from tollguard.web.cdr import admin as cdr_admin
from tollguard.web.cdr.models import Cdr
from tollguard.web.cdr.selectors import EXPORT_COLUMNS
from tollguard.web.customers.models import Customer

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIST = "/hidden/cdr/cdr/"


def cdr(call_id: str, customer: Customer | None = None, **values: Any) -> Cdr:
    fields: dict[str, Any] = {
        "call_id": call_id,
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=30),
        "source_ip": "192.0.2.1",
        "source_port": 5060,
        "sip_code": 200,
        "hangup_side": "caller",
        "customer": customer,
    }
    fields.update(values)
    return Cdr.objects.create(**fields)


@pytest.fixture
def calls() -> dict[str, Cdr]:
    acme, zeta = factories.customer("acme"), factories.customer("zeta")
    provider = factories.provider("carrier-a")
    return {
        "berlin": cdr(
            "call-berlin",
            acme,
            callee="4930123",
            caller="4940111",
            destination="Germany Berlin",
            provider=provider,
            answered_at=T0,
            sell_amount=Decimal("0.02"),
        ),
        "busy": cdr(
            "call-busy", acme, callee="4989777", destination="Germany Munich", sip_code=486
        ),
        "london": cdr(
            "call-london",
            zeta,
            callee="442071",
            destination="United Kingdom",
            sip_code=503,
            started_at=T0 - timedelta(days=40),
        ),
    }


def listed(client: Client, query: str) -> set[str]:
    response = client.get(f"{LIST}?{query}")
    assert response.status_code == 200, response.content[:500]
    found = set()
    for row in Cdr.objects.all():
        if f"{LIST}{row.pk}/change/" in response.content.decode():
            found.add(row.call_id)
    return found


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"call-berlin", "call-busy", "call-london"}),
        ("sip=2xx", {"call-berlin"}),
        ("sip=5xx", {"call-london"}),
        ("sip=486", {"call-busy"}),
        ("sip_code=503", {"call-london"}),
        ("destination=Germany", {"call-berlin", "call-busy"}),
        ("callee_prefix=4989", {"call-busy"}),
        ("q=call-busy", {"call-busy"}),
        ("q=4930", {"call-berlin"}),
        ("q=4940", {"call-berlin"}),
        ("q=call", set()),  # the Call-ID must match exactly
        ("started_at__year=2026&started_at__month=3", {"call-berlin", "call-busy"}),
        ("hangup_side__exact=caller&sip=4xx", {"call-busy"}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_filters_and_search(
    client: Client, calls: dict[str, Cdr], query: str, expected: set[str]
) -> None:
    assert listed(client, query) == expected


def test_customer_and_provider_filters(client: Client, calls: dict[str, Cdr]) -> None:
    acme = calls["berlin"].customer
    provider = calls["berlin"].provider
    assert acme is not None and provider is not None
    assert listed(client, f"customer__id__exact={acme.pk}") == {"call-berlin", "call-busy"}
    assert listed(client, f"provider__id__exact={provider.pk}") == {"call-berlin"}


def test_text_filter_keeps_the_other_parameters(client: Client, calls: dict[str, Cdr]) -> None:
    body = client.get(f"{LIST}?sip=4xx&q=4989&p=1").content.decode()
    assert '<input type="hidden" name="sip" value="4xx">' in body
    assert '<input type="hidden" name="q" value="4989">' in body
    assert 'name="p"' not in body


def test_nobody_adds_changes_or_deletes_a_cdr(
    client: Client, superuser: Any, calls: dict[str, Cdr]
) -> None:
    row = calls["berlin"]
    model_admin = admin.site._registry[Cdr]
    request = RequestFactory().get("/")
    request.user = superuser  # even a superuser
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request, row) is False
    assert model_admin.has_delete_permission(request, row) is False
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.get(f"{LIST}{row.pk}/delete/").status_code == 403
    assert client.post(f"{LIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    body = client.get(f"{LIST}{row.pk}/change/").content.decode()
    assert 'name="_save"' not in body
    changelist = client.get(LIST).content.decode()
    assert "delete_selected" not in changelist
    assert Cdr.objects.filter(pk=row.pk).exists()


def test_the_list_never_counts_the_whole_table(client: Client, calls: dict[str, Cdr]) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"{LIST}?sip=4xx").status_code == 200
        assert client.get(LIST).status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    cdr_counts = [sql for sql in counts if '"cdr_cdr"' in sql]
    assert cdr_counts
    assert all("LIMIT" in sql.upper() for sql in cdr_counts), cdr_counts


def test_the_count_stops_at_the_limit(
    monkeypatch: pytest.MonkeyPatch, calls: dict[str, Cdr]
) -> None:
    monkeypatch.setattr(cdr_admin, "COUNT_LIMIT", 2)
    paginator = cdr_admin.CappedCountPaginator(Cdr.objects.order_by("pk"), 1)
    assert paginator.count == 2
    assert paginator.num_pages == 2


def export(client: Client, query: str) -> list[dict[str, str]]:
    response = client.get(f"{LIST}export/?{query}")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="cdrs-')
    text = response.getvalue().decode()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
    return list(reader)


def test_export_follows_the_filters(client: Client, calls: dict[str, Cdr]) -> None:
    rows = export(client, "destination=Germany")
    assert [r["call_id"] for r in rows] == ["call-berlin", "call-busy"]
    berlin = rows[0]
    assert berlin["callee"] == "4930123"
    assert Decimal(berlin["sell_amount"]) == Decimal("0.02")
    assert berlin["started_at"] == T0.isoformat()
    assert berlin["attempts"] == "[]"
    # Names next to the ids: an operator reads "acme" and "carrier-a", not 1 and 1.
    assert (berlin["customer"], berlin["provider"]) == ("acme", "carrier-a")
    assert berlin["customer_id"] == str(calls["berlin"].customer_id)
    assert rows[1]["provider"] == ""
    assert {r["call_id"] for r in export(client, "")} == {
        "call-berlin",
        "call-busy",
        "call-london",
    }
    assert [r["call_id"] for r in export(client, "q=call-london")] == ["call-london"]


def test_list_links_the_export_with_its_filters(client: Client, calls: dict[str, Cdr]) -> None:
    body = client.get(f"{LIST}?sip=4xx").content.decode()
    assert f'href="{LIST}export/?sip=4xx"' in body


def test_export_needs_view_permission(admin_urls: None, calls: dict[str, Cdr]) -> None:
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create(username="staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(f"{LIST}export/").status_code == 403


@given(
    number=st.from_regex(r"[0-9]{0,12}", fullmatch=True),
    prefix=st.from_regex(r"[0-9]{1,6}", fullmatch=True),
)
def test_digit_prefix_range_is_startswith(number: str, prefix: str) -> None:
    condition = cdr_admin.digit_prefix("callee", prefix)
    bounds: dict[str, str] = dict(condition.children)  # type: ignore[arg-type]
    inside = bounds["callee__gte"] <= number and (
        "callee__lt" not in bounds or number < bounds["callee__lt"]
    )
    assert inside == number.startswith(prefix)


@pytest.mark.parametrize(
    ("prefix", "upper"),
    [("4930", "4931"), ("4939", "494"), ("499", "5"), ("99", None)],
    ids=["plain", "carry", "double-carry", "no-upper"],
)
def test_digit_prefix_bounds(prefix: str, upper: str | None) -> None:
    bounds: dict[str, str] = dict(cdr_admin.digit_prefix("callee", prefix).children)  # type: ignore[arg-type]
    assert bounds.get("callee__lt") == upper


def test_a_call_id_search_does_not_look_at_callers(client: Client, calls: dict[str, Cdr]) -> None:
    cdr("x@host", caller="x@host-not-a-call-id")
    assert listed(client, "q=x@host") == {"x@host"}
    # Without "@" the term is also a caller prefix.
    assert listed(client, "q=x") == {"x@host"}


@pytest.mark.parametrize(
    ("query", "choices"),
    [
        ("", ["January 2026", "February 2026", "March 2026"]),
        ("started_at__year=2026", ["January 2026", "February 2026", "March 2026"]),
        ("started_at__year=2026&started_at__month=3", ["March 1"]),
        ("started_at__year=2026&started_at__month=1", [f"January {d}" for d in range(20, 32)]),
    ],
    ids=["all", "year", "month", "month-from-first"],
)
def test_date_drilldown_offers_the_calendar_between_first_and_last_call(
    client: Client, calls: dict[str, Cdr], query: str, choices: list[str]
) -> None:
    from tollguard.web.cdr.templatetags.cdr_dates import hierarchy

    response = client.get(f"{LIST}?{query}")
    context = hierarchy(response.context["cl"])
    assert [c["title"] for c in context["choices"]] == choices
    for choice in choices[:1]:
        assert choice in response.content.decode()


def test_the_lean_table_is_the_admins_own(
    admin_urls: None, superuser: Any, calls: dict[str, Cdr]
) -> None:
    from django.contrib.admin.templatetags.admin_list import result_list

    from tollguard.web.cdr.templatetags import cdr_results

    # Empty text, an address, digits, decimals, a missing relation and markup to escape.
    cdr(
        "call-odd",
        None,
        caller='<b>"o\'dd"</b> & co',
        callee="",
        destination="",
        sell_amount=Decimal("-1.5"),
        margin=Decimal("123456.000001"),
        duration_ms=1_234_567,
        started_at=T0 + timedelta(hours=1, microseconds=7),
    )
    site_admin = admin.site._registry[Cdr]
    # Sorted by a column and filtered: the links keep both (preserved filters).
    request = RequestFactory().get(LIST, {"o": "4", "sip": "2xx"})
    request.user = superuser
    changelist = site_admin.get_changelist_instance(request)
    assert cdr_results._lean_shape(changelist) is not None
    ours = cdr_results.cdr_result_list(changelist)
    django: dict[str, Any] = result_list(changelist)
    assert ["".join(map(str, row)) for row in ours["results"]] == [
        "".join(map(str, row)) for row in django["results"]
    ]
    assert len(ours["results"]) == 2  # the 2xx calls: berlin and the odd one
    assert ours["result_headers"] == django["result_headers"]
    assert ours["num_sorted_fields"] == django["num_sorted_fields"]


def test_a_list_the_lean_table_cannot_render_falls_back(
    admin_urls: None, superuser: Any, calls: dict[str, Cdr], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tollguard.web.cdr.templatetags import cdr_results

    site_admin = admin.site._registry[Cdr]
    monkeypatch.setattr(site_admin, "list_display", ("started_at", "__str__", "attempts"))
    request = RequestFactory().get(LIST)
    request.user = superuser
    changelist = site_admin.get_changelist_instance(request)
    assert cdr_results._lean_shape(changelist) is None
    rows = cdr_results.cdr_result_list(changelist)["results"]
    assert len(rows) == 3
    assert any("call-berlin 4930123 200" in "".join(map(str, row)) for row in rows)


def test_the_list_shows_what_an_operator_reads_a_cdr_for(client: Client) -> None:
    acme = factories.customer("acme")
    provider = factories.provider("carrier-a")
    cdr(
        "call-answered",
        acme,
        started_at=T0 + timedelta(seconds=7),
        answered_at=T0 + timedelta(seconds=9),
        duration_ms=65_400,
        billed_s=66,
        provider=provider,
        sell_amount=Decimal("0.022000"),
        cost_amount=Decimal("0.008800"),
        margin=Decimal("0.013200"),
        cost_currency="EUR",
    )
    cdr(
        "call-across",
        acme,
        started_at=T0 + timedelta(seconds=8),
        answered_at=T0 + timedelta(seconds=9),
        duration_ms=3_725_000,
        provider=provider,
        sell_amount=Decimal("1.000001"),
        sell_currency="USD",
        cost_amount=Decimal("0.5"),
        cost_currency="EUR",
        margin=None,
    )
    page = client.get(LIST).content.decode()
    headers = ["Started at", "Duration", "Sell", "Cost", "Margin", "Provider"]
    assert all(f">{header}</a>" in page for header in headers), page[:3000]
    assert "2026-03-01 12:00:07" in page  # to the second, not "March 1, 2026, noon"
    assert '<td class="field-duration">1:05</td>' in page
    assert '<td class="field-duration">1:02:05</td>' in page
    assert '<td class="field-sell">0.0220 EUR</td>' in page
    assert '<td class="field-cost">0.0088 EUR</td>' in page
    assert '<td class="field-margin_shown">0.0132 EUR</td>' in page
    # Sold in USD over a cost in EUR (before routing refused it): no margin at all.
    assert '<td class="field-sell">1.000001 USD</td>' in page
    assert '<td class="field-cost">0.5000 EUR</td>' in page
    assert '<td class="field-margin_shown">-</td>' in page
    assert '<td class="field-provider nowrap">carrier-a</td>' in page


def test_money_and_clock() -> None:
    assert cdr_admin.money(Decimal("0.020000"), "EUR") == "0.0200 EUR"
    assert cdr_admin.money(Decimal("0.012345"), "EUR") == "0.012345 EUR"
    assert cdr_admin.money(Decimal("12"), "") == "12.0000"
    assert cdr_admin.money(None, "EUR") is None
    assert [cdr_admin.clock(ms) for ms in (0, 999, 59_999, 60_000, 3_599_999, 3_600_000)] == [
        "0:00",
        "0:00",
        "0:59",
        "1:00",
        "59:59",
        "1:00:00",
    ]
