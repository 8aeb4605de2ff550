"""Context-specific words refused in passwords (ASVS 6.1.2, 6.2.11)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from tollguard import config
from tollguard.web.customers.models import Customer
from tollguard.web.portal.models import CustomerUser
from tollguard.web.security.validators import ContextWordsValidator, context_words, words_of

pytestmark = pytest.mark.usefixtures("db")


def deployment(**web: Any) -> Any:
    """The test ``TOLLGUARD`` with realm ``sip.carrier-one.example`` and ``web``."""
    base = settings.TOLLGUARD
    return dataclasses.replace(
        base,
        sip=dataclasses.replace(base.sip, realm="sip.carrier-one.example"),
        web=dataclasses.replace(base.web, **web),
    )


def codes(password: str, user: Any = None) -> set[str]:
    try:
        validate_password(password, user)
    except ValidationError as caught:
        return {str(error.code) for error in caught.error_list}
    return set()


def test_the_validator_is_installed() -> None:
    names = [entry["NAME"] for entry in list(settings.AUTH_PASSWORD_VALIDATORS)]
    assert "tollguard.web.security.validators.ContextWordsValidator" in names


@pytest.mark.parametrize(
    ("password", "web"),
    [
        ("my Tollguard password", {}),
        ("toll-guard-2026-spring", {}),
        ("carrier one phones ok", {}),
        ("portal.voip-east.net!!", {"password_words": ()}),
        ("gothenburg harbour tide", {"password_words": ("Gothenburg",)}),
        ("the LINDHOLMEN pier 42", {"password_words": ("lindholmen",)}),
        ("we love zürich in june", {"password_words": ("Zürich",)}),
    ],
    ids=["product", "product-split", "realm-part", "host", "operator-word", "any-case", "unicode"],
)
def test_deployment_words_are_refused(password: str, web: dict[str, Any]) -> None:
    with override_settings(
        TOLLGUARD=deployment(**web), ALLOWED_HOSTS=["portal.voip-east.net", "127.0.0.1"]
    ):
        assert "password_context_word" in codes(password)


@pytest.mark.parametrize(
    ("password", "user"),
    [
        ("hello margaret, the 2nd", {"username": "margaret", "email": ""}),
        ("winter at northwind 88", {"username": "ops7", "email": "ops7@northwind.example"}),
        ("sunny day for kowalski", {"username": "ops8", "last_name": "Kowalski"}),
    ],
    ids=["username", "email-domain", "last-name"],
)
def test_words_of_the_user_are_refused(password: str, user: dict[str, str]) -> None:
    person = get_user_model().objects.create_user(**user)
    assert "password_context_word" in codes(password, person)


def test_the_customer_name_is_refused_for_its_users() -> None:
    customer = Customer.objects.create(name="Bluefjord Telecom")
    user = get_user_model().objects.create_user("cu-1")
    CustomerUser.objects.create(user=user, customer=customer)
    assert "password_context_word" in codes("bluefjord calls cheaply", user)
    assert "password_context_word" in codes("telecom-savings-plan", user)
    # Another user is not bound by this customer's name.
    other = get_user_model().objects.create_user("staff-9")
    assert codes("bluefjord calls cheaply", other) == set()


@pytest.mark.parametrize(
    "password",
    ["open sip net map 1", "lighthouse-kettle", "8271 3390 1174"],
    ids=["short-words-ignored", "unrelated", "digits"],
)
def test_unrelated_passwords_pass(password: str) -> None:
    with override_settings(TOLLGUARD=deployment(password_words=("sip", "net", "Map"))):
        assert codes(password) == set()


def test_short_words_are_not_in_the_list() -> None:
    with override_settings(TOLLGUARD=deployment(password_words=("abc", "abcd"))):
        words = context_words()
    assert "abcd" in words
    assert "abc" not in words
    assert {"tollguard", "carrier", "carrierone"} <= words


def test_the_error_names_the_word_and_has_help() -> None:
    validator = ContextWordsValidator()
    with pytest.raises(ValidationError) as caught:
        validator.validate("TOLLGUARD rocks 123")
    assert "tollguard" in str(caught.value)
    assert "name of this service" in validator.get_help_text()


@given(
    word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=4, max_size=12),
    before=st.text(max_size=10),
    after=st.text(max_size=10),
    upper=st.booleans(),
)
def test_any_operator_word_is_found_anywhere(
    word: str, before: str, after: str, upper: bool
) -> None:
    validator = ContextWordsValidator()
    password = before + (word.upper() if upper else word) + after
    with (
        override_settings(TOLLGUARD=deployment(password_words=(word,))),
        pytest.raises(ValidationError),
    ):
        validator.validate(password)


def test_words_of_splits_on_separators() -> None:
    assert words_of("sip.carrier-one.example") == {
        "carrier",
        "carrierone",
        "example",
        "sipcarrieroneexample",
    }


def test_password_words_are_read_from_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "tollguard.toml").write_text('[web]\npassword_words = ["Gothenburg", "Pier"]\n')
    assert config.load(tmp_path).web.password_words == ("Gothenburg", "Pier")
    (tmp_path / "tollguard.toml").write_text('[web]\npassword_words = "Gothenburg"\n')
    with pytest.raises(config.ConfigError, match=r"web.password_words: expected a list"):
        config.load(tmp_path)
