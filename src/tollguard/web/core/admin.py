"""Admin: the configuration version is shown read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tollguard.web.core.models import ConfigVersion


@admin.register(ConfigVersion)
class ConfigVersionAdmin(admin.ModelAdmin[ConfigVersion]):
    list_display = ("version", "changed_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ConfigVersion | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ConfigVersion | None = None) -> bool:
        return False
