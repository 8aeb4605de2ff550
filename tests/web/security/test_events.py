"""Security events: one line each on ``tollguard.security``, all matched by one
fail2ban-style pattern; permission denials are logged by the 403 handler."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from tollguard.web.security import sentry
from tollguard.web.security.events import printable

from .conftest import ADMIN, PASSWORD

# What a fail2ban filter would use, with <HOST> expanded.
FAIL2BAN = re.compile(r"^[a-z ]+: ip=(?P<host>[0-9a-fA-F.:]+)( |$)")


def test_every_event_names_the_address(
    staff: AbstractBaseUser, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="tollguard.security"):
        Client(REMOTE_ADDR="10.0.0.1").post(
            f"{ADMIN}login/", {"username": 'x"\ny', "password": "wrong"}
        )
        Client(REMOTE_ADDR="10.0.0.2").post(
            f"{ADMIN}login/", {"username": "root", "password": PASSWORD}
        )
        Client(REMOTE_ADDR="203.0.113.3").get(f"{ADMIN}login/")
        Client(REMOTE_ADDR="203.0.113.4").post("/admin/login/", {"username": "a"})
        Client(REMOTE_ADDR="203.0.113.4").get("/")
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert [line.split(":", 1)[0] for line in lines] == [
        "admin login failure",
        "admin login",
        "address refused",
        "honeypot login",
        "address banned",
        "banned address refused",
    ]
    hosts = [FAIL2BAN.match(line) for line in lines]
    assert all(hosts), lines
    assert [m.group("host") for m in hosts if m] == [
        "10.0.0.1",
        "10.0.0.2",
        "203.0.113.3",
        "203.0.113.4",
        "203.0.113.4",
        "203.0.113.4",
    ]
    assert "\n" not in "".join(lines)
    assert 'user="x??y"' in lines[0]


def test_permission_denials_are_logged(hardened: None, caplog: pytest.LogCaptureFixture) -> None:
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_cdr"))
    client = Client(REMOTE_ADDR="10.0.0.8")
    client.force_login(user)
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="t", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    with caplog.at_level("INFO", logger="tollguard.security"):
        response = client.get(f"{ADMIN}cdr/cdr/add/")
    assert response.status_code == 403
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert lines == [f'permission denied: ip=10.0.0.8 user="viewer" path="{ADMIN}cdr/cdr/add/"']


@given(st.text(max_size=300))
def test_printable_text_cannot_break_a_log_line(text: str) -> None:
    line = printable(text)
    assert len(line) <= 64
    assert not any(c in line for c in '"\\\n\r')
    assert line.isprintable()


@given(st.ip_addresses(), st.text(max_size=40))
def test_scrubbed_reports_never_hold_an_address(address: object, noise: str) -> None:
    text = f"{noise} peer {address} said {noise}"
    scrubbed = sentry.scrub({"message": text})["message"]
    assert f" {address} " not in scrubbed
