"""Settings shared by every environment; leaf modules add the secret key.

The data directory is the one handed to :func:`tollguard.web.bootstrap.setup`, or else
``$TOLLGUARD_HOME`` (default ``./tollguard-data``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from tollguard import config
from tollguard.web import bootstrap

# Lets the generic admin and field classes be subscripted at run time, as mypy sees them.
django_stubs_ext.monkeypatch()

TOLLGUARD: config.Settings = bootstrap.configured_settings() or config.load()

BASE_DIR = Path(__file__).resolve().parent.parent
DEBUG = False
ALLOWED_HOSTS = list(TOLLGUARD.web.allowed_hosts)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "tollguard.web.core",
    "tollguard.web.rating",
    "tollguard.web.carriers",
    "tollguard.web.customers",
    "tollguard.web.cdr",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tollguard.web.core.middleware.PasswordChangeRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
        if not settings.secrets.database_password:
            raise ImproperlyConfigured(
                f"{settings.secrets_path}: database_password is required for PostgreSQL"
            )
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db.name,
            "USER": db.user,
            "PASSWORD": settings.secrets.database_password,
            "HOST": db.host,
            "PORT": str(db.port),
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"{settings.settings_path}: database.engine {db.engine!r} is not 'sqlite' or 'postgresql'"
    )


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
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The web process serves the admin's CSS and JS itself, straight from the installed apps:
# one process, no collectstatic step (hence no STATIC_ROOT), no web server to configure.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_SAMESITE = "Strict"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "tollguard": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
