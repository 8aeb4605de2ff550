"""Brute force: django-axes locks a user name from one address after five failures,
for fifteen minutes; the other pairs keep working; attempts show in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from .conftest import ADMIN, PASSWORD

ADDRESS = "10.1.2.3"


def fail(client: Client, times: int, username: str = "root") -> int:
    status = 0
    for _ in range(times):
        status = client.post(
            f"{ADMIN}login/", {"username": username, "password": "not the password"}
        ).status_code
    return status


def test_five_failures_lock_the_pair(
    staff: AbstractBaseUser, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(REMOTE_ADDR=ADDRESS)
    with caplog.at_level("INFO", logger="tollguard.security"):
        assert fail(client, 4) == 200
        assert fail(client, 1) == 429
    locked = client.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    assert locked.status_code == 429
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert f'admin lockout: ip={ADDRESS} user="root"' in lines

    # Another address, or another user name from this address, is not locked.
    other = Client(REMOTE_ADDR="10.9.9.9")
    response = other.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    assert fail(client, 1, username="someone-else") == 200


def test_the_lock_cools_off_after_fifteen_minutes(staff: AbstractBaseUser) -> None:
    client = Client(REMOTE_ADDR=ADDRESS)
    fail(client, 5)
    login = {"username": "root", "password": PASSWORD}
    assert client.post(f"{ADMIN}login/", login).status_code == 429
    attempt = AccessAttempt.objects.get(ip_address=ADDRESS, username="root")
    attempt.attempt_time -= timedelta(minutes=14)
    attempt.save()
    assert client.post(f"{ADMIN}login/", login).status_code == 429
    attempt.attempt_time -= timedelta(minutes=2)
    attempt.save()
    assert client.post(f"{ADMIN}login/", login).status_code == 302


def test_attempts_are_visible_in_the_admin(hardened: None) -> None:
    assert admin.site.is_registered(AccessAttempt)
