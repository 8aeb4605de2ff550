"""Start Django for a data directory, create its schema and its first administrator.

The command line calls :func:`setup` before anything else touches Django::

    settings = tollguard.config.load(data_dir)
    bootstrap.setup(settings)
    bootstrap.migrate()
    password = bootstrap.create_admin("admin")  # printed once by the CLI
"""

from __future__ import annotations

import os
import secrets
import string

import django
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from tollguard import config

_configured: config.Settings | None = None

SETTINGS_MODULE_ENV = "DJANGO_SETTINGS_MODULE"
ONE_TIME_PASSWORD_LENGTH = 24
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def configured_settings() -> config.Settings | None:
    """The settings handed to :func:`setup`, read by ``tollguard.web.settings.base``."""
    return _configured


def setup(settings: config.Settings, *, module: str = "tollguard.web.settings.prod") -> None:
    """Configure Django for ``settings.data_dir`` with the settings ``module``.

    Sets ``TOLLGUARD_HOME`` and ``DJANGO_SETTINGS_MODULE`` so that child processes (the
    ASGI server) see the same configuration, then calls ``django.setup()``.
    """
    global _configured
    _configured = settings
    os.environ[config.DATA_DIR_ENV] = str(settings.data_dir)
    os.environ[SETTINGS_MODULE_ENV] = module
    django.setup()


def migrate(*, verbosity: int = 0) -> None:
    """Create or upgrade the database schema."""
    call_command("migrate", interactive=False, verbosity=verbosity)


def create_admin(username: str) -> str:
    """Create a superuser with a random one-time password and return that password.

    The password is never stored in clear; the account must change it at first login
    (see ``core.middleware.PasswordChangeRequiredMiddleware``).
    """
    # Models can only be imported once setup() has populated the app registry.
    from tollguard.web.core.models import PasswordChangeRequired

    password = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(ONE_TIME_PASSWORD_LENGTH))
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.create_superuser(username=username, password=password)
        PasswordChangeRequired.objects.create(user=user, password_hash=user.password)
    return password
