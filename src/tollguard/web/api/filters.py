"""Query filters for CDRs and the ledger (``django-filter``)."""

from __future__ import annotations

import django_filters

from tollguard.web.billing.models import EntryKind, LedgerEntry
from tollguard.web.cdr.models import Cdr


class CustomerCdrFilter(django_filters.FilterSet):
    """The filters a customer may use on its own CDRs."""

    started_after = django_filters.IsoDateTimeFilter(
        field_name="started_at", lookup_expr="gte", label="Started at or after (ISO 8601)."
    )
    started_before = django_filters.IsoDateTimeFilter(
        field_name="started_at", lookup_expr="lt", label="Started before (ISO 8601)."
    )
    destination = django_filters.CharFilter(field_name="destination", lookup_expr="iexact")
    callee_prefix = django_filters.CharFilter(field_name="callee", lookup_expr="startswith")
    sip_code = django_filters.NumberFilter(field_name="sip_code")
    account = django_filters.NumberFilter(field_name="account_id")
    answered = django_filters.BooleanFilter(
        field_name="answered_at", lookup_expr="isnull", exclude=True
    )

    class Meta:
        model = Cdr
        fields: list[str] = []


class CdrFilter(CustomerCdrFilter):
    customer = django_filters.NumberFilter(field_name="customer_id")
    provider = django_filters.NumberFilter(field_name="provider_id")
    gateway = django_filters.NumberFilter(field_name="gateway_id")

    class Meta:
        model = Cdr
        fields: list[str] = []


class CustomerLedgerFilter(django_filters.FilterSet):
    """The filters a customer may use on its own ledger."""

    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Posted at or after (ISO 8601)."
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Posted before (ISO 8601)."
    )
    kind = django_filters.ChoiceFilter(choices=EntryKind.choices)

    class Meta:
        model = LedgerEntry
        fields: list[str] = []


class LedgerFilter(CustomerLedgerFilter):
    customer = django_filters.NumberFilter(field_name="customer_id")
    reference = django_filters.CharFilter(field_name="reference")

    class Meta:
        model = LedgerEntry
        fields: list[str] = []
