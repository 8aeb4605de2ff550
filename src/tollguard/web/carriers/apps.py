"""App configuration for :mod:`tollguard.web.carriers`."""

from __future__ import annotations

from django.apps import AppConfig


class CarriersConfig(AppConfig):
    name = "tollguard.web.carriers"
    label = "carriers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Models and signal wiring can only be imported once the app registry is ready.
        from tollguard.web.carriers.models import Gateway, Provider
        from tollguard.web.core.services import track_config_changes

        track_config_changes(Provider, Gateway)
