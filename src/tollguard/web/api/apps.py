"""App configuration for :mod:`tollguard.web.api`."""

from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "tollguard.web.api"
    label = "api"
    verbose_name = "REST API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the schema extension that documents API key authentication.
        from tollguard.web.api import schema  # noqa: F401
