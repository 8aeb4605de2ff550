"""Passwords: Argon2id first; length 12 to 128; common and similar ones refused;
no composition rules (NIST SP 800-63B 3.1.1.2)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from tollguard.web.security.validators import MaximumLengthValidator

pytestmark = pytest.mark.usefixtures("db")


def test_argon2id_is_the_first_hasher() -> None:
    assert settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert make_password("a long enough passphrase").startswith("argon2$argon2id$")


@pytest.mark.parametrize(
    "password",
    [
        "lighthouse-kettle",  # 17 letters and a dash: no digit, no capital needed
        "8271 3390 1174",  # digits only but long and not common
        "a" * 12 + "b",
        "correct horse battery staple " * 2 + "!",  # a 64+ character passphrase
        "x" * 128,
    ],
    ids=["letters-only", "digits-only", "twelve", "passphrase-64", "max-128"],
)
def test_good_passwords_are_accepted(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short-pw-11", "password_too_short"),
        ("x" * 129, "password_too_long"),
        ("q1w2e3r4t5y6", "password_too_common"),
        ("123456654321", "password_too_common"),
    ],
    ids=["11-chars", "129-chars", "common", "common-digits"],
)
def test_bad_passwords_are_refused(password: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_password(password)
    assert code in {error.code for error in caught.value.error_list}


def test_password_similar_to_the_user_is_refused() -> None:
    user = get_user_model()(username="margaret.thatcher", email="mt@example.com")
    with pytest.raises(ValidationError) as caught:
        validate_password("margaret.thatcher1", user)
    assert "password_too_similar" in {error.code for error in caught.value.error_list}


def test_no_composition_rule_is_configured() -> None:
    names = {v["NAME"].rsplit(".", 1)[-1] for v in settings.AUTH_PASSWORD_VALIDATORS}
    assert "NumericPasswordValidator" not in names


def test_maximum_must_allow_64_characters() -> None:
    with pytest.raises(ValueError, match="at least 64"):
        MaximumLengthValidator(max_length=63)
    assert "128" in MaximumLengthValidator().get_help_text()
