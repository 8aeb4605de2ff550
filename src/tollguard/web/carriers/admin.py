"""Admin registration for providers and gateways."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.security.field_access import RoleFieldLimits


class ProviderForm(forms.ModelForm[Provider]):
    """Refuses a cost card in another currency than the sell cards of the customers that
    list this provider: the switch would stop routing their calls here."""

    class Meta:
        model = Provider
        fields = "__all__"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        card = cleaned.get("cost_card")
        if card is None or self.instance.pk is None:
            return cleaned
        # The reverse side of Customer.providers: the carriers app does not import customers.
        elsewhere = sorted(
            f"{customer.name} ({customer.sell_card.currency})"
            for customer in self.instance.customers.select_related("sell_card")
            if customer.sell_card is not None and customer.sell_card.currency != card.currency
        )
        if elsewhere:
            self.add_error(
                "cost_card",
                f"The cost card {card.name} is in {card.currency}, but customers that list "
                f"this provider sell in another currency: {', '.join(elsewhere)}. Calls are "
                "never routed across currencies (docs/provisioning.md, 'Currencies').",
            )
        return cleaned


class GatewayInline(RoleFieldLimits[Gateway], admin.TabularInline[Gateway, Provider]):
    model = Gateway
    extra = 0
    fields = (
        "name",
        "host",
        "port",
        "transport",
        "strip_digits",
        "add_prefix",
        "max_channels",
        "enabled",
    )
    show_change_link = True


@admin.register(Provider)
class ProviderAdmin(RoleFieldLimits[Provider], admin.ModelAdmin[Provider]):
    list_display = (
        "name",
        "enabled",
        "cost_card",
        "inbound_card",
        "priority",
        "weight",
        "media",
        "gateway_count",
        "enabled_gateway_count",
    )
    list_filter = ("enabled", "cost_card", "media")
    list_select_related = ("cost_card", "inbound_card")
    search_fields = ("name", "gateways__name", "gateways__host")
    ordering = ("priority", "name")
    form = ProviderForm
    autocomplete_fields = ("cost_card", "inbound_card")
    inlines = (GatewayInline,)

    class Media:
        css = {"all": ("carriers/provider.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                gateway_total=Count("gateways"),
                gateway_enabled=Count("gateways", filter=Q(gateways__enabled=True)),
            )
        )

    @admin.display(description="gateways", ordering="gateway_total")
    def gateway_count(self, obj: Provider) -> int:
        return int(getattr(obj, "gateway_total", 0))

    @admin.display(description="enabled gateways", ordering="gateway_enabled")
    def enabled_gateway_count(self, obj: Provider) -> int:
        return int(getattr(obj, "gateway_enabled", 0))


@admin.register(Gateway)
class GatewayAdmin(RoleFieldLimits[Gateway], admin.ModelAdmin[Gateway]):
    list_display = (
        "name",
        "provider",
        "host",
        "port",
        "transport",
        "strip_digits",
        "add_prefix",
        "enabled",
        "max_channels",
    )
    list_filter = ("enabled", "transport", "provider")
    list_select_related = ("provider",)
    search_fields = ("name", "host", "provider__name")
    ordering = ("provider__name", "name")
    autocomplete_fields = ("provider",)
