"""Property tests: what goes into the database comes back out as the same domain value."""

from __future__ import annotations

import ipaddress
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from tollguard.domain.plan import Rate
from tollguard.web.adapters import DbPlanSource
from tollguard.web.customers.fields import parse_network
from tollguard.web.provisioning import load_plan_file

from . import factories

pytestmark = pytest.mark.usefixtures("django_database")

networks = st.one_of(
    st.builds(
        lambda addr, length: ipaddress.ip_network((addr, length), strict=False),
        st.ip_addresses(v=4),
        st.integers(0, 32),
    ),
    st.builds(
        lambda addr, length: ipaddress.ip_network((addr, length), strict=False),
        st.ip_addresses(v=6),
        st.integers(0, 128),
    ),
)


@given(networks)
@settings(max_examples=50, deadline=None)
def test_acl_networks_round_trip(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    assert parse_network(str(network).upper()) == network
    with transaction.atomic():
        factories.acl(factories.customer(), network.exploded)
        (entry,) = DbPlanSource().load().acl
        assert entry.network == network
        transaction.set_rollback(True)


prices = st.decimals(
    min_value=Decimal(0), max_value=Decimal("999999.999999"), places=6, allow_nan=False
)
rates = st.builds(
    Rate,
    prefix=st.from_regex(r"[1-9][0-9]{0,11}", fullmatch=True),
    destination=st.text(st.characters(codec="utf-8", exclude_categories=["C"]), max_size=20),
    price_per_minute=prices,
    connect_fee=prices,
    initial_increment=st.integers(0, 3600),
    next_increment=st.integers(1, 3600),
)


@given(st.lists(rates, max_size=30, unique_by=lambda r: r.prefix))
@settings(max_examples=30, deadline=None)
def test_csv_rates_round_trip_into_the_plan(declared: list[Rate]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = ["prefix,destination,price_per_minute,connect_fee,initial_increment,next_increment"]
        for rate in declared:
            name = '"' + rate.destination.replace('"', '""') + '"'
            lines.append(
                f"{rate.prefix},{name},{rate.price_per_minute},{rate.connect_fee},"
                f"{rate.initial_increment},{rate.next_increment}"
            )
        (folder / "rates.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / "plan.yaml").write_text("rate_cards:\n  - name: c\n    file: rates.csv\n")
        with transaction.atomic():
            load_plan_file(folder / "plan.yaml", realm="r")
            (card,) = DbPlanSource().load().rate_cards
            transaction.set_rollback(True)
    expected = {r.prefix: r for r in declared}
    assert {r.prefix: r for r in card.rates} == {
        prefix: Rate(
            prefix,
            rate.destination.strip(),
            rate.price_per_minute,
            rate.connect_fee,
            rate.initial_increment,
            rate.next_increment,
        )
        for prefix, rate in expected.items()
    }
