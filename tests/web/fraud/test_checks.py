"""``tollguard check``'s findings about the SIP shield and the fraud rules."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.checks import CheckMessage
from django.test import override_settings

from tests.web import factories
from tollguard.config import ShieldSettings
from tollguard.web.fraud import checks
from tollguard.web.fraud.models import DestinationRule, FraudPolicy

pytestmark = pytest.mark.usefixtures("db")


def shield(**values: object) -> override_settings:
    return override_settings(
        TOLLGUARD=dataclasses.replace(settings.TOLLGUARD, shield=ShieldSettings(**values))  # type: ignore[arg-type]
    )


def ids(messages: list[CheckMessage]) -> list[str]:
    return [str(m.id) for m in messages]


def test_default_settings_pass() -> None:
    assert checks.check_shield() == []
    assert checks.check_default_destinations() == []
    assert checks.check_customer_limits() == []


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({"allow": ("10.0.0.0/8", "not-a-network")}, "shield.allow: 'not-a-network'"),
        ({"allow": ("0.0.0.0/0",)}, "holds every address"),
        ({"auth_failures": 0}, "auth_failures"),
        ({"source_rate": 0.0}, "shield.source_rate must be above 0"),
    ],
)
def test_unusable_shield_settings(values: dict[str, object], text: str) -> None:
    with shield(**values):
        found = checks.check_shield()
    assert ids(found) == ["fraud.E001"]
    assert text in found[0].msg


def test_an_emptied_default_list_is_reported() -> None:
    DestinationRule.objects.filter(policy__isnull=True, allow=False).delete()
    assert ids(checks.check_default_destinations()) == ["fraud.W001"]


def test_customers_without_limits_are_named() -> None:
    factories.customer("open-ended")
    capped = factories.customer("capped")
    FraudPolicy.objects.create(customer=capped, max_concurrent=10, spend_per_day=Decimal(100))
    half = factories.customer("half")
    FraudPolicy.objects.create(customer=half, max_concurrent=10)
    factories.customer("off", enabled=False)
    [warning] = checks.check_customer_limits()
    assert warning.id == "fraud.W002"
    assert "half, open-ended." in warning.msg
    assert "capped" not in warning.msg and "off" not in warning.msg
