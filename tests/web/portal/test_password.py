"""The portal's own password page: current password first, validators, other sessions end."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client, override_settings

from ..api import people

OLD = "a long customer passphrase"
NEW = "quartz lantern mirage 4417"


@pytest.fixture
def user() -> Iterator[Any]:
    # Argon2 is slow on purpose; these tests are about the page, not the hasher.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        w = people.world()
        account = people.customer_user("cust-a", w.a)
        account.set_password(OLD)
        account.save()
        yield account


def signed_in(user: Any) -> Client:
    client = Client()
    assert (
        client.post("/portal/login/", {"username": user.username, "password": OLD}).status_code
        == 302
    )
    return client


def change(client: Client, old: str, new: str, again: str | None = None) -> Any:
    return client.post(
        "/portal/password/",
        {"old_password": old, "new_password1": new, "new_password2": again or new},
    )


def test_the_page_asks_for_the_current_password_and_the_new_one_twice(user: Any) -> None:
    html = signed_in(user).get("/portal/password/").content.decode()
    for name in ("old_password", "new_password1", "new_password2"):
        assert f'name="{name}"' in html
    assert 'type="password"' in html
    assert 'href="/portal/password/"' in html  # in the navigation


def test_a_change_keeps_this_session_and_ends_the_others(
    user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = signed_in(user)
    other = signed_in(user)
    with caplog.at_level(logging.INFO, logger="tollguard.security"):
        response = change(client, OLD, NEW)
    assert response.status_code == 302
    assert response["Location"] == "/portal/"
    user.refresh_from_db()
    assert user.check_password(NEW)
    assert "Password changed" in client.get("/portal/").content.decode()
    assert other.get("/portal/")["Location"].startswith("/portal/login/")
    assert f'portal password changed: ip=127.0.0.1 user="{user.get_username()}"' in caplog.text
    assert NEW not in caplog.text


@pytest.mark.parametrize(
    ("old", "new", "again", "error"),
    [
        ("not my password", NEW, None, "incorrectly"),
        (OLD, NEW, "quartz lantern mirage 4418", "didn"),
        (OLD, "short", None, "too short"),
        (OLD, "password123456", None, "too common"),
    ],
    ids=["wrong-current", "mismatch", "too-short", "breached"],
)
def test_a_refused_change_says_why_and_changes_nothing(
    user: Any, old: str, new: str, again: str | None, error: str
) -> None:
    client = signed_in(user)
    response = change(client, old, new, again)
    assert response.status_code == 200
    assert error in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(OLD)


@pytest.mark.parametrize("path", ["/portal/password/", "/portal/api-keys/"])
def test_only_get_and_post(user: Any, path: str) -> None:
    response = signed_in(user).put(path)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
