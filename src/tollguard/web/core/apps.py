"""App configuration for :mod:`tollguard.web.core`."""

from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "tollguard.web.core"
    label = "core"
    verbose_name = "Tollguard"
    default_auto_field = "django.db.models.BigAutoField"
