"""Reads of the configuration version."""

from __future__ import annotations

from tollguard.web.core.models import CONFIG_VERSION_PK, ConfigVersion


def config_version() -> int:
    """The current configuration version (0 before the first change); one indexed query."""
    version = (
        ConfigVersion.objects.filter(pk=CONFIG_VERSION_PK).values_list("version", flat=True).first()
    )
    return version or 0
