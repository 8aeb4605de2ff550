"""Admin registration for rate cards and rates."""

from __future__ import annotations

from django.contrib import admin

from tollguard.web.rating.models import Rate, RateCard


@admin.register(RateCard)
class RateCardAdmin(admin.ModelAdmin[RateCard]):
    list_display = ("name", "kind", "currency", "rounding", "decimals")
    list_filter = ("kind", "currency")
    search_fields = ("name",)


@admin.register(Rate)
class RateAdmin(admin.ModelAdmin[Rate]):
    list_display = (
        "card",
        "prefix",
        "destination",
        "price_per_minute",
        "connect_fee",
        "initial_increment",
        "next_increment",
        "effective_from",
        "effective_until",
    )
    list_filter = ("card",)
    list_select_related = ("card",)
    search_fields = ("prefix", "destination")
    show_full_result_count = False  # COUNT(*) over 100k rates on every page is wasted work
