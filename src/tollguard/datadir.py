"""The data directory: create it (``tollguard init``) and tell whether it is ready.

This module raises :class:`DataDirError` and leaves the process alone; the command line
turns the error into its exit status, and ``tollguard demo`` and the benchmarks use the
same functions for their throw-away directories.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import replace
from pathlib import Path

from tollguard import certs, config

__all__ = [
    "WELL_KNOWN_ACCOUNT_NAMES",
    "DataDirError",
    "default_admin_user",
    "init_data_dir",
    "require_initialised",
]

# Account names every credential-stuffing list starts with.
WELL_KNOWN_ACCOUNT_NAMES = frozenset(
    {"admin", "administrator", "root", "sa", "superuser", "sysadmin", "operator", "test"}
)


class DataDirError(Exception):
    """A data directory that cannot be created or used; the message says why and what to do."""


def default_admin_user() -> str:
    return f"admin-{secrets.token_hex(3)}"


def require_initialised(settings: config.Settings) -> None:
    """Raise :class:`DataDirError` unless ``tollguard init`` has made ``settings.data_dir``."""
    if not settings.settings_path.exists() or not settings.secrets.django_secret_key:
        raise DataDirError(f"{settings.data_dir} is not initialised: run 'tollguard init' first")


def init_data_dir(
    data_dir: Path,
    *,
    bind: str = "127.0.0.1",
    sip_port: int = 5060,
    tls_port: int | None = None,
    web_port: int = 8443,
    realm: str = "tollguard",
    admin_user: str | None = None,
    force: bool = False,
) -> tuple[config.Settings, str]:
    """Create a data directory; return its settings and the admin's one-time password.

    The first administrator is ``admin_user``, or ``admin-<random>`` when none is given:
    no install has an account under a name an attacker would try first (ASVS 6.3.2).
    Django is set up for the new directory on return. Raises :class:`DataDirError` for a
    refused name or an existing directory; a failure leaves nothing behind.
    """
    data_dir = data_dir.resolve()
    admin_user = admin_user or default_admin_user()
    if admin_user.lower() in WELL_KNOWN_ACCOUNT_NAMES:
        raise DataDirError(
            f"--admin-user {admin_user!r} is a name attackers try first; choose another"
        )
    if (data_dir / config.SETTINGS_FILE).exists() and not force:
        raise DataDirError(f"{data_dir} is already initialised (use --force to start over)")
    if force and data_dir.exists():
        shutil.rmtree(data_dir)
    created = not data_dir.exists()
    try:
        return _init(
            data_dir,
            bind=bind,
            sip_port=sip_port,
            tls_port=tls_port,
            web_port=web_port,
            realm=realm,
            admin_user=admin_user,
        )
    except BaseException:
        # A failed init leaves nothing behind, so it can simply be run again.
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            for name in (config.SETTINGS_FILE, config.SECRETS_FILE):
                (data_dir / name).unlink(missing_ok=True)
        raise


def _write_secrets(path: Path) -> None:
    values = {
        "django_secret_key": secrets.token_urlsafe(64),
        "nonce_secret": secrets.token_hex(32),
    }
    text = "".join(f'{key} = "{value}"\n' for key, value in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _init(
    data_dir: Path,
    *,
    bind: str,
    sip_port: int,
    tls_port: int | None,
    web_port: int,
    realm: str,
    admin_user: str,
) -> tuple[config.Settings, str]:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    tls_port = tls_port if tls_port is not None else (sip_port + 1 if sip_port else 0)
    defaults = config.Settings(data_dir=data_dir)
    settings = replace(
        defaults,
        sip=replace(
            defaults.sip,
            realm=realm,
            listen=(
                str(config.Listen("udp", bind, sip_port)),
                str(config.Listen("tcp", bind, sip_port)),
                str(config.Listen("tls", bind, tls_port)),
            ),
        ),
        web=replace(
            defaults.web,
            listen_host="127.0.0.1" if bind in {"0.0.0.0", "::"} else bind,
            listen_port=web_port,
            # Unguessable admin path; the well-known /admin/ is left for the honeypot.
            admin_path=f"manage-{secrets.token_hex(6)}/",
        ),
    )
    _write_secrets(settings.secrets_path)
    certs.write_self_signed(settings.tls_cert_path, settings.tls_key_path)
    settings.settings_path.write_text(config.dump(settings))
    settings = config.load(data_dir)

    # Django is set up only once the directory holds its settings and secrets.
    from tollguard.web import bootstrap

    bootstrap.setup(settings)
    bootstrap.migrate()
    password = bootstrap.create_admin(admin_user)
    return settings, password
