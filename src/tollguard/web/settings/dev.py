"""Development settings: debug pages, but still a real secret key from ``secrets.toml``."""

from __future__ import annotations

from tollguard.web.settings.base import *  # noqa: F403
from tollguard.web.settings.base import TOLLGUARD, secret_key

SECRET_KEY = secret_key(TOLLGUARD)
DEBUG = True
