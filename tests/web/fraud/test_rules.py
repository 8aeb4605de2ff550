"""Fraud rules in the database reach the plan; the shipped defaults match the domain's."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tests.web import factories
from tollguard.domain.fraud import DEFAULT_DESTINATION_RULES
from tollguard.domain.plan import (
    CallLimits,
    DestinationMatch,
    DestinationRule,
    FraudAction,
    TimeWindow,
)
from tollguard.web.adapters import DbPlanSource
from tollguard.web.core.selectors import config_version
from tollguard.web.fraud import models, selectors

pytestmark = pytest.mark.usefixtures("db")


def test_the_seeded_defaults_are_the_domain_defaults() -> None:
    assert selectors.fraud_plan().defaults == DEFAULT_DESTINATION_RULES


def test_policies_reach_the_plan() -> None:
    customer = factories.customer()
    account = factories.account(customer, "bob")
    gateway = factories.gateway(factories.provider())
    version = config_version()
    policy = models.FraudPolicy.objects.create(
        account=account,
        max_concurrent=4,
        calls_per_second=2.5,
        spend_per_day=Decimal("50"),
        caller_ranges="4420794600\n\n442079460000-442079460099\n",
        source_countries="gb, ie",
        velocity=True,
        velocity_action=FraudAction.SUSPEND_CUSTOMER.value,
    )
    assert config_version() > version
    models.QuietHours.objects.create(policy=policy, days="45", start=time(22), end=time(6))
    models.DestinationRule.objects.create(policy=policy, allow=True, match="country", value="cu")
    models.FraudPolicy.objects.create(customer=customer, calls_per_hour=100)
    models.GatewayLimits.objects.create(gateway=gateway, max_concurrent=30)

    plan = DbPlanSource().load().fraud
    bob = plan.accounts[account.pk]
    assert bob.limits == CallLimits(
        max_concurrent=4, calls_per_second=2.5, spend_per_day=Decimal("50")
    )
    assert bob.caller_ranges == ("4420794600", "442079460000-442079460099")
    assert bob.source_countries == ("GB", "IE")
    assert bob.quiet_hours == (TimeWindow(frozenset({4, 5}), time(22), time(6)),)
    assert bob.destination_rules == (DestinationRule(True, DestinationMatch.COUNTRY, "CU"),)
    assert bob.velocity is not None and bob.velocity.action is FraudAction.SUSPEND_CUSTOMER
    assert plan.customers[customer.pk].limits.calls_per_hour == 100
    assert plan.customers[customer.pk].velocity is None
    assert plan.gateways[gateway.pk].max_concurrent == 30


def test_a_policy_belongs_to_exactly_one_subject() -> None:
    customer = factories.customer()
    account = factories.account(customer, "bob")
    with pytest.raises(IntegrityError), transaction.atomic():
        models.FraudPolicy.objects.create(customer=customer, account=account)
    with pytest.raises(IntegrityError), transaction.atomic():
        models.FraudPolicy.objects.create()


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"caller_ranges": "44\n44x\n"}, "caller_ranges", "line 2:"),
        ({"source_countries": "GBR"}, "source_countries", "Two-letter"),
    ],
)
def test_policy_validation(values: dict[str, str], field: str, message: str) -> None:
    policy = models.FraudPolicy(customer=factories.customer(), **values)
    with pytest.raises(ValidationError) as caught:
        policy.full_clean()
    assert message in str(caught.value.message_dict[field])


@pytest.mark.parametrize(
    ("match", "value", "ok"),
    [
        ("prefix", "882", True),
        ("prefix", "88a", False),
        ("country", "cu", True),
        ("country", "001", True),
        ("country", "CUB", False),
        ("kind", "premium", True),
        ("kind", "expensive", False),
    ],
)
def test_destination_rule_validation(match: str, value: str, ok: bool) -> None:
    rule = models.DestinationRule(match=match, value=value)
    if ok:
        rule.full_clean()
    else:
        with pytest.raises(ValidationError):
            rule.full_clean()


def test_quiet_hours_need_a_real_time_zone() -> None:
    policy = models.FraudPolicy.objects.create(customer=factories.customer())
    hours = models.QuietHours(policy=policy, start=time(22), end=time(6), timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown time zone"):
        hours.full_clean()
