"""Admin: honeypot attempts (read-only) and the ban list."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tollguard.web.security.models import BackupCodeDevice, BannedAddress, HoneypotAttempt


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
