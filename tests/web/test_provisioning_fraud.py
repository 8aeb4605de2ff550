"""``tollguard load``: fraud policies of customers and accounts, gateway limits."""

from __future__ import annotations

import textwrap
from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from tollguard.domain.plan import CallLimits, DestinationMatch, DestinationRule, FraudAction
from tollguard.web.adapters import DbPlanSource
from tollguard.web.fraud.models import FraudPolicy, GatewayLimits
from tollguard.web.provisioning import PlanFileError, load_plan_file

pytestmark = pytest.mark.usefixtures("db")

REALM = "tollguard.test"

PLAN = """
providers:
  - name: carrier-a
    gateways:
      - name: gw-a1
        host: 192.0.2.10
        limits: {max_concurrent: 30, calls_per_second: 5}
customers:
  - name: acme
    fraud:
      limits:
        max_concurrent: 10
        calls_per_day: 2000
        spend_per_day: "200.00"
        max_price_per_minute: "1.50"
      destinations:
        - deny: country CU
        - allow: prefix 5399
          note: the office in Havana
      velocity: {action: suspend_account, suspend_s: 3600}
    accounts:
      - username: alice
        password: correct horse battery
        fraud:
          caller_ranges: ["4420794600", 442079460000-442079460099]
          source_countries: [gb, IE]
          allow_anonymous: true
          quiet_hours:
            - {days: "01234", start: "22:00", end: "06:00", timezone: Europe/London}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_policies_load_reach_the_plan_and_load_again_unchanged(tmp_path: Path) -> None:
    report = load_plan_file(write(tmp_path, PLAN), realm=REALM)
    assert report.counts["fraud"].created == 3
    fraud = DbPlanSource().load().fraud
    acme = next(iter(fraud.customers.values()))
    assert acme.limits == CallLimits(
        max_concurrent=10,
        calls_per_day=2000,
        spend_per_day=Decimal("200.00"),
        max_price_per_minute=Decimal("1.50"),
    )
    assert acme.destination_rules == (
        DestinationRule(False, DestinationMatch.COUNTRY, "CU"),
        DestinationRule(True, DestinationMatch.PREFIX, "5399", note="the office in Havana"),
    )
    assert acme.velocity is not None
    assert (acme.velocity.action, acme.velocity.suspend_s) == (FraudAction.SUSPEND_ACCOUNT, 3600)
    alice = next(iter(fraud.accounts.values()))
    assert alice.caller_ranges == ("4420794600", "442079460000-442079460099")
    assert alice.source_countries == ("GB", "IE")
    assert alice.allow_anonymous
    [window] = alice.quiet_hours
    assert (window.days, window.start, window.end, window.timezone) == (
        frozenset({0, 1, 2, 3, 4}),
        time(22),
        time(6),
        "Europe/London",
    )
    assert next(iter(fraud.gateways.values())).max_concurrent == 30

    again = load_plan_file(write(tmp_path, PLAN), realm=REALM)
    assert again.counts["fraud"].unchanged == 3
    assert not again.changed


def test_a_changed_policy_replaces_its_rules(tmp_path: Path) -> None:
    load_plan_file(write(tmp_path, PLAN), realm=REALM)
    changed = PLAN.replace("        - deny: country CU\n", "").replace(
        "max_concurrent: 10", "max_concurrent: 12"
    )
    report = load_plan_file(write(tmp_path, changed), realm=REALM)
    assert report.counts["fraud"].updated == 1
    policy = FraudPolicy.objects.get(customer__name="acme")
    assert policy.max_concurrent == 12
    assert list(policy.destination_rules.values_list("value", flat=True)) == ["5399"]
    assert GatewayLimits.objects.get().calls_per_second == 5


def test_every_bad_value_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = """
    customers:
      - name: acme
        fraud:
          limits: {max_concurrent: -1, spend_per_day: "lots", calls_per_hour: 1.5}
          destinations:
            - deny: country CUB
            - allow: kind expensive
            - deny: prefix 88a
            - allow: prefix 44
              deny: prefix 4420
            - block: prefix 1
          caller_ranges: ["44x"]
          source_countries: [GBR]
          quiet_hours:
            - {start: "25:00", end: "06:00", timezone: Mars/Olympus}
          velocity: {action: shout}
          colour: red
    """
    with pytest.raises(PlanFileError) as info:
        load_plan_file(write(tmp_path, bad), realm=REALM)
    errors = info.value.errors
    where = "customers[0] 'acme'.fraud"
    expected = [
        f"plan.yaml:18: {where}: unknown key 'colour'",
        f"plan.yaml:5: {where}.limits.max_concurrent: -1 is not between 0 and 2147483647",
        f"plan.yaml:5: {where}.limits.calls_per_hour: expected an integer, got 1.5",
        f"plan.yaml:5: {where}.limits.spend_per_day: 'lots' is not an amount",
        f"plan.yaml:13: {where}.caller_ranges[0]: '44x' is not a number prefix"
        " or a range 'first-last' of numbers",
        f"plan.yaml:14: {where}.source_countries[0]: 'GBR' is longer than 2 characters",
        f"plan.yaml:17: {where}.velocity.action: 'shout' is not one of alert, block, "
        "suspend_account, suspend_customer",
        f"plan.yaml:7: {where}.destinations[0].deny: 'CUB' is not a two-letter country code or 001",
        f"plan.yaml:9: {where}.destinations[2].deny: '88a' is not a digit prefix",
        f"plan.yaml:10: {where}.destinations[3]: give exactly one of 'allow' or 'deny', e.g. "
        "deny: kind premium",
        f"plan.yaml:12: {where}.destinations[4]: unknown key 'block'",
        f"plan.yaml:16: {where}.quiet_hours[0].start: expected a time such as '22:00', got '25:00'",
        f"plan.yaml:16: {where}.quiet_hours[0].timezone: unknown time zone 'Mars/Olympus'",
    ]
    for message in expected:
        assert message in errors, (message, errors)
    assert any(
        e.startswith(f"plan.yaml:8: {where}.destinations[1].allow: 'expensive' is not one of")
        for e in errors
    )
    assert not FraudPolicy.objects.exists()


def test_an_amount_the_database_cannot_hold_is_reported_with_its_path(tmp_path: Path) -> None:
    """Amounts are stored with 8 digits before the point and counts as integers: a larger
    one is refused by the file's validation, with its path, not by the database after
    the fact."""
    text = """
    customers:
      - name: acme
        fraud:
          limits: {spend_per_day: "100000000", spend_per_hour: "99999999.9999",
                   calls_per_day: 2147483648, calls_per_hour: 2147483647}
          velocity: {spend_min: 123456789}
    """
    with pytest.raises(PlanFileError) as info:
        load_plan_file(write(tmp_path, text), realm=REALM)
    where = "customers[0] 'acme'.fraud"
    assert list(info.value.errors) == [
        f"plan.yaml:6: {where}.limits.calls_per_day: 2147483648 is not between 0 and 2147483647",
        f"plan.yaml:5: {where}.limits.spend_per_day: '100000000' is too large (at most 8 "
        "digits before the point)",
        f"plan.yaml:7: {where}.velocity.spend_min: 123456789 is too large (at most 8 digits "
        "before the point)",
    ]
    assert not FraudPolicy.objects.exists()
