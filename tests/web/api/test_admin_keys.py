"""API keys in the admin: issued to the signed-in operator, shown once, revocable."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, path

from tollguard.web.api.keys import check_key
from tollguard.web.api.models import ApiKey

from . import people

urlpatterns: list[URLPattern | URLResolver] = [path("hidden/", admin.site.urls)]

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def staff() -> tuple[Client, object]:
    user = people.user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client, user


def form(**values: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "billing system",
        "scopes": ["read:cdr", "read:stats"],
        "rate_per_minute": "120",
        "expires_at_0": "",
        "expires_at_1": "",
        "allowed_networks": "192.0.2.0/24\n2001:db8::/32",
        "customer": "",
    }
    data.update(values)
    return data


@override_settings(ROOT_URLCONF=__name__)
def test_add_shows_the_key_once(staff: tuple[Client, object]) -> None:
    client, user = staff
    response = client.post("/hidden/api/apikey/add/", form())
    assert response.status_code == 200, response.content[:500]
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r"<code>(tg_[0-9a-f]{8}_[A-Za-z0-9_-]+)</code>", response.content.decode())
    assert secret
    key = ApiKey.objects.get()
    assert key.owner_id == user.pk  # type: ignore[attr-defined]
    assert key.scopes == ["read:cdr", "read:stats"]
    assert key.allowed_networks == ["192.0.2.0/24", "2001:db8::/32"]
    assert check_key(secret.group(1), address="192.0.2.9", now=people.T0) == key
    page = client.get(f"/hidden/api/apikey/{key.pk}/change/").content.decode()
    assert key.prefix in page
    assert secret.group(1) not in page


@override_settings(ROOT_URLCONF=__name__)
def test_confined_key_cannot_write(staff: tuple[Client, object]) -> None:
    client, _ = staff
    w = people.world()
    response = client.post(
        "/hidden/api/apikey/add/",
        form(customer=str(w.a.pk), scopes=["read:cdr", "write:provisioning"]),
    )
    assert response.status_code == 200
    assert "cannot write configuration" in response.content.decode()
    assert not ApiKey.objects.exists()


@override_settings(ROOT_URLCONF=__name__)
def test_revoke_action(staff: tuple[Client, object]) -> None:
    client, user = staff
    issued = people.key(user, "read:cdr")
    response = client.post(
        "/hidden/api/apikey/",
        {"action": "revoke", "_selected_action": [str(issued.key.pk)]},
    )
    assert response.status_code == 302
    assert ApiKey.objects.get().revoked_at is not None
