"""The ban list, suspensions and fraud events in the admin: roles, audit, release."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tollguard.web.fraud import selectors, services
from tollguard.web.fraud.models import SipBan, Suspension

ADMIN = "/hidden/"


@pytest.fixture
def staff(admin_urls: None) -> Any:
    def make(role: str) -> Client:
        user = get_user_model().objects.create(username=role, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client = Client()
        client.force_login(user)
        return client

    return make


def test_operator_bans_and_releases_from_the_admin(
    staff: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tollguard.security")
    client = staff("operator")
    version = selectors.live_version(services.BANS)
    response = client.post(
        f"{ADMIN}fraud/sipban/add/",
        {"network": "203.0.113.7/24", "mode": "drop", "note": "scanner range", "duration": ""},
    )
    assert response.status_code == 302, response.content
    ban = SipBan.objects.get()
    assert (ban.network, ban.expires_at, ban.reason) == ("203.0.113.0/24", None, "operator")
    assert selectors.live_version(services.BANS) == version + 1
    assert any(m.startswith("sip ban: ip=203.0.113.0/24 until=never") for m in caplog.messages)
    assert 'by="operator"' in caplog.text
    assert LogEntry.objects.get_for_object(ban).exists()
    response = client.post(
        f"{ADMIN}fraud/sipban/",
        {"action": "release", "_selected_action": [ban.pk]},
    )
    assert response.status_code == 302
    assert not SipBan.objects.exists()
    assert 'sip unban: ip=203.0.113.0/24 by="operator"' in caplog.messages


def test_bad_network_is_refused_in_the_form(staff: Any) -> None:
    client = staff("operator")
    response = client.post(
        f"{ADMIN}fraud/sipban/add/", {"network": "example.com", "mode": "drop", "duration": ""}
    )
    assert response.status_code == 200
    assert b"not an IP address or CIDR network" in response.content
    assert not SipBan.objects.exists()


def test_read_only_sees_but_cannot_ban_or_release(staff: Any) -> None:
    services.add_ban("203.0.113.9", duration=None)
    services.suspend("customer:1", "operator", duration=None)
    client = staff("read-only")
    assert client.get(f"{ADMIN}fraud/sipban/").status_code == 200
    assert client.get(f"{ADMIN}fraud/fraudevent/").status_code == 200
    assert client.get(f"{ADMIN}fraud/sipban/add/").status_code == 403
    ban = SipBan.objects.get()
    client.post(f"{ADMIN}fraud/sipban/", {"action": "release", "_selected_action": [ban.pk]})
    assert SipBan.objects.exists()
    suspension = Suspension.objects.get()
    client.post(
        f"{ADMIN}fraud/suspension/", {"action": "release", "_selected_action": [suspension.pk]}
    )
    assert Suspension.objects.exists()


def test_billing_cannot_see_the_admin_add_page(staff: Any) -> None:
    assert staff("billing").get(f"{ADMIN}fraud/sipban/add/").status_code == 403


def test_fraud_pages_render(client: Client) -> None:
    services.add_ban("203.0.113.9", duration=None)
    for page in (
        "sipban",
        "suspension",
        "fraudevent",
        "fraudpolicy",
        "destinationrule",
        "gatewaylimits",
        "fraudpolicy/add",
        "sipban/add",
    ):
        response = client.get(f"{ADMIN}fraud/{page}/")
        assert response.status_code == 200, page
