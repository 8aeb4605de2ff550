"""Admin registration for customers, accounts and ACL entries.

HA1 digests are shown read-only; the account forms take a SIP password and store only
its digests for the realm of ``[sip] realm``. A new account saved without one, and every
account of the "generate SIP password" action, gets a random password, shown once on
the page the save or the action returns: it is never put in a message (the message
store is a cookie or the session), a log line, or the database.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.safestring import SafeString

from tollguard.web.customers.dids import delete_errors
from tollguard.web.customers.forms import AccountForm, CustomerForm
from tollguard.web.customers.models import Account, AclEntry, Customer, Did
from tollguard.web.customers.services import (
    SIP_PASSWORD_ALPHABET,
    SIP_PASSWORD_LENGTH,
    generate_sip_password,
    set_sip_password,
)
from tollguard.web.security.field_access import RoleFieldLimits

__all__ = [
    "SIP_PASSWORD_ALPHABET",
    "SIP_PASSWORD_LENGTH",
    "AccountAdmin",
    "AclEntryAdmin",
    "CustomerAdmin",
    "DidAdmin",
    "generate_sip_password",
]

logger = logging.getLogger(__name__)

# The passwords generated while a request saved new accounts, to be shown on its answer.
_ISSUED = "_tollguard_new_sip_passwords"


def _remember(request: HttpRequest, account: Account, form: forms.BaseForm) -> None:
    password = getattr(form, "generated_password", "")
    if password:
        issued: list[tuple[Account, str]] = getattr(request, _ISSUED, [])
        issued.append((account, password))
        setattr(request, _ISSUED, issued)


def sip_passwords_page(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    issued: list[tuple[Account, str]],
    title: str,
) -> TemplateResponse:
    """The page that shows new SIP passwords, once, and is never cached."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": Account._meta,
        "issued": issued,
        "realm": settings.TOLLGUARD.sip.realm,
    }
    response = TemplateResponse(request, "admin/customers/account/sip_passwords.html", context)
    # The page holds secrets: no browser or proxy may keep a copy.
    add_never_cache_headers(response)
    return response


class ShowsNewSipPasswords[M: Model](admin.ModelAdmin[M]):
    """Answers a save that generated SIP passwords with the page that shows them."""

    def response_add(
        self, request: HttpRequest, obj: M, post_url_continue: str | None = None
    ) -> HttpResponse:
        issued = getattr(request, _ISSUED, [])
        if issued:
            return sip_passwords_page(self, request, issued, "New SIP passwords")
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: M) -> HttpResponse:
        issued = getattr(request, _ISSUED, [])
        if issued:
            return sip_passwords_page(self, request, issued, "New SIP passwords")
        return super().response_change(request, obj)


class AccountInline(RoleFieldLimits[Account], admin.TabularInline[Account, Customer]):
    model = Account
    form = AccountForm
    extra = 0
    fields = ("username", "sip_password", "extension", "allow_md5", "enabled")
    show_change_link = True


class AclEntryInline(RoleFieldLimits[AclEntry], admin.TabularInline[AclEntry, Customer]):
    model = AclEntry
    extra = 0


