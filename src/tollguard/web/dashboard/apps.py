"""App configuration for :mod:`tollguard.web.dashboard` (templates and static files only)."""

from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "tollguard.web.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
