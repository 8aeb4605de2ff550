"""App configuration for :mod:`tollguard.web.portal`."""

from __future__ import annotations

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "tollguard.web.portal"
    label = "portal"
    verbose_name = "Customer portal"
    default_auto_field = "django.db.models.BigAutoField"
