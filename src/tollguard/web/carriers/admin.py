"""Admin registration for providers and gateways."""

from __future__ import annotations

from django.contrib import admin

from tollguard.web.carriers.models import Gateway, Provider


class GatewayInline(admin.TabularInline[Gateway, Provider]):
    model = Gateway
    extra = 0


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin[Provider]):
    list_display = ("name", "enabled", "cost_card", "priority", "weight")
    list_filter = ("enabled",)
    list_select_related = ("cost_card",)
    search_fields = ("name",)
    inlines = (GatewayInline,)


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin[Gateway]):
    list_display = ("name", "provider", "host", "port", "transport", "enabled", "max_channels")
    list_filter = ("enabled", "transport", "provider")
    list_select_related = ("provider",)
    search_fields = ("name", "host", "provider__name")
