"""The SIP ban list through the API: operators list, add and release; roles and
customer keys are refused; every change is logged and bumps the live-state version."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client

from tollguard.web.api.models import Scope
from tollguard.web.fraud import selectors, services
from tollguard.web.fraud.models import SipBan

from . import people

BANS = "/api/v1/bans/"


def post(client: Client, body: dict[str, Any]) -> Any:
    return client.post(BANS, json.dumps(body), content_type="application/json")


def staff_key(role: str, *scopes: str) -> Client:
    return Client(**people.bearer(people.key(people.role_user(role), *scopes)))


def test_operator_lists_adds_and_releases(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollguard.security")
    client = staff_key("operator", Scope.READ_PROVISIONING, Scope.WRITE_PROVISIONING)
    version = selectors.live_version(services.BANS)
    response = post(client, {"network": "203.0.113.9", "duration_s": 3600, "note": "guessing"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["network"] == "203.0.113.9"
    assert body["reason"] == "operator" and body["expires_at"] is not None
    assert "duration_s" not in body
    assert post(client, {"network": "198.51.100.0/24", "mode": "refuse"}).status_code == 201
    assert selectors.live_version(services.BANS) == version + 2
    listed = client.get(BANS).json()["results"]
    assert [row["network"] for row in listed] == ["198.51.100.0/24", "203.0.113.9"]
    assert listed[0]["expires_at"] is None and listed[0]["mode"] == "refuse"
    # Adding a network again replaces its ban (no uniqueness error).
    assert post(client, {"network": "203.0.113.9"}).status_code == 201
    assert SipBan.objects.get(network="203.0.113.9").expires_at is None
    ban = SipBan.objects.get(network="198.51.100.0/24")
    assert client.delete(f"{BANS}{ban.pk}/").status_code == 204
    assert not SipBan.objects.filter(pk=ban.pk).exists()
    assert any(m.startswith('sip unban: ip=198.51.100.0/24 by="api key ') for m in caplog.messages)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"network": "example.com"}, "network"),
        ({"network": "203.0.113.0/33"}, "network"),
        ({"network": "203.0.113.9", "duration_s": 0}, "duration_s"),
        ({"network": "203.0.113.9", "mode": "explode"}, "mode"),
    ],
)
def test_bad_bans_are_refused_with_the_field(body: dict[str, Any], field: str) -> None:
    client = staff_key("operator", Scope.READ_PROVISIONING, Scope.WRITE_PROVISIONING)
    response = post(client, body)
    assert response.status_code == 400
    assert field in response.json()
    assert not SipBan.objects.exists()


def test_bans_are_never_edited_in_place() -> None:
    client = staff_key("operator", Scope.READ_PROVISIONING, Scope.WRITE_PROVISIONING)
    ban = services.add_ban("203.0.113.9", duration=None)
    response = client.patch(
        f"{BANS}{ban.pk}/", json.dumps({"note": "x"}), content_type="application/json"
    )
    assert response.status_code == 405


def test_read_only_role_and_read_scope_cannot_write() -> None:
    services.add_ban("203.0.113.9", duration=None)
    reader = staff_key("read-only", Scope.READ_PROVISIONING, Scope.WRITE_PROVISIONING)
    assert reader.get(BANS).status_code == 200
    assert post(reader, {"network": "192.0.2.1"}).status_code == 403
    read_scope = staff_key("operator", Scope.READ_PROVISIONING)
    assert post(read_scope, {"network": "192.0.2.1"}).status_code == 403
    assert SipBan.objects.count() == 1


def test_customer_keys_cannot_see_the_ban_list() -> None:
    w = people.world()
    owner = people.customer_user("cust-a", w.a)
    client = Client(**people.bearer(people.key(owner, Scope.READ_PROVISIONING)))
    services.add_ban("203.0.113.9", duration=None)
    assert client.get(BANS).status_code == 403
