"""Admin for API keys: issue (the key is shown once), inspect and revoke.

Keys are issued to the signed-in operator; an existing key cannot be edited, because
its scopes and networks were what its owner accepted when it was shown.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from tollguard.web.api.errors import KeyRequestError
from tollguard.web.api.keys import create_api_key, revoke_api_key
from tollguard.web.api.models import CUSTOMER_SCOPES, ApiKey, Scope


class ApiKeyAddForm(forms.ModelForm[ApiKey]):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One CIDR network per line; empty: any address.",
    )

    class Meta:
        model = ApiKey
        fields = ("name", "customer", "scopes", "rate_per_minute", "expires_at")

    def clean_allowed_networks(self) -> list[str]:
        networks = []
        for line in str(self.cleaned_data.get("allowed_networks", "")).splitlines():
            if line.strip():
                try:
                    networks.append(str(ipaddress.ip_network(line.strip(), strict=True)))
                except ValueError as exc:
                    raise forms.ValidationError(str(exc)) from exc
        return networks

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("customer") is not None and not set(cleaned.get("scopes", ())) <= (
            CUSTOMER_SCOPES
        ):
            self.add_error("scopes", "A key confined to a customer cannot write configuration.")
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = (
        "name",
        "prefix",
        "owner",
        "customer",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at", "customer")
    list_select_related = ("owner", "customer")
    search_fields = ("name", "prefix", "owner__username")
    autocomplete_fields = ("customer",)
    actions = ("revoke",)

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[ApiKey]]:
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ()
        return (
            "name",
            "owner",
            "customer",
            "prefix",
            "scopes",
            "rate_per_minute",
            "allowed_networks",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        )

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return (
                "name",
                "customer",
                "scopes",
                "rate_per_minute",
                "expires_at",
                "allowed_networks",
            )
        return self.get_readonly_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # nothing on an issued key is editable
        data = form.cleaned_data
        try:
            issued = create_api_key(
                owner=request.user,
                name=data["name"],
                scopes=data["scopes"],
                customer=data.get("customer"),
                expires_at=data.get("expires_at"),
                allowed_networks=data.get("allowed_networks", ()),
                rate_per_minute=data["rate_per_minute"],
            )
        except KeyRequestError as exc:
            raise forms.ValidationError(str(exc)) from exc
        obj.pk, obj.prefix, obj.key_hash = issued.key.pk, issued.key.prefix, issued.key.key_hash
        obj._state.adding = False
        request._tollguard_api_secret = issued.secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(request, "_tollguard_api_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "key": obj,
            "secret": secret,
            "title": "API key issued",
        }
        response = TemplateResponse(request, "api/admin_key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        now = timezone.now()
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            revoke_api_key(key, now=now)
            # In the key's history beside its issue; django-auditlog has the change too.
            self.log_change(request, key, "Revoked the key.")
            revoked += 1
        self.message_user(request, f"{revoked} key(s) revoked.")
