"""Settings: secrets are required, SQLite runs in WAL mode, the admin path is honoured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from tollguard.config import DatabaseSettings, Secrets, Settings
from tollguard.web.settings import base
from tollguard.web.urls import admin_prefix


def test_secret_key_is_required(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="django_secret_key is missing"):
        base.secret_key(Settings(data_dir=tmp_path))


def test_secret_key_comes_from_secrets(tmp_path: Path) -> None:
    key = "k" * 50
    assert (
        base.secret_key(Settings(data_dir=tmp_path, secrets=Secrets(django_secret_key=key))) == key
    )


def test_sqlite_runs_in_wal_mode_in_the_data_dir(tmp_path: Path) -> None:
    db = base.database(Settings(data_dir=tmp_path))
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path / "tollguard.sqlite3")
    pragmas = db["OPTIONS"]["init_command"]
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout="):
        assert pragma in pragmas


def test_postgresql_needs_a_password(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database=DatabaseSettings(engine="postgresql"))
    with pytest.raises(ImproperlyConfigured, match="database_password is required"):
        base.database(settings)


def test_postgresql_uses_the_secret_password(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database=DatabaseSettings(engine="postgresql", name="tg", host="db", user="tg"),
        secrets=Secrets(database_password="s3cret"),
    )
    db = base.database(settings)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["HOST"], db["USER"], db["PASSWORD"]) == ("tg", "db", "tg", "s3cret")


def test_unknown_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="'mysql' is not"):
        base.database(Settings(data_dir=tmp_path, database=DatabaseSettings(engine="mysql")))


def test_argon2_is_the_first_password_hasher() -> None:
    assert django_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
    assert django_settings.USE_TZ is True
    assert django_settings.TIME_ZONE == "UTC"


@pytest.mark.parametrize(
    ("admin_path", "prefix"),
    [("", ""), ("/", ""), ("x7f3a", "x7f3a/"), ("/x7f3a/", "x7f3a/")],
    ids=["empty", "slash", "bare", "slashes"],
)
def test_admin_prefix(admin_path: str, prefix: str) -> None:
    assert admin_prefix(admin_path) == prefix


@pytest.mark.parametrize("module", ["prod", "dev"])
def test_prod_and_dev_refuse_to_start_without_secrets(tmp_path: Path, module: str) -> None:
    env = {
        **os.environ,
        "TOLLGUARD_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": f"tollguard.web.settings.{module}",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "django_secret_key is missing" in result.stderr


def test_prod_starts_with_secrets(tmp_path: Path) -> None:
    (tmp_path / "secrets.toml").write_text(f'django_secret_key = "{"s" * 50}"\n')
    (tmp_path / "tollguard.toml").write_text('[web]\nadmin_path = "hidden-admin"\n')
    env = {
        **os.environ,
        "TOLLGUARD_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tollguard.web.settings.prod",
    }
    code = (
        "import django; django.setup();"
        "from django.urls import reverse;"
        "print(reverse('admin:index'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/hidden-admin/"


def test_asgi_and_wsgi_applications_load() -> None:
    from tollguard.web import asgi, wsgi

    assert callable(asgi.application)
    assert callable(wsgi.application)


def test_admin_is_not_mounted_without_a_path() -> None:
    from django.urls import NoReverseMatch, reverse

    assert django_settings.TOLLGUARD.web.admin_path == ""
    with pytest.raises(NoReverseMatch):
        reverse("admin:index")
