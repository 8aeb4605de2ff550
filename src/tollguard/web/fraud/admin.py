"""Admin: fraud policies and the default destination list, gateway limits, the SIP ban
list, suspensions and fraud events (each with a one-click release).

Bans and suspensions are written through :mod:`tollguard.web.fraud.services`, never by a
plain save: that bumps the live-state version the switch watches and logs the change
on the ``tollguard.security`` logger.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from tollguard.domain.shield import BanMode, BanReason
from tollguard.web.fraud import services
from tollguard.web.fraud.models import (
    DestinationRule,
    FraudEvent,
    FraudPolicy,
    GatewayLimits,
    QuietHours,
    SipBan,
    Suspension,
)

LIMIT_FIELDS = (
    "max_concurrent",
    ("calls_per_second", "cps_burst"),
    ("calls_per_hour", "calls_per_day"),
    ("spend_per_hour", "spend_per_day"),
    "max_price_per_minute",
)


class QuietHoursInline(admin.TabularInline[QuietHours, FraudPolicy]):
    model = QuietHours
    extra = 0


class DestinationRuleInline(admin.TabularInline[DestinationRule, FraudPolicy]):
    model = DestinationRule
    extra = 0
    fields = ("allow", "match", "value", "international_only", "note")


@admin.register(FraudPolicy)
class FraudPolicyAdmin(admin.ModelAdmin[FraudPolicy]):
    list_display = ("__str__", "max_concurrent", "calls_per_second", "spend_per_day", "velocity")
    list_select_related = ("customer", "account")
    search_fields = ("customer__name", "account__username")
    # Search boxes: type a customer's name or an account's user name, not a number.
    autocomplete_fields = ("customer", "account")
    inlines = (DestinationRuleInline, QuietHoursInline)
    fieldsets = (
        (None, {"fields": ("customer", "account")}),
        ("Limits", {"fields": LIMIT_FIELDS}),
        (
            "Caller ID and origin",
            {"fields": ("caller_ranges", "allow_anonymous", "source_countries")},
        ),
        (
            "Velocity",
            {
                "fields": (
                    "velocity",
                    ("velocity_destinations_factor", "velocity_destinations_min"),
                    "velocity_new_countries",
                    ("velocity_spend_factor", "velocity_spend_min"),
                    ("velocity_action", "velocity_suspend_s"),
                )
            },
        ),
    )


@admin.register(DestinationRule)
class DestinationRuleAdmin(admin.ModelAdmin[DestinationRule]):
    """The default list (rules without a policy) and every policy's rules."""

    list_display = ("__str__", "international_only", "note", "policy")
    list_filter = ("allow", "match", ("policy", admin.EmptyFieldListFilter))
    search_fields = ("value", "note")


@admin.register(GatewayLimits)
class GatewayLimitsAdmin(admin.ModelAdmin[GatewayLimits]):
    list_display = ("gateway", "max_concurrent", "calls_per_second", "calls_per_hour")
    fields = ("gateway", *LIMIT_FIELDS)
    autocomplete_fields = ("gateway",)


DURATIONS = (
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "1 week"),
    ("2592000", "30 days"),
    ("", "until released"),
)


class SipBanForm(forms.ModelForm[SipBan]):
    duration = forms.ChoiceField(choices=DURATIONS, initial="86400", required=False)

    class Meta:
        model = SipBan
        fields = ("network", "mode", "note")

    def clean_network(self) -> str:
        from tollguard.domain.shield import parse_network

        try:
            return str(parse_network(self.cleaned_data["network"]))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(SipBan)
class SipBanAdmin(admin.ModelAdmin[SipBan]):
    form = SipBanForm
    list_display = ("network", "reason", "mode", "offences", "created_at", "expires_at", "note")
    list_filter = ("reason", "mode")
    search_fields = ("network", "note")
    actions = ("release",)

    def has_change_permission(self, request: HttpRequest, obj: SipBan | None = None) -> bool:
        # A ban is added or released, never edited in place: add it again to change it.
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: SipBan, form: Any, change: bool) -> None:
        seconds = form.cleaned_data.get("duration") or ""
        saved = services.add_ban(
            obj.network,
            duration=timedelta(seconds=int(seconds)) if seconds else None,
            reason=BanReason.OPERATOR,
            mode=BanMode(obj.mode),
            note=obj.note,
            by=request.user.get_username(),
        )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: SipBan) -> None:
        services.remove_ban(obj.network, by=request.user.get_username())

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SipBan]) -> None:
        for ban in queryset:
            services.remove_ban(ban.network, by=request.user.get_username())

    @admin.action(description="Release the selected bans", permissions=["delete"])
    def release(self, request: HttpRequest, queryset: QuerySet[SipBan]) -> None:
        self.delete_queryset(request, queryset)
        self.message_user(request, "Released.", messages.SUCCESS)


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin[Suspension]):
    list_display = ("subject", "reason", "created_at", "expires_at")
    search_fields = ("subject", "reason")
    fields = ("subject", "reason", "expires_at")
    actions = ("release",)

    def has_change_permission(self, request: HttpRequest, obj: Suspension | None = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Suspension, form: Any, change: bool) -> None:
        from django.utils import timezone

        duration = None if obj.expires_at is None else obj.expires_at - timezone.now()
        services.suspend(obj.subject, obj.reason, duration=duration, by=request.user.get_username())
        obj.pk = Suspension.objects.get(subject=obj.subject).pk

    def delete_model(self, request: HttpRequest, obj: Suspension) -> None:
        services.release_suspension(obj.subject, by=request.user.get_username())

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Suspension]) -> None:
        for suspension in queryset:
            services.release_suspension(suspension.subject, by=request.user.get_username())

    @admin.action(description="Release the selected suspensions", permissions=["delete"])
    def release(self, request: HttpRequest, queryset: QuerySet[Suspension]) -> None:
        self.delete_queryset(request, queryset)
        self.message_user(request, "Released.", messages.SUCCESS)


@admin.register(FraudEvent)
class FraudEventAdmin(admin.ModelAdmin[FraudEvent]):
    """What the fraud engine did and why; the detail is what the caller never saw."""

    list_display = (
        "at",
        "rule",
        "action",
        "customer",
        "account",
        "source",
        "callee",
        "detail",
        "released_at",
    )
    list_filter = ("rule", "action", ("released_at", admin.EmptyFieldListFilter))
    search_fields = ("source", "callee", "detail")
    date_hierarchy = "at"
    actions = ("release",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: FraudEvent | None = None) -> bool:
        return False

    @admin.action(
        description="Release: mark handled and lift the suspension", permissions=["delete"]
    )
    def release(self, request: HttpRequest, queryset: QuerySet[FraudEvent]) -> None:
        for event in queryset:
            services.release_event(event, by=request.user.get_username())
        self.message_user(request, "Released.", messages.SUCCESS)
