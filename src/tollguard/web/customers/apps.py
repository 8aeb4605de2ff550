"""App configuration for :mod:`tollguard.web.customers`."""

from __future__ import annotations

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "tollguard.web.customers"
    label = "customers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Models and signal wiring can only be imported once the app registry is ready.
        from tollguard.web.core.services import track_config_changes
        from tollguard.web.customers import checks, dids
        from tollguard.web.customers.models import Account, AclEntry, Customer, Did

        track_config_changes(Customer, Account, AclEntry, Did)
        Did.table_rules = dids.clean
        checks.register()
