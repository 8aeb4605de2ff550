"""SIP accounts accept SHA-256 digest only unless MD5 is asked for (ASVS 11.4.1).

Every way an account is made (model, admin form, REST API, ``tollguard load``, the
switch's own plan) starts without MD5; the ``tollguard load`` case is in
``test_provisioning.py``.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from tollguard.domain import plan
from tollguard.web.api.models import Scope
from tollguard.web.customers.forms import AccountForm
from tollguard.web.customers.models import Account

from .api import people

pytestmark = pytest.mark.usefixtures("db")

PASSWORD = "correct horse battery"


def test_domain_account_defaults_to_sha256_only() -> None:
    assert plan.Account(1, 1, "alice", "", "ab" * 32).allow_md5 is False


def test_admin_form_starts_unticked() -> None:
    form = AccountForm()
    assert form["allow_md5"].initial is False
    assert 'name="allow_md5"' in str(form["allow_md5"])
    assert "checked" not in str(form["allow_md5"])


def test_admin_add_page_saves_sha256_only() -> None:
    w = people.world()
    root = get_user_model().objects.create(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    with override_settings(ROOT_URLCONF="tests.web.admin.urls", ALLOWED_HOSTS=["testserver"]):
        response = client.post(
            "/hidden/customers/account/add/",
            {"customer": w.a.pk, "username": "carol", "sip_password": PASSWORD, "enabled": "on"},
        )
    assert response.status_code == 302
    assert Account.objects.get(username="carol").allow_md5 is False


def test_api_creates_sha256_only_accounts() -> None:
    w = people.world()
    root = people.user("root", is_staff=True, is_superuser=True)
    issued = people.key(root, Scope.WRITE_PROVISIONING)
    client = Client(headers={"Authorization": f"Bearer {issued.secret}"})
    response = client.post(
        "/api/v1/accounts/",
        {"customer": w.a.pk, "username": "carol", "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["allow_md5"] is False
    assert Account.objects.get(username="carol").allow_md5 is False
