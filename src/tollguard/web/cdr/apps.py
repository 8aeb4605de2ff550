"""App configuration for :mod:`tollguard.web.cdr`."""

from __future__ import annotations

from django.apps import AppConfig


class CdrConfig(AppConfig):
    name = "tollguard.web.cdr"
    label = "cdr"
    verbose_name = "CDRs"
    default_auto_field = "django.db.models.BigAutoField"
