"""Admin registration for customers, accounts and ACL entries.

HA1 digests are shown read-only; the account forms take a SIP password and store only
its digests for the realm of ``[sip] realm``.
"""

from __future__ import annotations

from django.contrib import admin

from tollguard.web.customers.forms import AccountForm
from tollguard.web.customers.models import Account, AclEntry, Customer


class AccountInline(admin.TabularInline[Account, Customer]):
    model = Account
    form = AccountForm
    extra = 0
    fields = ("username", "sip_password", "allow_md5", "enabled")


class AclEntryInline(admin.TabularInline[AclEntry, Customer]):
    model = AclEntry
    extra = 0


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ("name", "enabled", "sell_card", "strategy", "max_call_duration_s")
    list_filter = ("enabled", "strategy")
    list_select_related = ("sell_card",)
    search_fields = ("name",)
    filter_horizontal = ("providers",)
    inlines = (AccountInline, AclEntryInline)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin[Account]):
    list_display = ("username", "customer", "allow_md5", "enabled")
    list_filter = ("enabled", "allow_md5")
    list_select_related = ("customer",)
    search_fields = ("username", "customer__name")
    form = AccountForm
    readonly_fields = ("ha1_md5", "ha1_sha256")


@admin.register(AclEntry)
class AclEntryAdmin(admin.ModelAdmin[AclEntry]):
    list_display = ("network", "tech_prefix", "customer")
    list_select_related = ("customer",)
    search_fields = ("network", "tech_prefix", "customer__name")
