"""System checks with ids for what ``check --deploy`` does not cover, and the
self-check behind ``tollguard check``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import CheckMessage
from django.test import override_settings

from tollguard.web.security import checks

from .conftest import HARDENED, tollguard_settings

GOOD: dict[str, Any] = {
    **HARDENED,
    "PASSWORD_HASHERS": [
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ],
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECRET_KEY": "tq8Vn2-Lr0pXw5Kz_aB7cYd3Ef6Gh9JmN1sU4iO-zT8yR2wQ5eV",
}

Check = Callable[..., list[CheckMessage]]

CASES: list[tuple[Check, dict[str, Any], str]] = [
    (
        checks.check_csp,
        {"MIDDLEWARE": ["django.middleware.security.SecurityMiddleware"]},
        "security.E001",
    ),
    (checks.check_csp, {"SECURE_CSP": {}}, "security.E001"),
    (checks.check_csp, {"SECURE_CSP": {"default-src": ["'self'"]}}, "security.E002"),
    (checks.check_hsts, {"SECURE_HSTS_SECONDS": 3600}, "security.E003"),
    (checks.check_hsts, {"SECURE_HSTS_INCLUDE_SUBDOMAINS": False}, "security.E003"),
    (
        checks.check_argon2,
        {"PASSWORD_HASHERS": ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]},
        "security.E004",
    ),
    (checks.check_axes, {"AXES_ENABLED": False}, "security.E005"),
    (
        checks.check_axes,
        {"AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"]},
        "security.E005",
    ),
    (checks.check_otp, {"TOLLGUARD_OTP_REQUIRED": False}, "security.E006"),
    (
        checks.check_admin_path,
        {"ROOT_URLCONF": "tests.web.security.admin_at_default"},
        "security.E007",
    ),
    (checks.check_secret_key, {"SECRET_KEY": "short"}, "security.E008"),
    (checks.check_secret_key, {"SECRET_KEY": "a" * 60}, "security.E008"),
    (checks.check_cookies, {"SESSION_COOKIE_NAME": "sessionid"}, "security.E009"),
    (checks.check_cookies, {"CSRF_COOKIE_SECURE": False}, "security.E009"),
    (
        checks.check_address_rules,
        {"TOLLGUARD": tollguard_settings(admin_allow=("10.0.0.0/40",))},
        "security.E010",
    ),
    (
        checks.check_address_rules,
        {"TOLLGUARD": tollguard_settings(allow_countries=("SE",))},
        "security.E010",
    ),
    (
        checks.check_address_rules,
        {"TOLLGUARD": tollguard_settings(geoip_database="/nonexistent/country.mmdb")},
        "security.E010",
    ),
]


@pytest.mark.parametrize(
    ("check", "bad", "error_id"),
    CASES,
    ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CASES)],
)
def test_each_check_finds_its_problem(check: Check, bad: dict[str, Any], error_id: str) -> None:
    with override_settings(**GOOD):
        assert check() == []
    with override_settings(**{**GOOD, **bad}):
        assert [m.id for m in check()] == [error_id] * len(check())
        assert check()


def test_the_base_policy_is_strict() -> None:
    assert checks.check_csp() == []
    assert checks.check_argon2() == []
    assert checks.check_cookies() == []


def run_selfcheck(tmp_path: Path, admin_path: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "secrets.toml").write_text(f'django_secret_key = "{os.urandom(40).hex()}"\n')
    (tmp_path / "tollguard.toml").write_text(f'[web]\nadmin_path = "{admin_path}"\n')
    env = {
        **os.environ,
        "TOLLGUARD_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tollguard.web.settings.prod",
    }
    code = (
        "import sys, django; django.setup();"
        "from tollguard.web.security import selfcheck;"
        "sys.exit(selfcheck.run(sys.stdout))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_selfcheck_finds_no_security_issue_on_production_settings(tmp_path: Path) -> None:
    result = run_selfcheck(tmp_path, "x7f3a9")
    # Django's deployment checks are security.W0xx, ours security.E0xx.
    assert "security." not in result.stdout, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in {0, 1}
    if result.returncode == 0:
        assert "no issues" in result.stdout


def test_selfcheck_fails_with_the_admin_at_the_default_path(tmp_path: Path) -> None:
    result = run_selfcheck(tmp_path, "admin")
    assert result.returncode == 1
    assert "security.E007" in result.stdout
