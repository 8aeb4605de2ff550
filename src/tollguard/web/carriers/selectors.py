"""Providers and gateways from the ORM as domain values."""

from __future__ import annotations

from tollguard.domain.plan import Gateway, Provider, SipTransport
from tollguard.web.carriers import models


def providers() -> tuple[Provider, ...]:
    return tuple(
        Provider(
            id=pk,
            name=name,
            enabled=enabled,
            cost_card_id=cost_card_id,
            priority=priority,
            weight=weight,
        )
        for pk, name, enabled, cost_card_id, priority, weight in models.Provider.objects.order_by(
            "id"
        ).values_list("id", "name", "enabled", "cost_card_id", "priority", "weight")
    )


def gateways() -> tuple[Gateway, ...]:
    rows = models.Gateway.objects.order_by("id").values_list(
        "id",
        "provider_id",
        "name",
        "host",
        "port",
        "transport",
        "strip_digits",
        "add_prefix",
        "enabled",
        "max_channels",
    )
    return tuple(
        Gateway(
            id=pk,
            provider_id=provider_id,
            name=name,
            host=host,
            port=port,
            transport=SipTransport(transport),
            strip_digits=strip_digits,
            add_prefix=add_prefix,
            enabled=enabled,
            max_channels=max_channels,
        )
        for (
            pk,
            provider_id,
            name,
            host,
            port,
            transport,
            strip_digits,
            add_prefix,
            enabled,
            max_channels,
        ) in rows
    )