@admin.register(Customer)
class CustomerAdmin(RoleFieldLimits[Customer], ShowsNewSipPasswords[Customer]):
    list_display = (
        "name",
        "enabled",
        "sell_card",
        "strategy",
        "account_count",
        "max_call_duration_s",
        "allow_negative_margin",
        "billing_mode",
        "balance_shown",
        "media",
    )
    list_filter = (
        "enabled",
        "strategy",
        "allow_negative_margin",
        "billing_mode",
        "sell_card",
        "media",
    )
    list_select_related = ("sell_card", "balance")
    search_fields = ("name", "accounts__username")
    ordering = ("name",)
    form = CustomerForm
    autocomplete_fields = ("sell_card", "providers")
    inlines = (AccountInline, AclEntryInline)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "sell_card", "strategy", "providers")}),
        ("Limits", {"fields": ("max_call_duration_s", "allow_negative_margin")}),
        ("Media", {"fields": ("media",)}),
        (
            "Credit",
            {"fields": ("billing_mode", "credit_limit", "currency", "balance_shown")},
        ),
        (
            "Number normalization",
            {
                "fields": (
                    "country_code",
                    "national_prefix",
                    "international_prefix",
                    "strip_prefix",
                )
            },
        ),
    )

    readonly_fields = ("balance_shown",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return super().get_queryset(request).annotate(account_total=Count("accounts"))

    @admin.display(description="accounts", ordering="account_total")
    def account_count(self, obj: Customer) -> int:
        return int(getattr(obj, "account_total", 0))

    @admin.display(description="balance", ordering="balance__amount")
    def balance_shown(self, obj: Customer) -> SafeString:
        """The ledger balance (the billing app's), with links to the customer's ledger
        and to post a top-up or adjustment."""
        if obj.pk is None:
            return format_html("{}", "-")
        try:
            amount = obj.balance.amount  # the billing app's Balance, by its reverse name
        except ObjectDoesNotExist:
            amount = Decimal(0)
        ledger = reverse("admin:billing_ledgerentry_changelist")
        post = reverse("admin:billing_ledgerentry_add")
        return format_html(
            '{} {} · <a href="{}?customer__id__exact={}">ledger</a> · '
            '<a href="{}?customer={}">top up or adjust</a>',
            amount,
            obj.currency,
            ledger,
            obj.pk,
            post,
            obj.pk,
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        for inline_form in formset.forms:
            if isinstance(inline_form, AccountForm) and inline_form.instance.pk:
                _remember(request, inline_form.instance, inline_form)


@admin.register(Account)
class AccountAdmin(RoleFieldLimits[Account], ShowsNewSipPasswords[Account]):
    list_display = ("username", "customer", "extension", "allow_md5", "enabled")
    list_filter = ("enabled", "allow_md5", "customer")
    list_select_related = ("customer",)
    search_fields = ("username", "customer__name", "extension")
    ordering = ("username",)
    autocomplete_fields = ("customer",)
    form = AccountForm
    readonly_fields = ("ha1_md5", "ha1_sha256")
    actions = ("generate_password",)

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        _remember(request, obj, form)

    @admin.action(description="Generate a new SIP password", permissions=("change",))
    def generate_password(
        self, request: HttpRequest, queryset: QuerySet[Account]
    ) -> TemplateResponse:
        """Give each selected account a new random password and show them once."""
        realm = settings.TOLLGUARD.sip.realm
        issued: list[tuple[Account, str]] = []
        for account in queryset.select_related("customer").order_by("username"):
            password = generate_sip_password()
            set_sip_password(account, password, realm)
            self.log_change(request, account, "Generated a new SIP password.")
            issued.append((account, password))
        logger.info(
            "user %s generated new SIP passwords for %d account(s)", request.user.pk, len(issued)
        )
        return sip_passwords_page(self, request, issued, "New SIP passwords")


@admin.register(AclEntry)
class AclEntryAdmin(RoleFieldLimits[AclEntry], admin.ModelAdmin[AclEntry]):
    list_display = ("network", "tech_prefix", "customer")
    list_filter = ("customer",)
    list_select_related = ("customer",)
    search_fields = ("network", "tech_prefix", "customer__name")
    ordering = ("customer__name", "network")
    autocomplete_fields = ("customer",)


@admin.register(Did)
class DidAdmin(RoleFieldLimits[Did], admin.ModelAdmin[Did]):
    """DIDs: checked on save by the switch's DID table rules (``Did.clean``); a DID that
    another forwards to is protected from deletion, as a foreign key would be."""

    list_display = (
        "number",
        "customer",
        "target",
        "destination",
        "price_per_minute",
        "monthly_price",
        "enabled",
    )
    list_filter = ("enabled", "target", "customer")
    list_select_related = ("customer", "account")
    search_fields = ("first", "last", "forward_to", "customer__name", "account__username")
    ordering = ("first",)
    autocomplete_fields = ("customer", "account")
    fieldsets = (
        (None, {"fields": ("customer", "first", "last", "enabled")}),
        ("Target", {"fields": ("target", "account", "forward_to")}),
        (
            "Trunk",
            {
                "fields": (
                    ("trunk_host", "trunk_port", "trunk_transport"),
                    ("failover_host", "failover_port", "failover_transport"),
                )
            },
        ),
        ("Prices (in the customer's currency)", {"fields": ("price_per_minute", "monthly_price")}),
    )

    @admin.display(description="number", ordering="first")
    def number(self, obj: Did) -> str:
        return str(obj)

    @admin.display(description="goes to")
    def destination(self, obj: Did) -> str:
        if obj.target == "account":
            return f"account {obj.account}"
        if obj.target == "did":
            return f"DID {obj.forward_to}"
        failover = f", then {obj.failover_host}:{obj.failover_port}" if obj.failover_host else ""
        return f"{obj.trunk_host}:{obj.trunk_port} ({obj.trunk_transport}){failover}"

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        # The confirmation page lists DIDs that forward to the ones deleted as
        # protected, and Django then refuses the deletion.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed, [*protected, *delete_errors(objs)]
