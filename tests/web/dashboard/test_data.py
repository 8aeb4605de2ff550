"""Dashboard figures from known CDRs, through the selectors and the JSON endpoint."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client, override_settings

from tollguard.web.cdr.models import Cdr
from tollguard.web.customers.models import Customer
from tollguard.web.dashboard import selectors
from tollguard.web.security.models import SecurityEvent

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

UNTIL = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URLS = "tests.web.admin.urls"
DATA = "/hidden/cdr/cdr/dashboard/data/"
PAGE = "/hidden/cdr/cdr/dashboard/"


def cdr(
    customer: Customer | None,
    minutes_ago: float,
    *,
    talk_s: int = 0,
    sip_code: int = 200,
    margin: str | None = "0",
    **values: Any,
) -> Cdr:
    started = UNTIL - timedelta(minutes=minutes_ago)
    answered = started if talk_s else None
    fields: dict[str, Any] = {
        "margin": None if margin is None else Decimal(margin),
        "sell_amount": Decimal(margin or 0) * 2,
        "cost_amount": Decimal(margin or 0),
        "cost_currency": "EUR" if values.get("provider") else "",
    }
    fields.update(values)
    return Cdr.objects.create(
        call_id=f"c-{minutes_ago}-{values.get('destination', '')}-{talk_s}",
        started_at=started,
        answered_at=answered,
        ended_at=started + timedelta(seconds=talk_s),
        duration_ms=talk_s * 1000,
        customer=customer,
        source_ip="192.0.2.1",
        source_port=5060,
        sip_code=sip_code if not talk_s else 200,
        hangup_side="caller",
        **fields,
    )


@pytest.fixture
def traffic() -> dict[str, Any]:
    """Within the last hour: acme 3 calls (2 answered, 60 s and 30 s), zeta 1 failed."""
    acme, zeta = factories.customer("acme"), factories.customer("zeta")
    provider = factories.provider("carrier-a")
    cdr(acme, 50, talk_s=60, margin="0.10", destination="Germany", provider=provider)
    cdr(acme, 50.5, talk_s=30, margin="0.05", destination="Germany", provider=provider)
    cdr(acme, 10, sip_code=486, destination="France", provider=provider)
    cdr(zeta, 0.5, sip_code=503, destination="Germany")  # ended 30 s before UNTIL
    cdr(acme, 90, talk_s=600, margin="9", destination="Spain")  # before the last hour
    cdr(acme, -5, talk_s=600, margin="9", destination="Spain")  # after UNTIL
    return {"acme": acme, "zeta": zeta, "provider": provider}


def test_totals_over_the_last_hour(traffic: dict[str, Any]) -> None:
    data = selectors.dashboard_data("1h", UNTIL)
    assert data["since"] == (UNTIL - timedelta(hours=1)).isoformat()
    assert data["totals"] == {
        "calls": 4,
        "answered": 2,
        "asr": "50.00",
        "acd_s": "45.0",
        "money": [{"currency": "EUR", "sell": "0.3000", "cost": "0.1500", "margin": "0.1500"}],
        "without_margin": 0,
    }


def test_money_is_summed_per_currency_and_never_across(traffic: dict[str, Any]) -> None:
    """A customer selling in USD over a provider costing in EUR (as the switch wrote it
    before routing refused such a pair): its sell counts in USD, its cost in EUR, and
    it has no margin; nothing of it is added to the EUR margin."""
    usd = factories.customer("usd-shop")
    cdr(
        usd,
        20,
        talk_s=60,
        destination="Germany",
        provider=traffic["provider"],
        sell_amount=Decimal("0.50"),
        sell_currency="USD",
        cost_amount=Decimal("0.20"),
        cost_currency="EUR",
        margin=None,
    )
    cdr(
        usd,
        21,
        talk_s=60,
        destination="Germany",
        sell_amount=Decimal("0.40"),
        sell_currency="USD",
        cost_amount=Decimal("0.10"),
        cost_currency="USD",
        margin=Decimal("0.30"),
    )
    totals = selectors.dashboard_data("1h", UNTIL)["totals"]
    assert totals["money"] == [
        {"currency": "EUR", "sell": "0.3000", "cost": "0.3500", "margin": "0.1500"},
        {"currency": "USD", "sell": "0.9000", "cost": "0.1000", "margin": "0.3000"},
    ]
    assert totals["without_margin"] == 1
    by_customer = {
        r["name"]: r["margins"] for r in selectors.dashboard_data("1h", UNTIL)["by_customer"]
    }
    assert by_customer["usd-shop"] == [{"currency": "USD", "amount": "0.3000"}]
    assert by_customer["acme"] == [{"currency": "EUR", "amount": "0.1500"}]


def test_a_past_period_has_no_live_figures(traffic: dict[str, Any]) -> None:
    live = selectors.dashboard_data("1h", UNTIL)["live"]
    assert live["available"] is False
    assert "ending now" in live["note"]
    assert live["calls_last_minute"] == 1


def status_file(tmp_path: Path, **values: Any) -> Path:
    path = tmp_path / "switch-status.json"
    document = {
        "pid": 4242,
        "active_calls": 7,
        "calls_total": 1000,
        "calls_per_second": 12.5,
        "started_at": 900.0,
        "updated_at": 1000.0,
        "interval_s": 1.0,
    }
    path.write_text(json.dumps(document | values))
    return path


def test_live_state_from_a_fresh_status(tmp_path: Path) -> None:
    path = status_file(tmp_path)
    assert selectors.live_state(path, now=1002.0) == {
        "available": True,
        "active_calls": 7,
        "calls_per_second": "12.50",
        "handler_errors": 0,  # a switch that does not report them has none to show
        "bindings": 0,
        "registered_accounts": 0,
    }
    path = status_file(tmp_path, handler_errors=3, bindings=12, registered_accounts=9)
    state = selectors.live_state(path, now=1002.0)
    assert (state["handler_errors"], state["bindings"], state["registered_accounts"]) == (3, 12, 9)


@pytest.mark.parametrize(
    ("contents", "now", "note"),
    [
        (None, 1000.0, "not running"),
        ({}, 1010.0, "has not reported for 10 s"),
        ("{broken", 1000.0, "cannot be read"),
        ({"active_calls": "many"}, 1000.0, "cannot be read"),
        ({"bindings": "lots"}, 1000.0, "cannot be read"),
    ],
    ids=["missing", "stale", "corrupt", "wrong-type", "wrong-bindings"],
)
def test_live_state_says_why_it_is_missing(
    tmp_path: Path, contents: Any, now: float, note: str
) -> None:
    if contents is None:
        path = tmp_path / "absent.json"
    elif isinstance(contents, str):
        path = tmp_path / "broken.json"
        path.write_text(contents)
    else:
        path = status_file(tmp_path, **contents)
    state = selectors.live_state(path, now)
    assert state["available"] is False
    assert note in state["note"]


@pytest.mark.usefixtures("urls")
def test_the_current_dashboard_shows_the_switchs_live_state(
    tmp_path: Path, traffic: dict[str, Any]
) -> None:
    data_dir = tmp_path / "data"
    deployment = dataclasses.replace(settings.TOLLGUARD, data_dir=data_dir)
    status_file(tmp_path, updated_at=time.time(), bindings=4, registered_accounts=3)
    (data_dir / "run").mkdir(parents=True)
    (tmp_path / "switch-status.json").rename(deployment.switch_status_path)
    with override_settings(TOLLGUARD=deployment):
        live = staff("view_cdr").get(DATA, {"period": "1h"}).json()["live"]
    assert live["available"] is True
    assert live["active_calls"] == 7
    assert live["calls_per_second"] == "12.50"
    assert (live["bindings"], live["registered_accounts"]) == (4, 3)
    assert "calls_last_minute" in live


def test_breakdowns_per_customer_provider_and_destination(traffic: dict[str, Any]) -> None:
    data = selectors.dashboard_data("1h", UNTIL)
    acme = traffic["acme"]
    assert data["by_customer"] == [
        {
            "key": str(acme.pk),
            "name": "acme",
            "calls": 3,
            "answered": 2,
            "asr": "66.67",
            "acd_s": "45.0",
            "margins": [{"currency": "EUR", "amount": "0.1500"}],
        },
        {
            "key": str(traffic["zeta"].pk),
            "name": "zeta",
            "calls": 1,
            "answered": 0,
            "asr": "0.00",
            "acd_s": "0.0",
            "margins": [{"currency": "EUR", "amount": "0.0000"}],
        },
    ]
    assert [(r["name"], r["calls"]) for r in data["by_provider"]] == [
        ("carrier-a", 3),
        ("(none)", 1),
    ]
    assert [(r["name"], r["calls"], r["asr"]) for r in data["by_destination"]] == [
        ("Germany", 3, "66.67"),
        ("France", 1, "0.00"),
    ]


def test_series_is_zero_filled_per_minute(traffic: dict[str, Any]) -> None:
    series = selectors.dashboard_data("1h", UNTIL)["series"]
    assert len(series) == 60
    assert series[0]["start"] == (UNTIL - timedelta(hours=1)).isoformat()
    by_start = {b["start"]: b for b in series}
    ten = by_start[(UNTIL - timedelta(minutes=10)).isoformat()]
    assert (ten["calls"], ten["answered"], ten["cps"], ten["asr"]) == (1, 0, "0.017", "0.00")
    # 50 and 50.5 minutes ago fall in two buckets: 11:09:30 and 11:10:00.
    assert by_start[(UNTIL - timedelta(minutes=51)).isoformat()]["calls"] == 1
    assert by_start[(UNTIL - timedelta(minutes=50)).isoformat()]["calls"] == 1
    assert sum(b["calls"] for b in series) == 4
    # A minute without calls has no ASR: the chart leaves a gap instead of a 0 % dip.
    quiet = by_start[(UNTIL - timedelta(minutes=30)).isoformat()]
    assert (quiet["calls"], quiet["asr"]) == (0, None)


@pytest.mark.parametrize(
    ("period", "buckets", "calls"),
    [("1h", 60, 4), ("24h", 24, 5), ("7d", 168, 5), ("30d", 30, 5)],
    ids=["1h", "24h", "7d", "30d"],
)
def test_periods(traffic: dict[str, Any], period: str, buckets: int, calls: int) -> None:
    data = selectors.dashboard_data(period, UNTIL)
    assert data["totals"]["calls"] == calls
    assert len(data["series"]) in {buckets, buckets + 1}
    assert sum(b["calls"] for b in data["series"]) == calls


def test_security_events_newest_first() -> None:
    SecurityEvent.objects.create(
        at=UNTIL - timedelta(hours=1),
        level=30,
        event="honeypot login",
        address="203.0.113.9",
        user="admin",
    )
    SecurityEvent.objects.create(
        at=UNTIL, level=30, event="admin lockout", address="203.0.113.7", user="root"
    )
    SecurityEvent.objects.create(
        at=UNTIL, level=20, event="admin login", address="198.51.100.1", user="ops"
    )
    security = selectors.dashboard_data("1h", UNTIL)["security"]
    assert security["available"] is True
    events = [(e["kind"], e["address"], e["username"]) for e in security["events"]]
    # Warnings only: a sign-in is in the admin's list, not among these.
    assert events[:2] == [
        ("admin lockout", "203.0.113.7", "root"),
        ("honeypot login", "203.0.113.9", "admin"),
    ]


def test_dashboard_queries_do_not_grow_with_traffic(traffic: dict[str, Any]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        selectors.dashboard_data("24h", UNTIL)
    for minutes in range(60):
        cdr(traffic["acme"], minutes, talk_s=5, destination=f"D{minutes}")
    with CaptureQueriesContext(connection) as many:
        selectors.dashboard_data("24h", UNTIL)
    assert len(many.captured_queries) == len(few.captured_queries)


# -- the endpoint and the page --------------------------------------------------------


@pytest.fixture
def urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=URLS, ALLOWED_HOSTS=["testserver"]):
        yield


def staff(*codenames: str, superuser: bool = False) -> Client:
    user = get_user_model().objects.create(username="staff", is_staff=True, is_superuser=superuser)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.usefixtures("urls")
def test_endpoint_returns_the_selectors_data(traffic: dict[str, Any]) -> None:
    response = staff("view_cdr").get(DATA, {"period": "1h", "until": UNTIL.isoformat()})
    assert response.status_code == 200
    assert response.json() == selectors.dashboard_data("1h", UNTIL)


@pytest.mark.usefixtures("urls")
def test_endpoint_refuses_a_bad_end() -> None:
    response = staff("view_cdr").get(DATA, {"until": "yesterday"})
    assert response.status_code == 400
    assert "until" in response.json()["error"]


@pytest.mark.usefixtures("urls")
@pytest.mark.parametrize("url", [PAGE, DATA], ids=["page", "data"])
def test_staff_without_cdr_permission_is_refused(url: str) -> None:
    assert staff().get(url).status_code == 403


@pytest.mark.usefixtures("urls")
@pytest.mark.parametrize("url", [PAGE, DATA], ids=["page", "data"])
def test_anonymous_visitors_are_sent_to_the_login(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/hidden/login/")


@pytest.mark.usefixtures("urls")
def test_page_points_its_script_at_the_endpoint() -> None:
    response = staff("view_cdr").get(PAGE, {"period": "7d"})
    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-url="{DATA}?period=7d"' in body
    assert 'src="/static/dashboard/vendor/chart.umd.min.js"' in body
    assert 'src="/static/dashboard/dashboard.js"' in body
    assert '<option value="7d" selected>' in body


def test_a_long_call_that_just_ended_counts_as_live() -> None:
    acme = factories.customer("acme", max_call_duration_s=3 * 3600)
    long_call = cdr(acme, 170, talk_s=170 * 60 - 30)  # started 2 h 50 min ago
    assert long_call.ended_at == UNTIL - timedelta(seconds=30)
    assert selectors.calls_ended_between(UNTIL - timedelta(minutes=1), UNTIL) == 1


@pytest.mark.parametrize(("period", "seconds"), [("1h", 60), ("24h", 300), ("30d", 300)])
def test_recent_data_is_shared_for_one_interval(period: str, seconds: int) -> None:
    from django.core.cache import cache

    from tollguard.web.dashboard import views

    cache.clear()
    assert views.cache_seconds(period) == seconds
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    first = views._recent_data(period, start + timedelta(seconds=1))
    assert first["until"] == start.isoformat()
    cdr(factories.customer("acme"), 0.5)  # a new call inside the period
    same = views._recent_data(period, start + timedelta(seconds=seconds - 1))
    assert same == first
    later = views._recent_data(period, start + timedelta(seconds=seconds))
    assert later["until"] == (start + timedelta(seconds=seconds)).isoformat()
    assert later["totals"]["calls"] == first["totals"]["calls"] + 1
    cache.clear()


@pytest.mark.usefixtures("urls")
@pytest.mark.parametrize(("codenames", "linked"), [((), False), (("view_cdr",), True)])
def test_admin_index_links_the_dashboard_for_cdr_viewers(
    codenames: tuple[str, ...], linked: bool
) -> None:
    body = staff(*codenames).get("/hidden/").content.decode()
    assert (f'href="{PAGE}"' in body) is linked


def test_fraud_counts_and_events_on_the_dashboard() -> None:
    from tollguard.domain.events import Text, log_event
    from tollguard.web.fraud import services
    from tollguard.web.fraud.models import FraudEvent

    services.add_ban("203.0.113.9", duration=None, now=UNTIL)
    services.add_ban("203.0.113.10", duration=timedelta(hours=1), now=UNTIL - timedelta(days=1))
    services.suspend("account:7", "velocity", duration=None)
    # The switch's fraud engine logs each block, then the event reaches the database.
    log_event(
        "fraud block",
        "198.51.100.4",
        ("customer", 3),
        ("account", 7),
        ("rule", "destination-denied"),
        ("callee", Text("881612345678")),
    )
    FraudEvent.objects.create(
        at=UNTIL,
        rule="destination-denied",
        action="block",
        source="198.51.100.4",
        callee="881612345678",
        detail="satellite",
    )
    FraudEvent.objects.create(
        at=UNTIL, rule="concurrent-calls", action="block", detail="x", released_at=UNTIL
    )
    data = selectors.dashboard_data("1h", UNTIL)
    assert data["fraud"] == {
        "available": True,
        "open_events": 1,
        "active_bans": 1,
        "suspensions": 1,
    }
    # Security events come from the security log, the switch's lines included.
    events = {(e["kind"], e["address"]): e["detail"] for e in data["security"]["events"]}
    assert "reason=operator" in events["sip ban", "203.0.113.9"]
    assert "rule=destination-denied" in events["fraud block", "198.51.100.4"]
