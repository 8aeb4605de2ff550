"""Test settings: an in-memory SQLite database and a throw-away secret key.

This is the only settings module that starts without ``secrets.toml``.
"""

from __future__ import annotations

import secrets

from tollguard.web.settings.base import *  # noqa: F403

SECRET_KEY = secrets.token_urlsafe(50)
DEBUG = False
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}
