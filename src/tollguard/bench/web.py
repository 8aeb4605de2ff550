"""``tollguard bench web``: admin CDR list and CDR API latency over a large CDR table.

A throw-away data directory is initialised as ``tollguard init`` does it (production
settings, SQLite), then filled with ``cdrs`` synthetic CDRs spread over 20 customers,
5 providers and 60 days. The loader writes through the DB-API of Django's own
connection (``executemany`` in batches inside one transaction per batch): the ORM's
``bulk_create`` builds a model instance per row and is several times slower at this
size. The web app itself never does this; only the benchmark does.

Requests then go through the whole Django stack in process (every middleware, the
address rules, the second-factor check), with Django's test client:

* ``cdr_page``: the admin CDR changelist as a verified staff user, filtered by one
  customer and one day or month (``date_hierarchy``), on one of its first pages;
* ``cdr_api``: ``GET /api/v1/cdrs/`` with a bearer key, filtered by customer and a
  date range, first page.

Each is requested ``requests`` times after one warm-up; p50 and p95 are reported in
milliseconds. ``load_s`` is the time the loader took.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["run"]

_CUSTOMERS = 20
_PROVIDERS = 5
_DAYS = 60
_BATCH = 50_000
_START = datetime(2026, 1, 1, tzinfo=UTC)
_STAFF_USER = "bench-staff"


def run(
    cdrs: int = 5_000_000,
    requests: int = 50,
    seed: int = 1,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Load ``cdrs`` CDRs into a fresh data directory and time the CDR pages."""
    owned = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="tollguard-bench-web-")) if owned else data_dir
    assert root is not None
    try:
        from tollguard import datadir

        datadir.init_data_dir(root / "data", bind="127.0.0.1", sip_port=0, web_port=0)
        customers, providers = _configuration()
        started = time.perf_counter()
        _load_cdrs(cdrs, customers, providers, random.Random(seed))
        load_s = time.perf_counter() - started
        loaded = _count_cdrs()
        indexes = _cdr_indexes()
        rng = random.Random(seed + 1)
        page_ms = _measure(_admin_requests(customers, rng), requests)
        api_ms = _measure(_api_requests(customers, rng), requests)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "name": "web",
        "cdrs": loaded,
        "requests": requests,
        "cdr_page_p50_ms": round(statistics.median(page_ms), 2),
        "cdr_page_p95_ms": round(_p95(page_ms), 2),
        "cdr_api_p50_ms": round(statistics.median(api_ms), 2),
        "cdr_api_p95_ms": round(_p95(api_ms), 2),
        "load_s": round(load_s, 2),
        "cdr_indexes": indexes,
    }


def _p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def _configuration() -> tuple[list[int], list[int]]:
    from tollguard.web.carriers.models import Provider
    from tollguard.web.customers.models import Customer

    customers = [Customer.objects.create(name=f"bench-customer-{n}").pk for n in range(_CUSTOMERS)]
    providers = [Provider.objects.create(name=f"bench-provider-{n}").pk for n in range(_PROVIDERS)]
    return customers, providers


