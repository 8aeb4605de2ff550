"""The "generate SIP password" action: strong, shown once, stored only as HA1 digests."""

from __future__ import annotations

import logging
import re

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.test import Client

from tollguard.web.customers.admin import (
    SIP_PASSWORD_ALPHABET,
    SIP_PASSWORD_LENGTH,
    generate_sip_password,
)
from tollguard.web.customers.models import Account
from tollguard.web.customers.services import ha1_digests

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

CHANGELIST = "/hidden/customers/account/"
PASSWORD = re.compile(r'<code class="sip-password">([A-Za-z0-9]+)</code>')


def generate(client: Client, *accounts: Account) -> tuple[int, str, list[str]]:
    response = client.post(
        CHANGELIST,
        {
            "action": "generate_password",
            "_selected_action": [str(a.pk) for a in accounts],
            "index": "0",
        },
    )
    body = response.content.decode()
    return response.status_code, body, PASSWORD.findall(body)


def test_generated_passwords_are_long_and_random() -> None:
    passwords = {generate_sip_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == SIP_PASSWORD_LENGTH == 20
        assert set(password) <= set(SIP_PASSWORD_ALPHABET)


def test_action_shows_the_password_once_and_stores_only_digests(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    account = factories.account(factories.customer(), "alice", "old-password")
    old = (account.ha1_md5, account.ha1_sha256)
    with caplog.at_level(logging.DEBUG):
        status, _, shown = generate(client, account)
    assert status == 200
    assert len(shown) == 1
    password = shown[0]
    assert len(password) == 20
    account.refresh_from_db()
    realm = settings.TOLLGUARD.sip.realm
    assert (account.ha1_md5, account.ha1_sha256) == ha1_digests(
        "alice", realm, password, md5=account.allow_md5
    )
    assert (account.ha1_md5, account.ha1_sha256) != old
    # Shown on this answer only: not in the log, the session, a message or the history.
    assert password not in caplog.text
    assert not any(password in s.session_data for s in Session.objects.all())
    assert password not in str(client.cookies)
    assert not LogEntry.objects.filter(change_message__contains=password).exists()
    assert LogEntry.objects.filter(object_id=str(account.pk)).exists()
    later = client.get(CHANGELIST).content.decode()
    assert password not in later


def test_action_page_is_not_cached(client: Client) -> None:
    account = factories.account(factories.customer(), "alice")
    response = client.post(
        CHANGELIST,
        {"action": "generate_password", "_selected_action": [str(account.pk)], "index": "0"},
    )
    assert "no-store" in response["Cache-Control"]


def test_each_selected_account_gets_its_own_password(client: Client) -> None:
    customer = factories.customer()
    alice = factories.account(customer, "alice")
    bob = factories.account(customer, "bob")
    _, _, shown = generate(client, alice, bob)
    assert len(shown) == 2 and shown[0] != shown[1]
    realm = settings.TOLLGUARD.sip.realm
    for account, password in zip((alice, bob), shown, strict=True):
        account.refresh_from_db()
        assert account.ha1_sha256 == ha1_digests(account.username, realm, password, md5=False)[1]


def test_action_needs_change_permission(admin_urls: None) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    viewer = get_user_model().objects.create(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    account = factories.account(factories.customer(), "alice")
    before = account.ha1_sha256
    client = Client()
    client.force_login(viewer)
    _, _, shown = generate(client, account)
    assert shown == []
    account.refresh_from_db()
    assert account.ha1_sha256 == before


def test_a_new_account_without_a_password_gets_one_shown_once(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    customer = factories.customer("acme")
    with caplog.at_level(logging.DEBUG):
        response = client.post(
            "/hidden/customers/account/add/",
            {"customer": customer.pk, "username": "desk-1", "sip_password": "", "enabled": "on"},
        )
    assert response.status_code == 200, response.content[:2000]
    assert "no-store" in response["Cache-Control"]
    (password,) = PASSWORD.findall(response.content.decode())
    account = Account.objects.get(username="desk-1")
    realm = settings.TOLLGUARD.sip.realm
    assert account.ha1_sha256 == ha1_digests("desk-1", realm, password, md5=False)[1]
    assert account.ha1_md5 == ""
    assert password not in caplog.text
    assert not any(password in s.session_data for s in Session.objects.all())
    assert password not in client.get(f"{CHANGELIST}{account.pk}/change/").content.decode()


def test_a_typed_password_is_kept_and_not_shown(client: Client) -> None:
    customer = factories.customer("acme")
    response = client.post(
        "/hidden/customers/account/add/",
        {"customer": customer.pk, "username": "desk-2", "sip_password": "typed-secret-123"},
    )
    assert response.status_code == 302
    account = Account.objects.get(username="desk-2")
    realm = settings.TOLLGUARD.sip.realm
    assert account.ha1_sha256 == ha1_digests("desk-2", realm, "typed-secret-123", md5=False)[1]


def test_accounts_added_on_the_customer_page_get_passwords_too(client: Client) -> None:
    card = factories.rate_card("retail")
    response = client.post(
        "/hidden/customers/customer/add/",
        {
            "name": "globex",
            "enabled": "on",
            "sell_card": card.pk,
            "strategy": "lcr",
            "max_call_duration_s": "7200",
            "national_prefix": "0",
            "international_prefix": "00",
            "media": "default",
            "billing_mode": "prepaid",
            "credit_limit": "0",
            "currency": card.currency,
            "accounts-TOTAL_FORMS": "2",
            "accounts-INITIAL_FORMS": "0",
            "accounts-0-username": "globex-1",
            "accounts-0-enabled": "on",
            "accounts-1-username": "globex-2",
            "accounts-1-sip_password": "typed-secret-456",
            "accounts-1-enabled": "on",
            "acl-TOTAL_FORMS": "0",
            "acl-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200, response.content[:3000]
    body = response.content.decode()
    assert len(PASSWORD.findall(body)) == 1  # only the account without a typed one
    assert "globex-1" in body and "globex-2" not in body
