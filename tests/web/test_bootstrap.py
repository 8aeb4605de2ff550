"""The first administrator: a one-time password that must be changed at first login."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, path

from tollguard.web import bootstrap
from tollguard.web.core.models import PasswordChangeRequired

pytestmark = pytest.mark.usefixtures("db")

urlpatterns: list[URLPattern | URLResolver] = [path("hidden/", admin.site.urls)]


def test_create_admin_returns_a_one_time_password() -> None:
    password = bootstrap.create_admin("root")
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser
    assert user.is_staff
    assert len(password) == bootstrap.ONE_TIME_PASSWORD_LENGTH
    assert user.check_password(password)
    assert user.password.startswith("argon2")
    assert password not in user.password
    assert PasswordChangeRequired.objects.filter(user=user).exists()


def test_one_time_passwords_differ() -> None:
    assert bootstrap.create_admin("a") != bootstrap.create_admin("b")


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_admin_must_change_the_one_time_password() -> None:
    password = bootstrap.create_admin("root")
    client = Client()
    assert client.login(username="root", password=password)

    response = client.get("/hidden/")
    assert response.status_code == 302
    assert response["Location"] == "/hidden/password_change/"
    assert client.get("/hidden/password_change/").status_code == 200

    new = "a much longer passphrase 42"
    response = client.post(
        "/hidden/password_change/",
        {"old_password": password, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert client.get("/hidden/").status_code == 200
    assert not PasswordChangeRequired.objects.exists()


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_admin_logins_are_security_events(caplog: pytest.LogCaptureFixture) -> None:
    password = bootstrap.create_admin("root")
    client = Client(REMOTE_ADDR="203.0.113.9")
    with caplog.at_level("INFO", logger="tollguard.security"):
        client.post("/hidden/login/", {"username": 'ro"o\nt', "password": "wrong"})
        client.post("/hidden/login/", {"username": "root", "password": password})
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert lines == [
        'admin login failure: ip=203.0.113.9 user="ro?o?t"',
        'admin login: ip=203.0.113.9 user="root"',
    ]
