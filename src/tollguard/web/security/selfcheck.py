"""``tollguard check``: Django's deployment checks plus ours, as one exit code."""

from __future__ import annotations

import logging
from typing import TextIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

logger = logging.getLogger(__name__)

PROD_SETTINGS = "tollguard.web.settings.prod"


def run(out: TextIO) -> int:
    """Run ``check --deploy`` (warnings fail too) and write the findings to ``out``.

    Returns 0 when nothing was found, 1 otherwise. Django must already be set up,
    normally with :data:`PROD_SETTINGS` (``bootstrap.setup`` does that).
    """
    module = getattr(settings, "SETTINGS_MODULE", "")
    if module != PROD_SETTINGS:
        out.write(f"note: checking settings {module!r}, not {PROD_SETTINGS!r}\n")
    try:
        call_command("check", deploy=True, fail_level="WARNING", stdout=out, stderr=out)
    except SystemCheckError as exc:
        out.write(f"{exc}\n")
        return 1
    return 0