def _load_cdrs(count: int, customers: list[int], providers: list[int], rng: random.Random) -> None:
    from django.db import connection, transaction

    from tollguard.web.cdr.models import Cdr
    from tollguard.web.cdr.services import cdr_insert

    # One template row prepared by the fields themselves, so every column gets the value
    # and format the ORM would write; only the columns that vary are replaced per row.
    template = Cdr(
        call_id="",
        started_at=_START,
        ended_at=_START,
        source_ip="192.0.2.1",
        source_port=5060,
        sip_code=200,
        hangup_side="caller",
        sell_rate=Decimal("0.010000"),
        sell_amount=Decimal("0.010000"),
        cost_rate=Decimal("0.005000"),
        cost_amount=Decimal("0.005000"),
        margin=Decimal("0.005000"),
    )
    insert = cdr_insert(connection)
    base = insert.row([getattr(template, name) for name in insert.columns])
    slot = {name: index for index, name in enumerate(insert.columns)}
    sql = insert.sql

    spread_s = _DAYS * 86_400
    codes = (200, 200, 200, 200, 200, 486, 487, 404, 503, 480)
    destinations = ("Germany Berlin", "Germany Mobile", "France Paris", "USA New York", "UK London")

    def rows(first: int, last: int) -> Iterator[list[Any]]:
        for n in range(first, last):
            row = list(base)
            started = _START + timedelta(seconds=spread_s * n / count)
            code = codes[n % len(codes)]
            billed = rng.randrange(1, 600) if code == 200 else 0
            row[slot["call_id"]] = f"bench-{n}"
            row[slot["started_at"]] = connection.ops.adapt_datetimefield_value(started)
            row[slot["ended_at"]] = connection.ops.adapt_datetimefield_value(
                started + timedelta(seconds=billed + 5)
            )
            row[slot["answered_at"]] = (
                connection.ops.adapt_datetimefield_value(started + timedelta(seconds=5))
                if code == 200
                else None
            )
            row[slot["duration_ms"]] = billed * 1000
            row[slot["billed_s"]] = billed
            row[slot["customer_id"]] = customers[rng.randrange(len(customers))]
            row[slot["provider_id"]] = providers[rng.randrange(len(providers))]
            row[slot["callee"]] = f"49{rng.randrange(10**9, 10**10)}"
            row[slot["caller"]] = f"4930{rng.randrange(10**6, 10**7)}"
            row[slot["destination"]] = destinations[n % len(destinations)]
            row[slot["sip_code"]] = code
            yield row

    with connection.cursor() as cursor:
        # A throw-away database: durability does not matter while it is filled, and the
        # table's indexes are built once at the end instead of row by row (random
        # callers and callees make each insert a random walk through five of them).
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s"
            " AND sql IS NOT NULL",
            [Cdr._meta.db_table],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        for first in range(0, count, _BATCH):
            with transaction.atomic():
                cursor.executemany(sql, list(rows(first, min(first + _BATCH, count))))
        for _, create in indexes:
            cursor.execute(create)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("ANALYZE")


def _cdr_indexes() -> list[str]:
    """The CDR table's indexes as the measured database has them (the loader rebuilds them)."""
    from django.db import connection

    from tollguard.web.cdr.models import Cdr

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Cdr._meta.db_table)
    return sorted(
        name for name, info in constraints.items() if info["index"] and not info["primary_key"]
    )


def _count_cdrs() -> int:
    from tollguard.web.cdr.models import Cdr

    return Cdr.objects.count()


def _staff_client() -> Any:
    import django_otp
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_otp.plugins.otp_totp.models import TOTPDevice

    staff = get_user_model().objects.create_superuser(_STAFF_USER, password=None)
    device = TOTPDevice.objects.create(user=staff, name="bench", confirmed=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    # What otp.verify stores after a good code: the session counts as verified.
    session = client.session
    session[django_otp.DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def _admin_requests(customers: list[int], rng: random.Random) -> Callable[[], Any]:
    from django.urls import reverse

    client = _staff_client()
    url = reverse("admin:cdr_cdr_changelist")

    def request() -> Any:
        day = _START + timedelta(days=rng.randrange(_DAYS))
        query: dict[str, int] = {
            "customer__id__exact": customers[rng.randrange(len(customers))],
            "started_at__year": day.year,
            "started_at__month": day.month,
        }
        if rng.random() < 0.5:
            query["started_at__day"] = day.day
        page = rng.randrange(1, 4)
        if page > 1:
            query["p"] = page
        return client.get(url, query, secure=True)

    return request


def _api_requests(customers: list[int], rng: random.Random) -> Callable[[], Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tollguard.web.api.keys import create_api_key
    from tollguard.web.api.models import Scope

    owner = get_user_model().objects.get(username=_STAFF_USER)
    # Far above the requests made: the benchmark measures queries, not the throttle.
    key = create_api_key(
        owner=owner, name="bench", scopes=[Scope.READ_CDR], rate_per_minute=1_000_000
    )
    client = Client(HTTP_HOST="localhost")
    headers = {"authorization": f"Bearer {key.secret}"}

    def request() -> Any:
        first = _START + timedelta(days=rng.randrange(_DAYS - 7))
        query: dict[str, str | int] = {
            "customer": customers[rng.randrange(len(customers))],
            "started_after": first.isoformat(),
            "started_before": (first + timedelta(days=7)).isoformat(),
        }
        return client.get("/api/v1/cdrs/", query, headers=headers, secure=True)

    return request


def _measure(request: Callable[[], Any], count: int) -> list[float]:
    warm = request()
    if warm.status_code != 200:
        raise RuntimeError(f"benchmark request answered {warm.status_code}, not 200")
    samples: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        response = request()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"benchmark request answered {response.status_code}, not 200")
    return samples
