"""The decoy at /admin/ looks like Django's admin, records and logs every attempt, and
bans the address from every web URL for a while."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client, override_settings
from django.utils import timezone

from tollguard.web.security import services
from tollguard.web.security.models import BannedAddress, HoneypotAttempt

from .conftest import ADMIN

pytestmark = pytest.mark.usefixtures("hardened")

ATTACKER = "203.0.113.66"


def test_the_default_path_sends_to_a_login_page_like_django() -> None:
    client = Client(REMOTE_ADDR=ATTACKER)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=%2Fadmin%2F"
    html = client.get("/admin/login/?next=/admin/").content.decode()
    for marker in (
        "Django administration",
        'id="login-form"',
        'name="username"',
        'name="password"',
        "/static/admin/css/login.css",
    ):
        assert marker in html
    assert ADMIN not in html
    assert not HoneypotAttempt.objects.exists()  # looking is not an attempt


def test_an_attempt_is_recorded_logged_and_banned(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(REMOTE_ADDR=ATTACKER, HTTP_USER_AGENT="curl/8.5")
    with caplog.at_level("INFO", logger="tollguard.security"):
        response = client.post("/admin/login/", {"username": "admin", "password": "admin"})
    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()

    attempt = HoneypotAttempt.objects.get()
    assert (attempt.address, attempt.username, attempt.user_agent) == (
        ATTACKER,
        "admin",
        "curl/8.5",
    )
    ban = BannedAddress.objects.get()
    assert ban.address == ATTACKER
    assert ban.expires_at - timezone.now() > timedelta(hours=23)
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert lines[0] == f'honeypot login: ip={ATTACKER} user="admin" agent="curl/8.5"'
    assert lines[1].startswith(f"address banned: ip={ATTACKER} until=")

    # Banned everywhere: the real admin, the honeypot, any other page.
    for page in (ADMIN, f"{ADMIN}login/", "/admin/login/", "/nowhere/"):
        assert client.get(page).status_code == 403
    assert Client(REMOTE_ADDR="10.0.0.9").get(f"{ADMIN}login/").status_code == 200


def test_a_ban_expires() -> None:
    services.ban(ATTACKER, "test", timedelta(minutes=5))
    client = Client(REMOTE_ADDR=ATTACKER)
    assert client.get("/admin/login/").status_code == 403
    BannedAddress.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/admin/login/").status_code == 200


def test_a_longer_ban_is_kept_and_unban_lifts_it() -> None:
    services.ban(ATTACKER, "long", timedelta(days=7))
    services.ban(ATTACKER, "short", timedelta(minutes=1))
    assert BannedAddress.objects.get().reason == "long"
    assert services.unban(ATTACKER) == 1
    assert not services.is_banned(ATTACKER)


def test_an_ipv4_mapped_address_is_the_same_address() -> None:
    services.ban(f"::ffff:{ATTACKER}", "mapped", timedelta(minutes=5))
    assert services.is_banned(ATTACKER)


@override_settings(TOLLGUARD_HONEYPOT_BAN_SECONDS=60)
def test_ban_length_is_configurable() -> None:
    Client(REMOTE_ADDR=ATTACKER).post("/admin/login/", {"username": "x", "password": "y"})
    ban = BannedAddress.objects.get()
    assert ban.expires_at - ban.created_at == timedelta(seconds=60)


def test_attempts_and_bans_are_in_the_admin() -> None:
    assert admin.site.is_registered(HoneypotAttempt)
    assert admin.site.is_registered(BannedAddress)


def test_unban_command_lifts_a_ban() -> None:
    from io import StringIO

    from django.core.management import call_command

    services.ban(ATTACKER, "test", timedelta(minutes=5))
    out = StringIO()
    call_command("unban", ATTACKER, "192.0.2.200", stdout=out)
    assert out.getvalue().splitlines() == [f"{ATTACKER}: unbanned", "192.0.2.200: not banned"]
    assert not BannedAddress.objects.exists()
