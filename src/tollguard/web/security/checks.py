"""System checks for what ``manage.py check --deploy`` does not look at.

=============  ==============================================================
id             finding
=============  ==============================================================
security.E001  no Content-Security-Policy middleware or policy
security.E002  the policy is not strict (a directive missing or too wide)
security.E003  HSTS shorter than one year or without subdomains
security.E004  Argon2 is not the first password hasher
security.E005  django-axes is off or its backend is not the first one
security.E006  the second factor is not required for staff
security.E007  the admin is mounted at the default ``/admin/`` path
security.E008  the secret key is short or has too few distinct characters
security.E009  session or CSRF cookie without ``__Host-``, Secure or HttpOnly
security.E010  an address allow-list, country rule or country database is unusable
security.E011  ``web.breached_passwords_file`` is set but cannot be read
security.W101  SIP accounts allow MD5 digest, but ``sip.digest_algorithms`` does not
               offer MD5: their phones fail unless they speak SHA-256 (a check of
               the customers app, :mod:`tollguard.web.customers.checks`, which
               registers it through :func:`register_check`)
security.W102  PostgreSQL on another host without a verified TLS connection
               (``database.sslmode`` below ``verify-ca``)
=============  ==============================================================

The ``deploy`` ones (E003, E005, E006, E007, E008, W101, W102) only run with
``check --deploy``, as Django's own; the rest run on every start. Warnings are
``W1xx``, clear of Django's own ``security.W0xx``; ``tollguard check`` fails on them too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning
from django.core.checks import register as register_system_check

from tollguard.config import VERIFYING_SSL_MODES

logger = logging.getLogger(__name__)

MIN_HSTS_SECONDS = 31_536_000
MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_UNIQUE = 5

# directive -> the only sources it may hold
STRICT_CSP: dict[str, frozenset[str]] = {
    "default-src": frozenset({"'none'"}),
    "object-src": frozenset({"'none'"}),
    "base-uri": frozenset({"'none'"}),
    "frame-ancestors": frozenset({"'none'"}),
    "form-action": frozenset({"'self'"}),
    "script-src": frozenset({"'self'", "<CSP_NONCE_SENTINEL>"}),
    "style-src": frozenset({"'self'", "<CSP_NONCE_SENTINEL>"}),
}

type AppConfigs = Sequence[AppConfig] | None


def check_csp(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    if "django.middleware.csp.ContentSecurityPolicyMiddleware" not in settings.MIDDLEWARE:
        return [
            Error("The Content-Security-Policy middleware is not installed.", id="security.E001")
        ]
    policy = getattr(settings, "SECURE_CSP", None) or {}
    if not policy:
        return [
            Error("SECURE_CSP is empty: no Content-Security-Policy is sent.", id="security.E001")
        ]
    errors: list[CheckMessage] = []
    for directive, allowed in STRICT_CSP.items():
        sources = {str(source) for source in policy.get(directive) or ()}
        if not sources or not sources <= allowed:
            errors.append(
                Error(
                    f"SECURE_CSP[{directive!r}] is {sorted(sources)}; "
                    f"it must be within {sorted(allowed)}.",
                    id="security.E002",
                )
            )
    return errors


def check_hsts(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    seconds = getattr(settings, "SECURE_HSTS_SECONDS", 0) or 0
    if seconds < MIN_HSTS_SECONDS or not settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        return [
            Error(
                f"HSTS is {seconds} s (subdomains: {settings.SECURE_HSTS_INCLUDE_SUBDOMAINS}); "
                f"it must be at least {MIN_HSTS_SECONDS} s with includeSubDomains.",
                id="security.E003",
            )
        ]
    return []


def check_argon2(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    hashers = settings.PASSWORD_HASHERS
    if not hashers or not hashers[0].endswith("Argon2PasswordHasher"):
        return [Error("Argon2 must be the first password hasher.", id="security.E004")]
    return []


def check_axes(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    backends = settings.AUTHENTICATION_BACKENDS
    if (
        not getattr(settings, "AXES_ENABLED", False)
        or "axes.middleware.AxesMiddleware" not in settings.MIDDLEWARE
        or not backends
        or not backends[0].startswith("axes.backends.")
    ):
        return [
            Error(
                "django-axes must be enabled, with its middleware and as the first "
                "authentication backend.",
                id="security.E005",
            )
        ]
    return []


def check_otp(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    middleware = settings.MIDDLEWARE
    if (
        not getattr(settings, "TOLLGUARD_OTP_REQUIRED", False)
        or "django_otp.middleware.OTPMiddleware" not in middleware
        or "tollguard.web.security.middleware.OTPRequiredMiddleware" not in middleware
    ):
        return [Error("Two-factor sign-in must be required for staff.", id="security.E006")]
    return []


def check_admin_path(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    from django.urls import NoReverseMatch, reverse

    try:
        index = reverse("admin:index")
    except NoReverseMatch:
        return []
    if index.strip("/").lower() in {"", "admin"}:
        return [
            Error(
                f"The admin is mounted at {index!r}; choose a random web.admin_path.",
                id="security.E007",
            )
        ]
    return []


def check_secret_key(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    key = str(getattr(settings, "SECRET_KEY", ""))
    if (
        len(key) < MIN_SECRET_KEY_LENGTH
        or len(set(key)) < MIN_SECRET_KEY_UNIQUE
        or key.startswith("django-insecure-")
    ):
        return [
            Error(
                f"The secret key must be at least {MIN_SECRET_KEY_LENGTH} random characters; "
                "run 'tollguard init' to make one.",
                id="security.E008",
            )
        ]
    return []


def check_cookies(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for kind in ("SESSION", "CSRF"):
        name = getattr(settings, f"{kind}_COOKIE_NAME")
        if (
            not name.startswith("__Host-")
            or not getattr(settings, f"{kind}_COOKIE_SECURE")
            or not getattr(settings, f"{kind}_COOKIE_HTTPONLY")
            or getattr(settings, f"{kind}_COOKIE_DOMAIN") is not None
            or getattr(settings, f"{kind}_COOKIE_PATH") != "/"
        ):
            errors.append(
                Error(
                    f"The {kind.lower()} cookie must be __Host- prefixed, Secure, HttpOnly, "
                    "with path / and no domain.",
                    id="security.E009",
                )
            )
    return errors


def check_address_rules(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    from tollguard.web.security.network import AddressRuleError, parse_countries, parse_networks

    web = settings.TOLLGUARD.web
    errors: list[CheckMessage] = []
    try:
        parse_networks(web.admin_allow, "web.admin_allow")
        parse_networks(web.api_allow, "web.api_allow")
        parse_countries(web.allow_countries, "web.allow_countries")
        parse_countries(web.deny_countries, "web.deny_countries")
    except AddressRuleError as exc:
        errors.append(Error(str(exc), id="security.E010"))
    if (web.allow_countries or web.deny_countries) and not web.geoip_database:
        errors.append(Error("Country rules need web.geoip_database to be set.", id="security.E010"))
    if web.geoip_database and not Path(web.geoip_database).is_file():
        errors.append(
            Error(f"web.geoip_database: {web.geoip_database} is not a file.", id="security.E010")
        )
    breached = web.breached_passwords_file
    if breached and not os.access(breached, os.R_OK):
        errors.append(
            Error(
                f"web.breached_passwords_file: {breached} cannot be read; every password"
                " change is refused until it can.",
                id="security.E011",
            )
        )
    return errors


def check_database_tls(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    db = settings.TOLLGUARD.database
    if db.engine != "postgresql" or db.is_local:
        return []
    mode = db.effective_sslmode
    if mode in VERIFYING_SSL_MODES:
        return []
    return [
        Warning(
            f"database.sslmode is {mode!r} for the remote PostgreSQL host {db.host!r}: "
            "the connection is not verified, so anyone on the path can read or change it.",
            hint="Use sslmode verify-full with sslrootcert (see docs/security.md).",
            id="security.W102",
        )
    ]


def register() -> None:
    for check in (check_csp, check_argon2, check_cookies, check_address_rules):
        register_check(check, deploy=False)
    for check in (
        check_hsts,
        check_axes,
        check_otp,
        check_admin_path,
        check_secret_key,
        check_database_tls,
    ):
        register_check(check, deploy=True)


def register_check(check: Any, *, deploy: bool) -> None:
    register_system_check(check, Tags.security, deploy=deploy)
