"""Production settings: HTTPS only, HSTS, secrets required, optional error reports."""

from __future__ import annotations

from tollguard.web.security import sentry
from tollguard.web.settings.base import *  # noqa: F403
from tollguard.web.settings.base import TOLLGUARD, secret_key

SECRET_KEY = secret_key(TOLLGUARD)
DEBUG = False

SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31_536_000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# HSTS preload binds a whole domain for months; operators opt in with web.hsts_preload.
SECURE_HSTS_PRELOAD = TOLLGUARD.web.hsts_preload
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

sentry.init(TOLLGUARD.secrets.sentry_dsn)
