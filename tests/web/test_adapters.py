"""The domain ports on the ORM: plan snapshots, CDR batches and CDR export."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tollguard.domain.cdr import Attempt, CallDirection, Cdr, HangupSide
from tollguard.domain.plan import (
    Account,
    AclEntry,
    Customer,
    Gateway,
    NumberRules,
    PlanData,
    PlanSource,
    Provider,
    Rate,
    RateCard,
    Rounding,
    RoutingStrategy,
    SipTransport,
)
from tollguard.web import adapters
from tollguard.web.adapters import DbCdrSink, DbPlanSource, PlanChangedError, export_cdrs
from tollguard.web.cdr import models as cdr_models
from tollguard.web.cdr.selectors import EXPORT_COLUMNS, EXPORT_FIELDS, from_row
from tollguard.web.core.services import bump_config_version

from . import factories

pytestmark = pytest.mark.usefixtures("db")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_public_names() -> None:
    assert sorted(adapters.__all__) == [
        "BalancesChangedError",
        "DbBalanceSource",
        "DbBanStore",
        "DbCdrSink",
        "DbFraudEventStore",
        "DbPlanSource",
        "DbSuspensionStore",
        "PlanChangedError",
        "export_cdrs",
    ]
    for name in adapters.__all__:
        assert hasattr(adapters, name)


def test_plan_source_satisfies_the_port() -> None:
    source: PlanSource = DbPlanSource()
    assert source.current_version() == source.load().version


def test_current_version_follows_changes() -> None:
    source = DbPlanSource()
    before = source.current_version()
    factories.customer()
    assert source.current_version() == before + 1


def test_plan_round_trip_into_domain_types() -> None:
    sell = factories.rate_card("retail", currency="GBP", rounding="up", decimals=2)
    cost = factories.rate_card("carrier-a", kind="cost")
    factories.rate(sell, "44", "0.020000", destination="UK", connect_fee=Decimal("0.05"))
    factories.rate(
        sell,
        "447",
        "0.10",
        destination="UK mobile",
        initial_increment=30,
        next_increment=6,
        effective_from=T0,
        effective_until=T0 + timedelta(days=30),
    )
    factories.rate(cost, "44", "0.008")
    provider = factories.provider(cost_card=cost, priority=5, weight=30, enabled=False)
    gw = factories.gateway(
        provider,
        "gw-a1",
        port=5080,
        transport="tls",
        strip_digits=2,
        add_prefix="+",
        max_channels=30,
    )
    customer = factories.customer(
        sell_card=sell,
        strategy="weight",
        allow_negative_margin=True,
        max_call_duration_s=600,
        country_code="44",
        national_prefix="0",
        international_prefix="00",
        strip_prefix="9",
    )
    customer.providers.add(provider)
    account = factories.account(customer, "alice", "secret")
    acl = factories.acl(customer, "2001:db8::/48", "123")

    plan = DbPlanSource().load()

    assert isinstance(plan, PlanData)
    by_name = {card.name: card for card in plan.rate_cards}
    assert by_name["retail"] == RateCard(
        id=sell.pk,
        name="retail",
        currency="GBP",
        rounding=Rounding.UP,
        decimals=2,
        rates=(
            Rate("44", "UK", Decimal("0.02"), Decimal("0.05"), 60, 60, None, None),
            Rate(
                "447",
                "UK mobile",
                Decimal("0.1"),
                Decimal(0),
                30,
                6,
                T0,
                T0 + timedelta(days=30),
            ),
        ),
    )
    assert isinstance(by_name["retail"].rates[0].price_per_minute, Decimal)
    assert by_name["carrier-a"].rates == (Rate("44", "", Decimal("0.008")),)
    assert plan.providers == (
        Provider(
            id=provider.pk,
            name="carrier-a",
            enabled=False,
            cost_card_id=cost.pk,
            priority=5,
            weight=30,
        ),
    )
    assert plan.gateways == (
        Gateway(
            id=gw.pk,
            provider_id=provider.pk,
            name="gw-a1",
            host="192.0.2.10",
            port=5080,
            transport=SipTransport.TLS,
            strip_digits=2,
            add_prefix="+",
            enabled=True,
            max_channels=30,
        ),
    )
    assert plan.customers == (
        Customer(
            id=customer.pk,
            name="acme",
            enabled=True,
            sell_card_id=sell.pk,
            strategy=RoutingStrategy.WEIGHT,
            allow_negative_margin=True,
            max_call_duration_s=600,
            number_rules=NumberRules("44", "0", "00", "9"),
            provider_ids=(provider.pk,),
        ),
    )
    assert plan.accounts == (
        Account(
            id=account.pk,
            customer_id=customer.pk,
            username="alice",
            ha1_md5=account.ha1_md5,
            ha1_sha256=account.ha1_sha256,
        ),
    )
    assert plan.acl == (
        AclEntry(
            id=acl.pk,
            customer_id=customer.pk,
            network=ipaddress.ip_network("2001:db8::/48"),
            tech_prefix="123",
        ),
    )
    mobile_from = by_name["retail"].rates[1].effective_from
    assert mobile_from is not None
    assert mobile_from.utcoffset() == timedelta(0)


def test_dids_extensions_and_inbound_cards_round_trip() -> None:
    from tollguard.domain.plan import Did, DidTarget, SipAddress
    from tollguard.domain.routing import build_plan
    from tollguard.web.customers.models import Did as DidRow

    inbound = factories.rate_card("inbound", kind="cost")
    factories.rate(inbound, "44", "0.002")
    provider = factories.provider(inbound_card=inbound)
    factories.gateway(provider)
    customer = factories.customer(currency="GBP")
    account = factories.account(customer, "alice", "secret")
    account.extension = "201"
    account.save()
    one = DidRow.objects.create(
        customer=customer, first="442071234567", account=account, price_per_minute="0.01"
    )
    block = DidRow.objects.create(
        customer=customer,
        first="442079990000",
        last="442079990999",
        target="trunk",
        trunk_host="198.51.100.7",
        trunk_port=5070,
        trunk_transport="tcp",
        failover_host="198.51.100.8",
        monthly_price="12.5",
        # Fields of other targets are kept in the row but never reach the plan.
        forward_to="442071234567",
    )
    forward = DidRow.objects.create(
        customer=customer, first="442070000001", target="did", forward_to="442071234567"
    )

    data = DbPlanSource().load()

    assert data.accounts[0].extension == "201"
    assert data.providers[0].inbound_card_id == inbound.pk
    assert data.dids == (
        Did(
            one.pk,
            customer.pk,
            "442071234567",
            account_id=account.pk,
            price_per_minute=Decimal("0.01"),
            currency="GBP",
        ),
        Did(
            block.pk,
            customer.pk,
            "442079990000",
            "442079990999",
            target=DidTarget.TRUNK,
            trunk=(
                SipAddress("198.51.100.7", 5070, SipTransport.TCP),
                SipAddress("198.51.100.8", 5060, SipTransport.UDP),
            ),
            monthly_price=Decimal("12.5"),
            currency="GBP",
        ),
        Did(
            forward.pk,
            customer.pk,
            "442070000001",
            target=DidTarget.DID,
            forward_to="442071234567",
            currency="GBP",
        ),
    )
    plan = build_plan(data)
    assert [d.id for d in plan.dids.resolve("442070000001")] == [forward.pk, one.pk]
    assert plan.dids.lookup("442079990123") == data.dids[1]
    assert plan.gateway_from("192.0.2.10") is not None


def test_a_did_change_moves_the_configuration_version() -> None:
    from tollguard.web.customers.models import Did as DidRow

    customer = factories.customer()
    before = DbPlanSource().current_version()
    row = DidRow.objects.create(
        customer=customer, first="33140000000", target="trunk", trunk_host="h"
    )
    assert DbPlanSource().current_version() > before
    middle = DbPlanSource().current_version()
    row.delete()
    assert DbPlanSource().current_version() > middle


def test_plan_retries_when_the_version_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = iter([1, 2, 2, 2])
    monkeypatch.setattr(adapters, "config_version", lambda: next(calls))
    plan = DbPlanSource().load()
    assert plan.version == 2


def test_plan_gives_up_when_the_version_never_settles(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = iter(range(100))
    monkeypatch.setattr(adapters, "config_version", lambda: next(counter))
    with pytest.raises(PlanChangedError, match="changed during each of 3 reads"):
        DbPlanSource(max_attempts=3).load()


def test_plan_version_is_the_config_version() -> None:
    version = bump_config_version()
    assert DbPlanSource().load().version == version


# CDRs.


def make_cdr(n: int, **values: object) -> Cdr:
    fields: dict[str, object] = {
        "call_id": f"call-{n}@192.0.2.1",
        "started_at": T0 + timedelta(minutes=n),
        "ended_at": T0 + timedelta(minutes=n, seconds=75),
        "answered_at": T0 + timedelta(minutes=n, seconds=5),
        "duration_ms": 70_000,
        "billed_s": 120,
        "customer_id": 11,
        "account_id": 12,
        "source_ip": "192.0.2.1",
        "source_port": 5070,
        "caller": "alice",
        "callee_raw": "00442079460000",
        "callee": "442079460000",
        "destination": "UK",
        "sip_code": 200,
        "sip_reason": "OK",
        "q850_cause": 16,
        "hangup_side": HangupSide.CALLER,
        "provider_id": 21,
        "gateway_id": 22,
        "sell_rate": Decimal("0.020000"),
        "sell_amount": Decimal("0.040000"),
        "cost_rate": Decimal("0.008000"),
        "cost_amount": Decimal("0.016000"),
        "sell_currency": "EUR",
        "cost_currency": "EUR",
        "margin": Decimal("0.024000"),
        "caller_user_agent": "Phone/1.0",
        "callee_user_agent": "Carrier/2.0",
        "attempts": (
            Attempt(31, 32, T0 + timedelta(minutes=n), 503, "Service Unavailable"),
            Attempt(21, 22, T0 + timedelta(minutes=n, seconds=1), 200),
        ),
    }
    fields.update(values)
    return Cdr(**fields)  # type: ignore[arg-type]


def test_cdr_sink_round_trip() -> None:
    cdrs = [
        make_cdr(1),
        make_cdr(
            2,
            answered_at=None,
            duration_ms=0,
            billed_s=0,
            sip_code=486,
            sell_rate=None,
            cost_rate=None,
            provider_id=None,
            gateway_id=None,
            attempts=(),
            hangup_side=HangupSide.CALLEE,
        ),
        make_cdr(3, source_ip="2001:db8::7", caller="Ω '\"; --", sell_amount=Decimal("1.5")),
        # An inbound call to a DID, delivered to a phone's contact after a trunk.
        make_cdr(
            4,
            direction=CallDirection.INBOUND,
            did="442071234567",
            attempts=(
                Attempt(None, None, T0, 503, "Service Unavailable", "sip:442071234567@192.0.2.9"),
                Attempt(None, None, T0, 200, "OK", "sip:desk@10.0.0.5:5062;transport=tcp"),
            ),
        ),
    ]
    DbCdrSink().write_batch(cdrs)
    stored = [from_row(row) for row in cdr_models.Cdr.objects.order_by("started_at")]
    assert stored == cdrs


def test_cdr_sink_writes_one_batch_in_one_statement() -> None:
    with CaptureQueriesContext(connection) as ctx:
        DbCdrSink().write_batch([make_cdr(n) for n in range(300)])
    # Django records an executemany as "<n> times: <sql>".
    inserts = [q["sql"] for q in ctx.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == 1
    assert inserts[0].startswith("300 times: INSERT")
    assert cdr_models.Cdr.objects.count() == 300


def test_cdr_sink_accepts_an_empty_batch() -> None:
    DbCdrSink().write_batch([])
    assert not cdr_models.Cdr.objects.exists()


def test_cdr_sink_keeps_ids_of_deleted_customers() -> None:
    DbCdrSink().write_batch([make_cdr(1, customer_id=99_999)])
    assert cdr_models.Cdr.objects.get().customer_id == 99_999


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, [0, 1, 2, 3]),
        (T0 + timedelta(minutes=1), None, [1, 2, 3]),
        (None, T0 + timedelta(minutes=2), [0, 1]),
        (T0 + timedelta(minutes=1), T0 + timedelta(minutes=3), [1, 2]),
        (T0 + timedelta(days=1), None, []),
    ],
    ids=["all", "since-inclusive", "until-exclusive", "window", "empty"],
)
def test_export_csv(since: datetime | None, until: datetime | None, expected: list[int]) -> None:
    DbCdrSink().write_batch([make_cdr(n) for n in (3, 0, 2, 1)])
    out = io.StringIO()
    count = export_cdrs("csv", since, until, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert count == len(expected)
    assert out.getvalue().splitlines()[0] == ",".join(EXPORT_COLUMNS)
    assert set(EXPORT_FIELDS) < set(EXPORT_COLUMNS)
    assert [row["call_id"] for row in rows] == [f"call-{n}@192.0.2.1" for n in expected]
    if rows:
        first = rows[0]
        assert first["sell_amount"] == "0.040000"
        assert first["hangup_side"] == "caller"
        assert datetime.fromisoformat(first["started_at"]) == T0 + timedelta(minutes=expected[0])
        assert json.loads(first["attempts"])[0]["sip_code"] == 503


def test_export_csv_writes_empty_cells_for_missing_values() -> None:
    DbCdrSink().write_batch([make_cdr(0, answered_at=None, sell_rate=None)])
    out = io.StringIO()
    export_cdrs("csv", None, None, out)
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["answered_at"] == ""
    assert row["sell_rate"] == ""


def test_export_json() -> None:
    DbCdrSink().write_batch([make_cdr(n) for n in range(3)])
    out = io.StringIO()
    assert export_cdrs("json", T0 + timedelta(minutes=1), None, out) == 2
    data = json.loads(out.getvalue())
    assert [item["call_id"] for item in data] == ["call-1@192.0.2.1", "call-2@192.0.2.1"]
    assert data[0]["margin"] == "0.024000"
    assert data[0]["attempts"][1] == {
        "provider_id": 21,
        "gateway_id": 22,
        "started_at": (T0 + timedelta(minutes=1, seconds=1)).isoformat(),
        "sip_code": 200,
        "reason": "",
        "target": "",
    }
    assert set(data[0]) == set(EXPORT_COLUMNS)
    assert {"customer", "account", "provider", "gateway"} <= set(data[0])


def test_export_json_with_nothing_is_an_empty_array() -> None:
    out = io.StringIO()
    assert export_cdrs("json", None, None, out) == 0
    assert json.loads(out.getvalue()) == []


def test_export_rejects_unknown_formats() -> None:
    with pytest.raises(ValueError, match="unknown CDR export format 'xml'"):
        export_cdrs("xml", None, None, io.StringIO())  # type: ignore[arg-type]
