"""Audit trail: who changed which configuration object, when and from where."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.test import Client

from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.rating.models import Rate, RateCard
from tollguard.web.security.models import BannedAddress

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

TRACKED = [
    Customer,
    Account,
    AclEntry,
    Provider,
    Gateway,
    RateCard,
    Rate,
    BannedAddress,
    Group,
    get_user_model(),
]


@pytest.mark.parametrize("model", TRACKED, ids=[m._meta.label for m in TRACKED])
def test_configuration_models_are_tracked(model: type) -> None:
    from auditlog.registry import auditlog

    assert auditlog.contains(model)


def test_an_admin_change_records_actor_time_and_address(
    verified_client: Client, staff: AbstractBaseUser
) -> None:
    provider = factories.provider(name="carrier-x")
    response = verified_client.post(
        f"/hidden/carriers/provider/{provider.pk}/delete/",
        {"post": "yes"},
        REMOTE_ADDR="10.7.7.7",
    )
    assert response.status_code == 302
    entry = LogEntry.objects.get_for_object(provider).get(action=LogEntry.Action.DELETE)
    assert entry.actor == staff
    assert entry.remote_addr == "10.7.7.7"
    assert entry.timestamp is not None
    assert entry.object_repr == "carrier-x"


def test_a_model_change_is_recorded_without_secrets() -> None:
    account = factories.account(factories.customer(), "alice", "pw")
    account.username = "alice2"
    account.ha1_sha256 = "0" * 64
    account.save()
    entry = LogEntry.objects.get_for_object(account).latest("timestamp")
    assert entry.action == LogEntry.Action.UPDATE
    assert "username" in entry.changes_dict
    assert "ha1_sha256" not in entry.changes_dict
    assert "ha1_md5" not in (entry.changes_dict or {})


def test_user_password_hashes_stay_out_of_the_trail(db: None) -> None:
    user = get_user_model().objects.create_user("ops", password="first passphrase 1")
    user.set_password("second passphrase 2")
    user.save()
    for entry in LogEntry.objects.get_for_object(user):
        assert "password" not in (entry.changes_dict or {})


def test_the_trail_is_in_the_admin(db: None) -> None:
    assert admin.site.is_registered(LogEntry)
