"""Settings shared by every environment; leaf modules add the secret key.

The data directory is the one handed to :func:`tollguard.web.bootstrap.setup`, or else
``$TOLLGUARD_HOME`` (default ``./tollguard-data``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from tollguard import config
from tollguard.web import bootstrap

# Lets the generic admin and field classes be subscripted at run time, as mypy sees them.
django_stubs_ext.monkeypatch()

TOLLGUARD: config.Settings = bootstrap.configured_settings() or config.load()

BASE_DIR = Path(__file__).resolve().parent.parent
DEBUG = False
ALLOWED_HOSTS = list(TOLLGUARD.web.allowed_hosts)

INSTALLED_APPS = [
    # Before the admin: its admin/index.html adds the dashboard link to the admin's.
    "tollguard.web.dashboard",
    # django.contrib.admin with the two-factor admin site as admin.site.
    "tollguard.web.security.apps.TollguardAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "auditlog",
    "tollguard.web.core",
    "tollguard.web.security",
    "tollguard.web.rating",
    "tollguard.web.carriers",
    "tollguard.web.customers",
    "tollguard.web.cdr",
    "tollguard.web.fraud",
    "tollguard.web.billing",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tollguard.web.api",
    "tollguard.web.portal",
]

# Headers first so every answer carries them, static files included; then the ban list
# and the address rules, before any session is loaded; the second factor after the
# user is known; axes last, as its documentation requires.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "tollguard.web.security.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise, so static files stay cacheable; outside the rest, so it sees
    # every answer to a session or an API key (ASVS 14.3.2).
    "tollguard.web.security.middleware.NoStoreMiddleware",
    "tollguard.web.security.middleware.BannedAddressMiddleware",
    "tollguard.web.security.middleware.AddressRestrictionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tollguard.web.security.middleware.SessionLifetimeMiddleware",
    "tollguard.web.security.sessions.SessionRecordMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "tollguard.web.security.middleware.OTPRequiredMiddleware",
    "tollguard.web.core.middleware.PasswordChangeRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-auditlog's, with the actor read at write time: API keys are checked in the view.
    "tollguard.web.security.audit.AuditActorMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tollguard.web.urls"
WSGI_APPLICATION = "tollguard.web.wsgi.application"
ASGI_APPLICATION = "tollguard.web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]


def database(settings: config.Settings) -> dict[str, Any]:
    """The ``default`` database of ``settings``: SQLite in WAL mode, or PostgreSQL."""
    db = settings.database
    if db.engine == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(settings.database_path),
            "OPTIONS": {
                # WAL lets the switch read a snapshot while the web process writes;
                # NORMAL is durable in WAL mode except for the last commits on power loss.
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    "PRAGMA busy_timeout=5000;"
                    "PRAGMA foreign_keys=ON;"
                ),
                "transaction_mode": "IMMEDIATE",
            },
            # Keep connections: the switch polls the configuration version every second.
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
        }
    if db.engine == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db.name,
            "USER": db.user,
            "PASSWORD": _database_password(settings),
            "HOST": db.host,
            "PORT": str(db.port),
            "OPTIONS": _postgresql_tls(settings),
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"{settings.settings_path}: database.engine {db.engine!r} is not 'sqlite' or 'postgresql'"
    )


def _database_password(settings: config.Settings) -> str:
    """The PostgreSQL password; only a client certificate may stand in for it."""
    password = settings.secrets.database_password
    if not password and not settings.database.sslcert:
        raise ImproperlyConfigured(
            f"{settings.secrets_path}: database_password is required for PostgreSQL "
            "(or database.sslcert and database.sslkey for certificate authentication)"
        )
    return password


def _postgresql_tls(settings: config.Settings) -> dict[str, str]:
    """libpq TLS parameters, passed through psycopg's connection options.

    A remote server is verified against ``sslrootcert`` with its host name by default
    (``verify-full``). Certificate authentication insists on a verified server: SCRAM
    password authentication also proves that the server knows the password (RFC 5802
    §3), a client certificate proves nothing about the server.
    """
    db = settings.database
    mode = db.effective_sslmode
    if db.sslcert and mode not in config.VERIFYING_SSL_MODES:
        raise ImproperlyConfigured(
            f"{settings.settings_path}: database.sslcert needs database.sslmode "
            f"verify-ca or verify-full, not {mode!r}"
        )
    options = {"sslmode": mode}
    for name in ("sslrootcert", "sslcert", "sslkey"):
        value = getattr(db, name)
        if value:
            options[name] = value
    return options


def secret_key(settings: config.Settings) -> str:
    """The Django secret key from ``secrets.toml``; refuses to start without one."""
    key = settings.secrets.django_secret_key
    if len(key) < 32:
        raise ImproperlyConfigured(
            f"{settings.secrets_path}: django_secret_key is missing or shorter than "
            "32 characters; run 'tollguard init'"
        )
    return key


DATABASES = {"default": database(TOLLGUARD)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# NIST SP 800-63B 3.1.1.2: length, a list of known-bad passwords, and no composition
# rules; an all-digit password is refused only when it is a common one.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {
        "NAME": "tollguard.web.security.validators.MaximumLengthValidator",
        "OPTIONS": {"max_length": 128},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    # Product, realm, host, user and customer names, and [web] password_words.
    {"NAME": "tollguard.web.security.validators.ContextWordsValidator"},
    # Passwords from breach corpora, offline (ASVS 6.2.12; [web] breached_passwords_file).
    {"NAME": "tollguard.web.security.breached.BreachedPasswordValidator"},
]

# Axes sees the password step only: the backend must come first (ASVS 6.3.1).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = True
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
# Lock the pair: an attacker cannot lock a user out from everywhere, and one address
# cannot try one user more than the limit.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "tollguard.web.security.network.client_address"
# A page that says how long the lock lasts, with Retry-After, instead of bare text.
AXES_LOCKOUT_CALLABLE = "tollguard.web.security.views.lockout"
AXES_VERBOSE = False

# Two-factor sign-in for every staff user (tollguard.web.security.otp).
TOLLGUARD_OTP_REQUIRED = True
OTP_TOTP_ISSUER = "Tollguard"
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# Decoy logins at /admin/ ban their address for this long.
TOLLGUARD_HONEYPOT_BAN_SECONDS = 24 * 3600
# A session ends this long after sign-in, however active (the idle limit is below).
TOLLGUARD_SESSION_ABSOLUTE_AGE = 12 * 3600

# Audit trail: who changed what and when, with the address of the request.
AUDITLOG_INCLUDE_ALL_MODELS = False

# Mail, for low-balance alerts ([mail] in tollguard.toml; the password in secrets.toml).
# Without a host nothing is sent: the alerts wait, retried, and tollguard check says why.
MAILERS: dict[str, dict[str, Any]] = {
    "default": (
        {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": TOLLGUARD.mail.host,
                "port": TOLLGUARD.mail.port,
                "username": TOLLGUARD.mail.user,
                "password": TOLLGUARD.secrets.mail_password,
                "use_tls": TOLLGUARD.mail.starttls,
                "use_ssl": TOLLGUARD.mail.ssl,
                "timeout": TOLLGUARD.mail.timeout_s,
            },
        }
        if TOLLGUARD.mail.host
        else {"BACKEND": "tollguard.web.billing.mail.UnconfiguredBackend"}
    )
}
DEFAULT_FROM_EMAIL = TOLLGUARD.mail.from_address or "tollguard@localhost"

LANGUAGE_CODE = "en-us"
# ISO dates and times to the second (tollguard.web.formats).
FORMAT_MODULE_PATH = ["tollguard.web.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The web process serves the admin's CSS and JS itself, straight from the installed apps:
# one process, no collectstatic step (hence no STATIC_ROOT), no web server to configure.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

# The web process only speaks HTTPS (even in development), so cookies are Secure
# everywhere. The __Host- prefix makes browsers refuse them unless Secure, for path /
# and with no Domain: a sibling subdomain cannot plant or override them.
SESSION_COOKIE_NAME = "__Host-sessionid"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_PATH = "/"
SESSION_COOKIE_DOMAIN = None
# Idle timeout: 30 minutes without a request ends the session.
SESSION_COOKIE_AGE = 30 * 60
SESSION_SAVE_EVERY_REQUEST = True
CSRF_COOKIE_NAME = "__Host-csrftoken"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_PATH = "/"
CSRF_COOKIE_DOMAIN = None

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Every asset is served by this process: nothing may load from anywhere else. A nonce
# source appears in the header only on pages that use one.
SECURE_CSP: dict[str, list[str]] = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # Every security line is also stored, for the dashboard and the admin.
        "security_events": {"class": "tollguard.web.security.eventlog.SecurityEventHandler"},
    },
    "loggers": {
        "tollguard": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Security events go to fail2ban and the operator whatever the root level.
        "tollguard.security": {
            "handlers": ["console", "security_events"],
            "level": "INFO",
            "propagate": False,
        },
        # With DEBUG off Django only mails request errors to ADMINS; an unhandled
        # exception must reach the process log with its traceback (ASVS 16.3.4).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# The REST API (tollguard.web.api): JSON only (the browsable API needs inline scripts),
# deny by default, scoped keys with their own rate limits.
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tollguard.web.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tollguard.web.api.access.ApiAccess"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "tollguard.web.api.throttles.ApiKeyRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"user": "1200/min"},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Tollguard API",
    # Markdown: a code span keeps "<prefix>" as text (bare, it was taken for a tag).
    "DESCRIPTION": (
        "Provisioning, CDRs and statistics. Send an API key with every request, in the "
        "header `Authorization: Bearer tg_<prefix>_<secret>`. Operators make keys in the "
        "admin; customers make keys for their own data in the customer portal."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1/",
    # A DID's trunk and failover share one set of transports: one schema name for both.
    "ENUM_NAME_OVERRIDES": {"DidTransportEnum": "tollguard.web.customers.models.TRANSPORT_CHOICES"},
    # Separate request and response components: write-only fields appear in requests only.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from drf-spectacular-sidecar: nothing loads from outside.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
