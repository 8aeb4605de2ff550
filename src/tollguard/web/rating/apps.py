"""App configuration for :mod:`tollguard.web.rating`."""

from __future__ import annotations

from django.apps import AppConfig


class RatingConfig(AppConfig):
    name = "tollguard.web.rating"
    label = "rating"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Models and signal wiring can only be imported once the app registry is ready.
        from tollguard.web.core.services import track_config_changes
        from tollguard.web.rating.models import Rate, RateCard

        track_config_changes(RateCard, Rate)
