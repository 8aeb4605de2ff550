"""The PostgreSQL entry of ``DATABASES``: TLS by default, certificates passed to libpq."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from tollguard.config import DatabaseSettings, Secrets, Settings
from tollguard.web.settings import base


def postgresql(tmp_path: Path, password: str = "s3cret", **values: Any) -> dict[str, Any]:
    settings = Settings(
        data_dir=tmp_path,
        database=DatabaseSettings(engine="postgresql", name="tg", user="tg", **values),
        secrets=Secrets(database_password=password),
    )
    return base.database(settings)


@pytest.mark.parametrize(
    ("values", "options"),
    [
        ({"host": "db.example.net"}, {"sslmode": "verify-full"}),
        (
            {"host": "db.example.net", "sslrootcert": "/etc/tollguard/db-ca.pem"},
            {"sslmode": "verify-full", "sslrootcert": "/etc/tollguard/db-ca.pem"},
        ),
        ({"host": "10.1.2.3", "sslmode": "verify-ca"}, {"sslmode": "verify-ca"}),
        ({"host": "db.example.net", "sslmode": "require"}, {"sslmode": "require"}),
        ({"host": ""}, {"sslmode": "prefer"}),
        ({"host": "/run/postgresql"}, {"sslmode": "prefer"}),
        ({"host": "127.0.0.1"}, {"sslmode": "prefer"}),
        ({"host": "::1", "sslmode": "disable"}, {"sslmode": "disable"}),
    ],
    ids=[
        "remote-verified-by-default",
        "remote-with-root-cert",
        "explicit-verify-ca",
        "explicit-require",
        "unix-socket-default",
        "unix-socket-dir",
        "loopback",
        "loopback-disabled",
    ],
)
def test_tls_options(tmp_path: Path, values: dict[str, str], options: dict[str, str]) -> None:
    db = postgresql(tmp_path, **values)
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert db["OPTIONS"] == options


def test_client_certificate_replaces_the_password(tmp_path: Path) -> None:
    db = postgresql(
        tmp_path,
        password="",
        host="db.example.net",
        sslrootcert="/etc/tollguard/db-ca.pem",
        sslcert="/etc/tollguard/db.crt",
        sslkey="/etc/tollguard/db.key",
    )
    assert db["PASSWORD"] == ""
    assert db["OPTIONS"] == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/tollguard/db-ca.pem",
        "sslcert": "/etc/tollguard/db.crt",
        "sslkey": "/etc/tollguard/db.key",
    }


def test_client_certificate_needs_a_verified_server(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"sslcert needs database\.sslmode verify-ca"):
        postgresql(
            tmp_path,
            password="",
            host="db.example.net",
            sslmode="require",
            sslcert="/etc/tollguard/db.crt",
            sslkey="/etc/tollguard/db.key",
        )


def test_without_password_or_certificate_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="database_password is required"):
        postgresql(tmp_path, password="", host="db.example.net")
