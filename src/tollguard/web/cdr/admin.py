"""Admin registration for CDRs (read-only: a CDR is a record, not configuration)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tollguard.web.cdr.models import Cdr


@admin.register(Cdr)
class CdrAdmin(admin.ModelAdmin[Cdr]):
    list_display = (
        "started_at",
        "customer",
        "caller",
        "callee",
        "destination",
        "sip_code",
        "duration_ms",
        "billed_s",
        "sell_amount",
        "cost_amount",
        "margin",
        "provider",
    )
    list_filter = ("hangup_side", "sip_code")
    list_select_related = ("customer", "provider")
    search_fields = ("call_id", "caller", "callee")
    date_hierarchy = "started_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Cdr | None = None) -> bool:
        return False
