"""The admin: every app registered, SIP passwords go in and only digests come out."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteMixin
from django.contrib.auth import get_user_model
from django.db.models import ForeignKey, ManyToManyField, Model
from django.test import Client, RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, path

from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.core.models import ConfigVersion
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.customers.services import ha1_digests
from tollguard.web.rating.models import Rate, RateCard

from . import factories

pytestmark = pytest.mark.usefixtures("db")

urlpatterns: list[URLPattern | URLResolver] = [path("hidden/", admin.site.urls)]

PAGES: list[type[Model]] = [
    RateCard,
    Rate,
    Provider,
    Gateway,
    Customer,
    Account,
    AclEntry,
    Cdr,
    ConfigVersion,
]


@pytest.fixture
def client() -> Iterator[Client]:
    # Argon2 is slow on purpose; these tests are about the admin, not the hasher.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        get_user_model().objects.create_superuser("root", password="a long admin passphrase")
        client = Client()
        assert client.login(username="root", password="a long admin passphrase")
        yield client


@pytest.mark.parametrize("model", PAGES, ids=[m._meta.label for m in PAGES])
@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_changelists_render(client: Client, model: type[Model]) -> None:
    assert admin.site.is_registered(model)
    opts = model._meta
    response = client.get(f"/hidden/{opts.app_label}/{opts.model_name}/?q=4")
    assert response.status_code == 200


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_account_form_stores_only_digests(client: Client) -> None:
    customer = factories.customer()
    response = client.post(
        "/hidden/customers/account/add/",
        {
            "customer": customer.pk,
            "username": "alice",
            "sip_password": "pa55-word",
            "allow_md5": "on",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    account = Account.objects.get(username="alice")
    realm = settings.TOLLGUARD.sip.realm
    assert (account.ha1_md5, account.ha1_sha256) == ha1_digests(
        "alice", realm, "pa55-word", md5=True
    )


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_account_form_keeps_digests_without_a_password(client: Client) -> None:
    account = factories.account(factories.customer(), "bob", "old")
    response = client.post(
        f"/hidden/customers/account/{account.pk}/change/",
        {"customer": account.customer_id, "username": "bob", "enabled": "on"},
    )
    assert response.status_code == 302
    stored = Account.objects.get(pk=account.pk)
    assert stored.ha1_sha256 == account.ha1_sha256
    assert stored.allow_md5 is False


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_renaming_an_account_needs_a_new_password(client: Client) -> None:
    account = factories.account(factories.customer(), "bob", "old")
    response = client.post(
        f"/hidden/customers/account/{account.pk}/change/",
        {"customer": account.customer_id, "username": "robert", "enabled": "on"},
    )
    assert response.status_code == 200
    assert "Changing the user name needs a new SIP password." in response.content.decode()


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_allowing_md5_needs_the_password_again(client: Client) -> None:
    account = factories.account(factories.customer(), "bob", "old")
    assert account.ha1_md5 == ""  # never made for an account without MD5
    change = f"/hidden/customers/account/{account.pk}/change/"
    fields = {"customer": account.customer_id, "username": "bob", "enabled": "on"}
    response = client.post(change, {**fields, "allow_md5": "on"})
    assert response.status_code == 200
    assert "Allowing MD5 needs the SIP password again" in response.content.decode()
    assert Account.objects.get(pk=account.pk).allow_md5 is False
    response = client.post(change, {**fields, "allow_md5": "on", "sip_password": "n3w-pass"})
    assert response.status_code == 302
    stored = Account.objects.get(pk=account.pk)
    realm = settings.TOLLGUARD.sip.realm
    assert (stored.ha1_md5, stored.ha1_sha256) == ha1_digests("bob", realm, "n3w-pass", md5=True)
    # Turning MD5 off again forgets its digest; the SHA-256 one stays.
    assert client.post(change, fields).status_code == 302
    stored = Account.objects.get(pk=account.pk)
    assert (stored.allow_md5, stored.ha1_md5) == (False, "")
    assert stored.ha1_sha256 == ha1_digests("bob", realm, "n3w-pass", md5=False)[1]


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_cdrs_are_read_only(client: Client) -> None:
    assert client.get("/hidden/cdr/cdr/add/").status_code == 403


def test_admin_static_files_are_served() -> None:
    response = Client().get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"/*")  # type: ignore[attr-defined]


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_linking_a_portal_user_takes_names_not_numbers(client: Client) -> None:
    acme = factories.customer("acme")
    alice = get_user_model().objects.create_user("alice", password="a long portal passphrase")
    get_user_model().objects.create_user("ops", password="x" * 20, is_staff=True)

    form = client.get("/hidden/portal/customeruser/add/").content.decode()
    for field in ("user", "customer"):
        # A search box (select2 over the admin's autocomplete view), not a number field.
        assert re.search(rf'<select name="{field}"[^>]*class="admin-autocomplete', form), field

    def offered(field: str, term: str) -> list[str]:
        query = {"app_label": "portal", "model_name": "customeruser", "field_name": field}
        response = client.get("/hidden/autocomplete/", {**query, "term": term})
        assert response.status_code == 200
        return [row["text"] for row in response.json()["results"]]

    assert offered("customer", "ac") == ["acme"]
    # Staff may not be customer users: the box does not offer them.
    assert offered("user", "") == ["alice"]

    response = client.post(
        "/hidden/portal/customeruser/add/", {"user": alice.pk, "customer": acme.pk}, follow=True
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any(">alice of acme</a>” was added" in m for m in messages), messages


def test_every_link_to_a_customer_carrier_card_or_account_is_a_search_box() -> None:
    # docs/admin.md promises search boxes (type a name, not a number) for these.
    targets = {Customer, Account, Provider, Gateway, RateCard}
    request = RequestFactory().get("/hidden/")
    request.user = get_user_model()(username="root", is_staff=True, is_superuser=True)
    checked: list[str] = []
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_add_permission(request):
            continue  # nobody writes these links by hand (CDRs, events)
        form = model_admin.get_form(request)
        for field in model._meta.get_fields():
            links = isinstance(field, ForeignKey | ManyToManyField)
            if not (links and field.related_model in targets):
                continue
            if field.name not in form.base_fields:
                continue
            widget = form.base_fields[field.name].widget
            widget = getattr(widget, "widget", widget)  # inside the add/change links
            checked.append(f"{model._meta.label}.{field.name}")
            assert isinstance(widget, AutocompleteMixin), checked[-1]
    assert {
        "customers.Account.customer",
        "customers.Customer.providers",
        "customers.Customer.sell_card",
        "portal.CustomerUser.customer",
        "fraud.FraudPolicy.account",
        "fraud.GatewayLimits.gateway",
        "billing.LedgerEntry.customer",
    } <= set(checked), checked
