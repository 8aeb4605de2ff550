"""A rate's and a gateway's fields are written out once (the domain's dataclasses) and
every list of them follows: the models, plan files, the admin import, exports, the API."""

from __future__ import annotations

from dataclasses import fields

from tollguard.domain import plan
from tollguard.web.api.serializers import GatewaySerializer, RateSerializer
from tollguard.web.carriers.models import GATEWAY_FIELDS, Gateway
from tollguard.web.portal import exports
from tollguard.web.provisioning import schema
from tollguard.web.rating import imports, rate_rows
from tollguard.web.rating.models import RATE_FIELDS, Rate


def model_fields(model: type) -> set[str]:
    return {field.name for field in model._meta.get_fields()}


def test_rate_fields_are_the_domain_rate_and_model_fields() -> None:
    assert tuple(f.name for f in fields(plan.Rate)) == RATE_FIELDS
    assert set(RATE_FIELDS) <= model_fields(Rate)
    assert model_fields(Rate) - set(RATE_FIELDS) == {"id", "card"}


def test_gateway_fields_are_the_domain_gateway_and_model_fields() -> None:
    assert (
        tuple(f.name for f in fields(plan.Gateway) if f.name not in {"id", "provider_id"})
        == GATEWAY_FIELDS
    )
    assert model_fields(Gateway) - set(GATEWAY_FIELDS) == {"id", "provider"}


def test_every_list_follows_the_one_definition() -> None:
    assert rate_rows.RATE_COLUMNS == imports.CSV_COLUMNS == exports.RATE_COLUMNS == RATE_FIELDS
    assert RateSerializer.Meta.fields == ("id", "card", *RATE_FIELDS)
    assert GatewaySerializer.Meta.fields == ("id", "provider", *GATEWAY_FIELDS)
    assert schema._GATEWAY_KEYS == GATEWAY_FIELDS
