"""API keys issued and revoked are in the audit trail, with the user who did it."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib import admin
from django.contrib.admin.models import CHANGE
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, path

from tollguard.web.api.models import ApiKey, Scope
from tollguard.web.fraud.models import SipBan

from . import people
from .test_admin_keys import form

urlpatterns: list[URLPattern | URLResolver] = [path("hidden/", admin.site.urls)]

pytestmark = pytest.mark.usefixtures("db")


def test_api_keys_are_tracked() -> None:
    assert auditlog.contains(ApiKey)


@override_settings(ROOT_URLCONF=__name__)
def test_issue_and_revoke_in_the_admin_name_the_staff_user() -> None:
    staff = people.user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    assert client.post("/hidden/api/apikey/add/", form(), REMOTE_ADDR="10.7.7.7").status_code == 200
    key = ApiKey.objects.get()
    response = client.post(
        "/hidden/api/apikey/",
        {"action": "revoke", "_selected_action": [str(key.pk)]},
        REMOTE_ADDR="10.7.7.8",
    )
    assert response.status_code == 302
    created, revoked = LogEntry.objects.get_for_object(key).order_by("timestamp", "pk")
    assert (created.action, created.actor, created.remote_addr) == (
        LogEntry.Action.CREATE,
        staff,
        "10.7.7.7",
    )
    assert (revoked.action, revoked.actor, revoked.remote_addr) == (
        LogEntry.Action.UPDATE,
        staff,
        "10.7.7.8",
    )
    assert set(revoked.changes_dict) == {"revoked_at"}
    for entry in (created, revoked):
        assert "key_hash" not in (entry.changes_dict or {})
        assert key.key_hash not in str(entry.changes)
    # The admin's own history of the key says it too.
    history = AdminLogEntry.objects.filter(object_id=str(key.pk), action_flag=CHANGE).get()
    assert (history.user_id, history.change_message) == (staff.pk, "Revoked the key.")
    # Revoking a revoked key again changes nothing and records nothing.
    client.post("/hidden/api/apikey/", {"action": "revoke", "_selected_action": [str(key.pk)]})
    assert LogEntry.objects.get_for_object(key).count() == 2


def test_a_customer_revoking_its_key_in_the_portal_is_named() -> None:
    world = people.world()
    owner = people.customer_user("portal-owner", world.a)
    issued = people.key(owner, "read:cdr", customer=world.a)
    client = Client()
    client.force_login(owner)
    response = client.post(f"/portal/api-keys/{issued.key.pk}/revoke/")
    assert response.status_code == 302
    issued.key.refresh_from_db()
    assert issued.key.revoked_at is not None
    entry = LogEntry.objects.get_for_object(issued.key).get(action=LogEntry.Action.UPDATE)
    assert entry.actor == owner


def test_a_write_made_with_an_api_key_names_the_key_owner() -> None:
    """The key is checked inside the view, after the audit middleware ran: the change is
    still recorded with the key's owner as its actor, and the caller's address."""
    operator = people.role_user("operator")
    issued = people.key(operator, Scope.READ_PROVISIONING, Scope.WRITE_PROVISIONING)
    client = Client(**people.bearer(issued))
    response = client.post(
        "/api/v1/bans/",
        json.dumps({"network": "203.0.113.9", "duration_s": 3600}),
        content_type="application/json",
        REMOTE_ADDR="10.7.7.9",
    )
    assert response.status_code == 201, response.content
    ban = SipBan.objects.get(network="203.0.113.9")
    entry = LogEntry.objects.get_for_object(ban).get(action=LogEntry.Action.CREATE)
    assert (entry.actor, entry.remote_addr) == (operator, "10.7.7.9")


def test_a_refused_key_writes_nothing_and_names_nobody() -> None:
    client = Client(HTTP_AUTHORIZATION="Bearer tg_not-a-key")
    response = client.post(
        "/api/v1/bans/",
        json.dumps({"network": "203.0.113.9"}),
        content_type="application/json",
    )
    assert response.status_code == 401
    assert not SipBan.objects.exists()
    assert not LogEntry.objects.filter(actor__isnull=False).exists()
