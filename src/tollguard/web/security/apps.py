"""App configurations: the security app, and the admin with the two-factor site."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class TollguardAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with ``admin.site`` being the two-factor admin site."""

    default = False  # named explicitly in INSTALLED_APPS; SecurityConfig is this module's
    default_site = "tollguard.web.security.admin_site.TollguardAdminSite"


def _sync_roles(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from django.apps import apps

    from tollguard.web.security.roles import sync_roles

    sync_roles(apps, using)


class SecurityConfig(AppConfig):
    default = True
    name = "tollguard.web.security"
    label = "security"
    verbose_name = "Security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tollguard.web.security import audit, checks, events, sessions, signals

        events.connect()
        signals.connect()
        sessions.connect()
        audit.register()
        checks.register()
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="tollguard.security.roles")
