"""The pages added to the admin need the second factor like every other admin page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from .. import factories


def pages() -> list[str]:
    card = factories.rate_card()
    return [
        "/hidden/cdr/cdr/dashboard/",
        "/hidden/cdr/cdr/dashboard/data/",
        "/hidden/cdr/cdr/export/",
        f"/hidden/rating/ratecard/{card.pk}/import/",
        f"/hidden/rating/ratecard/{card.pk}/export/",
    ]


@override_settings(TOLLGUARD_OTP_REQUIRED=True)
def test_unverified_staff_are_sent_to_the_second_factor(client: Client, superuser: Any) -> None:
    TOTPDevice.objects.create(user=superuser, name="phone", confirmed=True)
    for url in pages():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/hidden/otp/verify/"), url


@override_settings(TOLLGUARD_OTP_REQUIRED=True)
@pytest.mark.usefixtures("admin_urls")
def test_verified_staff_get_the_pages(client: Client, superuser: Any) -> None:
    device = TOTPDevice.objects.create(user=superuser, name="phone", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    for url in pages():
        assert client.get(url).status_code == 200, url
