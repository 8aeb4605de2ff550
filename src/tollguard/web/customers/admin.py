"""Admin registration for customers, accounts and ACL entries.

HA1 digests are shown read-only; the account forms take a SIP password and store only
its digests for the realm of ``[sip] realm``. The "generate SIP password" action makes
a random password, stores its digests and shows it once, on the page it returns: it is
never put in a message (the message store is a cookie or the session), a log line, or
the database.
"""

from __future__ import annotations

import logging
import secrets
import string
from decimal import Decimal

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.safestring import SafeString

from tollguard.web.customers.forms import AccountForm
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.customers.services import set_sip_password
from tollguard.web.security.field_access import RoleFieldLimits

logger = logging.getLogger(__name__)

SIP_PASSWORD_LENGTH = 20
# Letters and digits only: every SIP phone's keypad and provisioning file accepts them.
# 20 characters of 62 give about 119 bits.
SIP_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_sip_password(length: int = SIP_PASSWORD_LENGTH) -> str:
    """A random SIP password from the operating system's CSPRNG."""
    return "".join(secrets.choice(SIP_PASSWORD_ALPHABET) for _ in range(length))


class AccountInline(RoleFieldLimits[Account], admin.TabularInline[Account, Customer]):
    model = Account
    form = AccountForm
    extra = 0
    fields = ("username", "sip_password", "allow_md5", "enabled")
    show_change_link = True


class AclEntryInline(RoleFieldLimits[AclEntry], admin.TabularInline[AclEntry, Customer]):
    model = AclEntry
    extra = 0


@admin.register(Customer)
class CustomerAdmin(RoleFieldLimits[Customer], admin.ModelAdmin[Customer]):
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
    )
    list_filter = ("enabled", "strategy", "allow_negative_margin", "billing_mode", "sell_card")
    list_select_related = ("sell_card", "balance")
    search_fields = ("name", "accounts__username")
    ordering = ("name",)
    filter_horizontal = ("providers",)
    inlines = (AccountInline, AclEntryInline)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "sell_card", "strategy", "providers")}),
        ("Limits", {"fields": ("max_call_duration_s", "allow_negative_margin")}),
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


@admin.register(Account)
class AccountAdmin(RoleFieldLimits[Account], admin.ModelAdmin[Account]):
    list_display = ("username", "customer", "allow_md5", "enabled")
    list_filter = ("enabled", "allow_md5", "customer")
    list_select_related = ("customer",)
    search_fields = ("username", "customer__name")
    ordering = ("username",)
    autocomplete_fields = ("customer",)
    form = AccountForm
    readonly_fields = ("ha1_md5", "ha1_sha256")
    actions = ("generate_password",)

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
        context = {
            **self.admin_site.each_context(request),
            "title": "New SIP passwords",
            "opts": self.opts,
            "issued": issued,
            "realm": realm,
        }
        response = TemplateResponse(request, "admin/customers/account/sip_passwords.html", context)
        # The page holds secrets: no browser or proxy may keep a copy.
        add_never_cache_headers(response)
        return response


@admin.register(AclEntry)
class AclEntryAdmin(RoleFieldLimits[AclEntry], admin.ModelAdmin[AclEntry]):
    list_display = ("network", "tech_prefix", "customer")
    list_filter = ("customer",)
    list_select_related = ("customer",)
    search_fields = ("network", "tech_prefix", "customer__name")
    ordering = ("customer__name", "network")
    autocomplete_fields = ("customer",)
