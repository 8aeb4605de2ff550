"""App configuration for :mod:`tollguard.web.fraud`."""

from __future__ import annotations

from django.apps import AppConfig


class FraudConfig(AppConfig):
    name = "tollguard.web.fraud"
    label = "fraud"
    verbose_name = "Fraud and SIP shield"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Rules reach the switch through the plan: a change bumps the configuration
        # version. Bans and suspensions are live state with their own version
        # (services.py), so a ban never rebuilds the plan.
        from tollguard.web.core.services import track_config_changes
        from tollguard.web.fraud.models import (
            DestinationRule,
            FraudPolicy,
            GatewayLimits,
            QuietHours,
        )

        track_config_changes(FraudPolicy, QuietHours, DestinationRule, GatewayLimits)

        from tollguard.web.fraud.checks import register_checks

        register_checks()
