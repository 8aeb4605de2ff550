"""Production settings: HTTPS only, secure cookies, secrets required."""

from __future__ import annotations

from tollguard.web.settings.base import *  # noqa: F403
from tollguard.web.settings.base import TOLLGUARD, secret_key

SECRET_KEY = secret_key(TOLLGUARD)
DEBUG = False

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31_536_000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SESSION_COOKIE_AGE = 8 * 3600
# HSTS preload binds a whole domain for months; operators opt in, the product does not.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
