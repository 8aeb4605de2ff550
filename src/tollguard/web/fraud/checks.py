"""System checks of the SIP shield and the fraud rules (run by ``tollguard check``).

=========  ==================================================================
id         finding
=========  ==================================================================
fraud.E001 ``[shield]`` in ``tollguard.toml`` cannot be used, or its allow-list
           holds every address (which turns the shield off)
fraud.W001 the default destination list denies nothing: the shipped high-risk
           list (premium rate abroad, satellite, IRSF countries) was removed
fraud.W002 enabled customers without a concurrent-call limit, or with neither a
           daily call nor a daily spend limit: a stolen password costs without end
=========  ==================================================================

E001 runs on every start; W001 and W002 read the database and run with
``check --deploy`` only, as ``tollguard check`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError

from tollguard.domain.shield import policy_from_settings

CUSTOMERS_SHOWN = 10

AppConfigs = Sequence[AppConfig] | None


def check_shield(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    shield = getattr(getattr(settings, "TOLLGUARD", None), "shield", None)
    if shield is None:
        return []
    try:
        policy = policy_from_settings(shield)
    except ValueError as exc:
        return [Error(f"[shield]: {exc}", id="fraud.E001")]
    if any(network.prefixlen == 0 for network in policy.allow):
        return [
            Error(
                "shield.allow holds every address: nothing would ever be banned or limited.",
                hint="List the operator's own networks and monitoring only.",
                id="fraud.E001",
            )
        ]
    return []


def check_default_destinations(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    from tollguard.web.fraud.models import DestinationRule

    try:
        denies = DestinationRule.objects.filter(policy__isnull=True, allow=False).exists()
    except DatabaseError:
        return []
    if denies:
        return []
    return [
        Warning(
            "The default destination list denies nothing: premium-rate, satellite and "
            "high-risk destinations are open to every customer.",
            hint="Restore the defaults (docs/fraud.md) or deny them per customer.",
            id="fraud.W001",
        )
    ]


def check_customer_limits(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    from django.db.models import Q

    from tollguard.web.customers.models import Customer

    try:
        unlimited = list(
            Customer.objects.filter(enabled=True)
            .filter(
                Q(fraud_policy__isnull=True)
                | Q(fraud_policy__max_concurrent=0)
                | Q(fraud_policy__calls_per_day=0, fraud_policy__spend_per_day__isnull=True)
            )
            .order_by("name")
            .values_list("name", flat=True)
        )
    except DatabaseError:
        return []
    if not unlimited:
        return []
    shown = ", ".join(unlimited[:CUSTOMERS_SHOWN])
    more = (
        f" and {len(unlimited) - CUSTOMERS_SHOWN} more" if len(unlimited) > CUSTOMERS_SHOWN else ""
    )
    return [
        Warning(
            f"Customers without a concurrent-call limit or a daily call or spend limit: "
            f"{shown}{more}.",
            hint="Give each a fraud policy with max_concurrent and calls_per_day or "
            "spend_per_day (docs/fraud.md, 'Limits').",
            id="fraud.W002",
        )
    ]


def register_checks() -> None:
    register(check_shield, Tags.security)
    register(check_default_destinations, Tags.security, deploy=True)
    register(check_customer_limits, Tags.security, deploy=True)
