"""Admin: security events and honeypot attempts (read-only) and the ban list."""

from __future__ import annotations

from axes.models import AccessFailureLog
from django.contrib import admin
from django.http import HttpRequest

from tollguard.web.security.models import (
    BackupCodeDevice,
    BannedAddress,
    HoneypotAttempt,
    SecurityEvent,
)

# Axes writes its failure log only with AXES_ENABLE_ACCESS_FAILURE_LOG, which is off:
# the page stayed empty however many sign-ins failed. Security events (below) hold the
# failures, lockouts and every other event of the security log.
if admin.site.is_registered(AccessFailureLog):
    admin.site.unregister(AccessFailureLog)


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin[SecurityEvent]):
    """The ``tollguard.security`` log as stored (:mod:`tollguard.web.security.eventlog`)."""

    list_display = ("at", "event", "address", "user", "detail", "level")
    list_filter = ("level", "event")
    search_fields = ("=address", "^user", "^event")
    search_help_text = "An exact address, or the start of a user name or an event."
    date_hierarchy = "at"
    ordering = ("-at", "-id")
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SecurityEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SecurityEvent | None = None) -> bool:
        return False


@admin.register(HoneypotAttempt)
class HoneypotAttemptAdmin(admin.ModelAdmin[HoneypotAttempt]):
    list_display = ("created_at", "address", "username", "user_agent")
    list_filter = ("created_at",)
    search_fields = ("address", "username", "user_agent")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: HoneypotAttempt | None = None
    ) -> bool:
        return False


@admin.register(BannedAddress)
class BannedAddressAdmin(admin.ModelAdmin[BannedAddress]):
    list_display = ("address", "reason", "created_at", "expires_at")
    search_fields = ("address", "reason")
    list_filter = ("reason",)


@admin.register(BackupCodeDevice)
class BackupCodeDeviceAdmin(admin.ModelAdmin[BackupCodeDevice]):
    """Only removal: the codes themselves are never shown again."""

    list_display = ("user", "name", "confirmed")
    fields = ("user", "name", "confirmed")
    readonly_fields = ("user", "name", "confirmed")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
