"""The production security settings, switched back on for the tests of this package.

``tollguard.web.settings.test`` turns Axes and the second factor off and opens the
admin allow-list for the other web tests; :func:`hardened` restores the values of
``settings/base.py`` and mounts the admin at ``/hidden/`` next to the honeypot.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, include, path
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tollguard.config import WebSettings

ADMIN = "/hidden/"
PASSWORD = "correct horse battery staple"

urlpatterns: list[URLPattern | URLResolver] = [
    path("hidden/", admin.site.urls),
    path("api/v1/", include("tollguard.web.api.urls")),
    path("", include("tollguard.web.security.urls")),
]
handler403 = "tollguard.web.security.views.permission_denied"


def tollguard_settings(**web: Any) -> Any:
    """The test ``TOLLGUARD`` object with production web defaults, then ``web``."""
    defaults = WebSettings()
    values = {
        "admin_allow": defaults.admin_allow,
        "api_allow": defaults.api_allow,
        **web,
    }
    return dataclasses.replace(
        settings.TOLLGUARD, web=dataclasses.replace(settings.TOLLGUARD.web, **values)
    )


HARDENED: dict[str, Any] = {
    "ROOT_URLCONF": __name__,
    "ALLOWED_HOSTS": ["testserver"],
    "AUTHENTICATION_BACKENDS": [
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.ModelBackend",
    ],
    "AXES_ENABLED": True,
    "TOLLGUARD_OTP_REQUIRED": True,
    # Argon2 is slow on purpose; these tests are about the flow, test_passwords checks it.
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
}


@pytest.fixture
def hardened(db: None) -> Iterator[None]:
    with override_settings(**HARDENED, TOLLGUARD=tollguard_settings()):
        yield


@pytest.fixture
def staff(hardened: None) -> AbstractBaseUser:
    user: AbstractBaseUser = get_user_model().objects.create_superuser("root", password=PASSWORD)
    return user


@pytest.fixture
def verified_client(staff: AbstractBaseUser) -> Client:
    """A client signed in as ``staff`` whose session passed the second factor."""
    device = TOTPDevice.objects.create(user=staff, name="t", confirmed=True)
    client = Client()
    client.force_login(staff)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One fake clock for TOTP codes and for the password confirmation."""
    fake = FakeClock(1_800_000_000.0)
    import django_otp.plugins.otp_totp.models as totp_models

    from tollguard.web.security import factors

    monkeypatch.setattr(totp_models, "time", types.SimpleNamespace(time=fake.time))
    monkeypatch.setattr(factors, "clock", fake.time)
    return fake


def code_for(device: TOTPDevice, clock: FakeClock) -> str:
    """The code ``device`` shows at ``clock``'s time."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = clock.now
    return f"{totp.token():06d}"
