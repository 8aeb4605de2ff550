"""App configuration for :mod:`tollguard.web.billing`."""

from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "tollguard.web.billing"
    label = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tollguard.web.billing import checks

        checks.register()
