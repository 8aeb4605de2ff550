"""Fraud rules and live state from the ORM as domain values."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from tollguard.domain.fraud import Suspension
from tollguard.domain.plan import (
    CallLimits,
    DestinationMatch,
    DestinationRule,
    FraudAction,
    FraudPlan,
    FraudPolicy,
    TimeWindow,
    VelocityPolicy,
)
from tollguard.domain.shield import Ban, BanMode, BanReason, parse_network
from tollguard.web.fraud import models


def _limits(row: models.LimitFields) -> CallLimits:
    return CallLimits(
        max_concurrent=row.max_concurrent,
        calls_per_second=row.calls_per_second,
        cps_burst=row.cps_burst,
        calls_per_hour=row.calls_per_hour,
        calls_per_day=row.calls_per_day,
        spend_per_hour=row.spend_per_hour,
        spend_per_day=row.spend_per_day,
        max_price_per_minute=row.max_price_per_minute,
    )


def _rule(row: models.DestinationRule) -> DestinationRule:
    return DestinationRule(
        allow=row.allow,
        match=DestinationMatch(row.match),
        value=row.value.upper() if row.match == DestinationMatch.COUNTRY else row.value,
        international_only=row.international_only,
        note=row.note,
    )


def fraud_plan() -> FraudPlan:
    """Every fraud rule, read in four queries."""
    rules: dict[int | None, list[DestinationRule]] = defaultdict(list)
    for rule in models.DestinationRule.objects.order_by("id"):
        rules[rule.policy_id].append(_rule(rule))
    windows: dict[int, list[TimeWindow]] = defaultdict(list)
    for hours in models.QuietHours.objects.order_by("id"):
        windows[hours.policy_id].append(
            TimeWindow(
                days=frozenset(int(day) for day in hours.days),
                start=hours.start,
                end=hours.end,
                timezone=hours.timezone,
                international_only=hours.international_only,
            )
        )
    customers: dict[int, FraudPolicy] = {}
    accounts: dict[int, FraudPolicy] = {}
    for row in models.FraudPolicy.objects.order_by("id"):
        policy = FraudPolicy(
            limits=_limits(row),
            destination_rules=tuple(rules.get(row.pk, ())),
            caller_ranges=tuple(
                line.strip() for line in row.caller_ranges.splitlines() if line.strip()
            ),
            allow_anonymous=row.allow_anonymous,
            quiet_hours=tuple(windows.get(row.pk, ())),
            source_countries=tuple(
                code.upper() for code in row.source_countries.replace(",", " ").split()
            ),
            velocity=VelocityPolicy(
                destinations_factor=row.velocity_destinations_factor,
                destinations_min=row.velocity_destinations_min,
                new_countries=row.velocity_new_countries,
                spend_factor=row.velocity_spend_factor,
                spend_min=Decimal(row.velocity_spend_min),
                action=FraudAction(row.velocity_action),
                suspend_s=row.velocity_suspend_s,
            )
            if row.velocity
            else None,
        )
        if row.account_id is not None:
            accounts[row.account_id] = policy
        elif row.customer_id is not None:
            customers[row.customer_id] = policy
    gateways = {row.gateway_id: _limits(row) for row in models.GatewayLimits.objects.order_by("id")}
    return FraudPlan(
        defaults=tuple(rules.get(None, ())),
        customers=customers,
        accounts=accounts,
        gateways=gateways,
    )


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def ban_of(row: models.SipBan) -> Ban:
    return Ban(
        network=parse_network(row.network),
        reason=BanReason(row.reason),
        created=row.created_at.timestamp(),
        expires=_epoch(row.expires_at),
        mode=BanMode(row.mode),
        offences=row.offences,
        note=row.note,
    )


def bans() -> list[Ban]:
    return [ban_of(row) for row in models.SipBan.objects.order_by("id")]


def suspensions() -> list[Suspension]:
    return [
        Suspension(row.subject, row.reason, row.created_at.timestamp(), _epoch(row.expires_at))
        for row in models.Suspension.objects.order_by("id")
    ]


def live_version(name: str) -> int:
    version = (
        models.LiveStateVersion.objects.filter(name=name).values_list("version", flat=True).first()
    )
    return version or 0


def open_events() -> int:
    """Fraud events not yet released (the dashboard's count)."""
    return models.FraudEvent.objects.filter(released_at__isnull=True).count()
