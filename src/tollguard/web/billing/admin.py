"""Admin of the money: the ledger (read, and post top-ups and adjustments), balance
alerts and their deliveries.

Posting needs ``billing.add_ledgerentry``, which only the billing and administrator
roles hold. Nobody changes or deletes an entry, superusers included: the pages offer
no way to, and the model and the database refuse it. Each posting is in the audit
trail (django-auditlog and the admin's history) with the staff user who made it.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from tollguard.web.billing import services
from tollguard.web.billing.errors import LedgerError
from tollguard.web.billing.models import (
    POSTED_BY_HAND,
    AlertDelivery,
    BalanceAlerts,
    LedgerEntry,
)
from tollguard.web.billing.webhooks import new_secret

logger = logging.getLogger(__name__)


class LedgerEntryForm(forms.ModelForm[LedgerEntry]):
    kind = forms.ChoiceField(
        choices=[(kind.value, kind.label) for kind in POSTED_BY_HAND],
        help_text="A top-up or refund credits the customer; an adjustment may go either way.",
    )

    class Meta:
        model = LedgerEntry
        fields = ("customer", "kind", "amount", "reason", "reference")
        help_texts = {
            "amount": "In the customer's currency; negative only for an adjustment that "
            "takes money away.",
            "reason": "Required for refunds and adjustments; kept in the ledger for good.",
            "reference": "A payment or document reference; a second entry with the same "
            "reference for this customer is refused.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if any(data.get(name) is None for name in ("customer", "kind", "amount")):
            return data  # the field errors say what is missing
        entry = LedgerEntry(
            customer=data["customer"],
            kind=data["kind"],
            amount=data["amount"],
            reason=data.get("reason", ""),
        )
        try:
            services.validate(entry)
        except LedgerError as exc:
            raise ValidationError(str(exc)) from exc
        return data


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin[LedgerEntry]):
    form = LedgerEntryForm
    list_display = (
        "created_at",
        "customer",
        "kind",
        "amount",
        "balance_after",
        "reason",
        "reference",
        "call_id",
        "created_by_name",
    )
    list_filter = ("kind",)
    list_select_related = ("customer",)
    search_fields = ("customer__name", "reference", "call_id", "reason")
    date_hierarchy = "created_at"
    autocomplete_fields = ("customer",)
    ordering = ("-created_at", "-id")
    # The ledger of a busy customer is long: no full count on every page.
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return tuple(field.name for field in LedgerEntry._meta.fields)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: LedgerEntry, form: Any, change: bool) -> None:
        services.record(obj, actor=request.user)


class BalanceAlertsForm(forms.ModelForm[BalanceAlerts]):
    class Meta:
        model = BalanceAlerts
        fields = ("customer", "thresholds", "email", "webhook_url")


@admin.register(BalanceAlerts)
class BalanceAlertsAdmin(admin.ModelAdmin[BalanceAlerts]):
    form = BalanceAlertsForm
    list_display = ("customer", "thresholds", "email", "webhook_url", "has_secret")
    list_select_related = ("customer",)
    search_fields = ("customer__name", "email", "webhook_url")
    autocomplete_fields = ("customer",)
    actions = ("generate_webhook_secret",)

    @admin.display(description="webhook secret", boolean=True)
    def has_secret(self, obj: BalanceAlerts) -> bool:
        return bool(obj.webhook_secret)

    @admin.action(description="Generate a new webhook secret", permissions=("change",))
    def generate_webhook_secret(
        self, request: HttpRequest, queryset: QuerySet[BalanceAlerts]
    ) -> TemplateResponse:
        """Give each selected customer a new signing secret and show them once."""
        issued: list[tuple[BalanceAlerts, str]] = []
        for alerts in queryset.select_related("customer").order_by("customer__name"):
            alerts.webhook_secret = new_secret()
            alerts.save(update_fields=["webhook_secret"])
            self.log_change(request, alerts, "Generated a new webhook secret.")
            issued.append((alerts, alerts.webhook_secret))
        logger.info(
            "user %s generated webhook secrets for %d customer(s)", request.user.pk, len(issued)
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "New webhook secrets",
            "opts": self.opts,
            "issued": issued,
        }
        response = TemplateResponse(request, "admin/billing/webhook_secrets.html", context)
        # The page holds secrets: no browser or proxy may keep a copy.
        add_never_cache_headers(response)
        return response


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin[AlertDelivery]):
    list_display = (
        "created_at",
        "customer",
        "channel",
        "target",
        "threshold",
        "funds",
        "currency",
        "attempts",
        "delivered_at",
        "failed_at",
        "last_error",
    )
    list_filter = ("channel",)
    list_select_related = ("customer",)
    search_fields = ("customer__name", "target", "event_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
