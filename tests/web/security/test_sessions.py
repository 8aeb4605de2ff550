"""HTTPS only and sessions: redirect and HSTS in production, __Host- cookies, a new
session at sign-in, idle and absolute timeouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.utils import timezone

from tollguard.web.security.middleware import SESSION_STARTED_KEY, SessionLifetimeMiddleware

from .conftest import ADMIN, PASSWORD

PROD_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
plain = Client(HTTP_HOST="localhost").get("/hidden-x/login/")
tls = Client(HTTP_HOST="localhost").get("/hidden-x/login/", secure=True)
print(json.dumps({
    "redirect": [plain.status_code, plain.get("Location")],
    "hsts": tls.get("Strict-Transport-Security"),
    "tls_status": tls.status_code,
    "cookies": [settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME],
}))
"""


@pytest.mark.parametrize("preload", [False, True], ids=["default", "preload"])
def test_production_redirects_to_https_and_sends_hsts(tmp_path: Path, preload: bool) -> None:
    (tmp_path / "secrets.toml").write_text(f'django_secret_key = "{os.urandom(40).hex()}"\n')
    (tmp_path / "tollguard.toml").write_text(
        f'[web]\nadmin_path = "hidden-x"\nhsts_preload = {str(preload).lower()}\n'
    )
    env = {
        **os.environ,
        "TOLLGUARD_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tollguard.web.settings.prod",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROD_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["redirect"] == [301, "https://localhost/hidden-x/login/"]
    assert probe["tls_status"] == 200
    expected = "max-age=31536000; includeSubDomains" + ("; preload" if preload else "")
    assert probe["hsts"] == expected
    assert probe["cookies"] == ["__Host-sessionid", "__Host-csrftoken"]


def test_cookies_are_host_prefixed_secure_httponly_strict(staff: AbstractBaseUser) -> None:
    client = Client()
    page = client.get(f"{ADMIN}login/", secure=True)
    csrf = page.cookies["__Host-csrftoken"]
    response = client.post(
        f"{ADMIN}login/", {"username": "root", "password": PASSWORD}, secure=True
    )
    session = response.cookies["__Host-sessionid"]
    for cookie in (csrf, session):
        assert cookie["secure"] is True
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"
        assert cookie["domain"] == ""


def test_sign_in_starts_a_new_session(staff: AbstractBaseUser) -> None:
    client = Client()
    planted = client.session
    planted["marker"] = "fixed by an attacker"
    planted.save()
    before = planted.session_key
    client.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    after = client.session.session_key
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()


def test_idle_sessions_expire_after_thirty_minutes(staff: AbstractBaseUser) -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    client = Client()
    client.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    key = client.session.session_key
    Session.objects.filter(pk=key).update(expire_date=timezone.now() + timedelta(minutes=1))
    client.get(f"{ADMIN}otp/enrol/")
    refreshed = Session.objects.get(pk=key).expire_date
    assert refreshed - timezone.now() > timedelta(minutes=29)  # activity extends it
    Session.objects.filter(pk=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get(f"{ADMIN}otp/enrol/")
    assert response["Location"] == f"{ADMIN}login/"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_sessions_end_twelve_hours_after_sign_in(staff: AbstractBaseUser) -> None:
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    clock = FakeClock(1_000_000.0)
    seen: list[bool] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.user.is_authenticated)
        return HttpResponse()

    middleware = SessionLifetimeMiddleware(view, clock=clock)

    def call() -> None:
        from django.contrib.auth import get_user

        request = RequestFactory().get("/")
        request.session = store
        request.user = get_user(request)  # type: ignore[assignment]
        middleware(request)

    from django.contrib.auth import login

    request = RequestFactory().get("/")
    request.session = store
    login(request, staff, backend="django.contrib.auth.backends.ModelBackend")
    store[SESSION_STARTED_KEY] = clock.now
    clock.now += 12 * 3600 - 1
    call()
    clock.now += 2
    call()
    call()
    assert seen == [True, False, False]


def test_session_start_is_stamped_at_sign_in(staff: AbstractBaseUser) -> None:
    client = Client()
    client.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    assert isinstance(client.session[SESSION_STARTED_KEY], float)


def test_disabling_a_user_ends_their_sessions(
    verified_client: Client, staff: AbstractBaseUser
) -> None:
    assert verified_client.get(ADMIN).status_code == 200
    staff.is_active = False
    staff.save()
    assert verified_client.get(ADMIN).status_code == 302


def test_a_password_change_ends_the_other_sessions(
    verified_client: Client, staff: AbstractBaseUser
) -> None:
    second = Client()
    second.force_login(staff)
    assert second.get(f"{ADMIN}otp/verify/").status_code == 200
    new = "another long passphrase 77"
    response = verified_client.post(
        f"{ADMIN}password_change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    assert verified_client.get(ADMIN).status_code == 200  # this session is kept
    # Django keeps a hash of the password in each session: the other one is gone.
    assert second.get(f"{ADMIN}otp/verify/")["Location"] == f"{ADMIN}login/"


def test_password_change_needs_the_current_password(verified_client: Client) -> None:
    new = "another long passphrase 77"
    response = verified_client.post(
        f"{ADMIN}password_change/",
        {"old_password": "wrong", "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 200
    assert "incorrectly" in response.content.decode()


def test_login_masks_the_password_and_checks_it_exactly(staff: AbstractBaseUser) -> None:
    client = Client()
    html = client.get(f"{ADMIN}login/").content.decode()
    assert 'type="password" name="password"' in html
    long_password = "p" * 99 + "q"
    staff.set_password(long_password)
    staff.save()
    request = RequestFactory().post(f"{ADMIN}login/")
    assert authenticate(request, username="root", password=long_password) == staff
    for near in ("p" * 100, long_password.upper(), long_password[:72]):
        assert authenticate(request, username="root", password=near) is None


def test_forms_need_a_csrf_token(staff: AbstractBaseUser) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"{ADMIN}login/", {"username": "root", "password": PASSWORD}, secure=True
    )
    assert response.status_code == 403
