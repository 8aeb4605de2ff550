"""Providers and gateways from the ORM as domain values."""

from __future__ import annotations

from tollguard.domain.plan import Gateway, MediaChoice, Provider, SipTransport
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
            media=MediaChoice(media),
            inbound_card_id=inbound_card_id,
        )
        for (
            pk,
            name,
            enabled,
            cost_card_id,
            priority,
            weight,
            media,
            inbound_card_id,
        ) in models.Provider.objects.order_by("id").values_list(
            "id",
            "name",
            "enabled",
            "cost_card_id",
            "priority",
            "weight",
            "media",
            "inbound_card_id",
        )
    )


def gateways() -> tuple[Gateway, ...]:
    rows = models.Gateway.objects.order_by("id").values_list(
        "id", "provider_id", *models.GATEWAY_FIELDS
    )
    result = []
    for pk, provider_id, *values in rows:
        row = dict(zip(models.GATEWAY_FIELDS, values, strict=True))
        row["transport"] = SipTransport(row["transport"])
        result.append(Gateway(id=pk, provider_id=provider_id, **row))
    return tuple(result)
