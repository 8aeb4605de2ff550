"""Lockout (429), 403 and 404 answers are pages that say what happened and what to do,
styled by a local stylesheet, and tell an attacker nothing the documentation does not.

They were bare text ("Forbidden", axes' one-line message, Django's plain 404).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client, override_settings

from tollguard.web.security import services

from .conftest import ADMIN, PASSWORD

STYLESHEET = '<link rel="stylesheet" href="/static/core/error.css">'
# Nothing inline: the Content-Security-Policy allows neither inline script nor style.
INLINE = re.compile(r"<script|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)


def page(response: object) -> str:
    body: str = response.content.decode()  # type: ignore[attr-defined]
    assert response["Content-Type"].startswith("text/html")  # type: ignore[index]
    assert STYLESHEET in body
    assert not INLINE.search(body)
    return body


def test_a_lockout_says_how_long_and_what_to_do(staff: AbstractBaseUser) -> None:
    client = Client(REMOTE_ADDR="10.1.2.3")
    for _ in range(5):
        response = client.post(f"{ADMIN}login/", {"username": "root", "password": "wrong"})
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    body = page(response)
    assert "Too many failed sign-ins" in body
    assert "locked for 15 minutes" in body and "After 5 failed attempts" in body
    assert f'href="{ADMIN}login/"' in body  # back to the page it came from
    # Nothing about the account: not its name, nor whether it exists.
    assert "root" not in body
    again = client.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    assert again.status_code == 429 and "Too many failed sign-ins" in again.content.decode()
    unknown = Client(REMOTE_ADDR="10.1.2.4")
    for _ in range(5):
        response = unknown.post(f"{ADMIN}login/", {"username": "nobody", "password": "x"})
    assert response.status_code == 429
    assert page(response) == body  # a name that does not exist gets the same page


@override_settings(ALLOWED_HOSTS=["testserver"])
@pytest.mark.usefixtures("db")
def test_not_found_is_a_page() -> None:
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    body = page(response)
    assert "There is no page at this address" in body
    assert "/no/such/page/" not in body  # nothing of the request is echoed


def test_permission_denied_is_a_page(staff: AbstractBaseUser) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    viewer = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.groups.add(Group.objects.get(name="read-only"))
    device = TOTPDevice.objects.create(user=viewer, name="t", confirmed=True)
    client = Client()
    client.force_login(viewer)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    response = client.get(f"{ADMIN}auth/user/add/")
    assert response.status_code == 403
    body = page(response)
    assert "You may not open this page" in body
    assert "auth" not in body.lower().replace("author", "")


@pytest.mark.parametrize("reason", ["banned", "refused"])
def test_a_banned_or_refused_address_gets_the_same_page(hardened: None, reason: str) -> None:
    from datetime import timedelta

    if reason == "banned":
        services.ban("203.0.113.9", "test", timedelta(hours=1))
        response = Client(REMOTE_ADDR="203.0.113.9").get("/portal/login/")
    else:
        response = Client(REMOTE_ADDR="203.0.113.9").get(f"{ADMIN}login/")
    assert response.status_code == 403
    body = page(response)
    assert "You may not open this page" in body
    assert "ban" not in body.lower() and "203.0.113.9" not in body
