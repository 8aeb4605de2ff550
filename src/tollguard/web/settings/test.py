"""Test settings: an in-memory SQLite database and a throw-away secret key.

This is the only settings module that starts without ``secrets.toml``.
"""

from __future__ import annotations

import dataclasses
import secrets

from tollguard.web.settings.base import *  # noqa: F403
from tollguard.web.settings.base import TOLLGUARD

SECRET_KEY = secrets.token_urlsafe(50)
DEBUG = False
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
# No handlers: the web tests' ``db`` fixture stores security lines as production does,
# inside each test's transaction (tests/web/conftest.py); other tests in the same
# process (the switch's) have no database to store them in.
LOGGING = {"version": 1, "disable_existing_loggers": False}

# Most web tests sign in with Client.login(), which hands no request to the backends:
# Axes refuses that, and a second factor would stand in front of every admin page. The
# tests under tests/web/security turn both back on (the production values) with
# override_settings and use_axes(); tollguard check flags either being off in prod.
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
AXES_ENABLED = False
TOLLGUARD_OTP_REQUIRED = False
# Axes warns when its backend is missing; here that is on purpose (see above).
SILENCED_SYSTEM_CHECKS = ["axes.W003"]

# Tests call the admin from documentation addresses (RFC 5737) to check what is logged;
# tests/web/security puts the default allow-list back and checks it.
TOLLGUARD = dataclasses.replace(
    TOLLGUARD, web=dataclasses.replace(TOLLGUARD.web, admin_allow=("0.0.0.0/0", "::/0"))
)
