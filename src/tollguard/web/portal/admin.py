"""Admin registration for customer users."""

from __future__ import annotations

from django.contrib import admin

from tollguard.web.portal.models import CustomerUser


@admin.register(CustomerUser)
class CustomerUserAdmin(admin.ModelAdmin[CustomerUser]):
    list_display = ("user", "customer", "created_at")
    list_select_related = ("user", "customer")
    search_fields = ("user__username", "customer__name")
    # Search boxes: type a user or customer name, not a number. Users are searched by
    # the user admin; only users that are not staff are offered.
    autocomplete_fields = ("user", "customer")
