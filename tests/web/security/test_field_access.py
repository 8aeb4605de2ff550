"""Field-level access by role (ASVS 8.2.3), in the admin and through the REST API.

Each admin test loads the change page as the role, posts back what the browser would
send plus forged values for every field, and checks which ones reached the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.test import Client, override_settings

from tollguard.web.api.models import Scope
from tollguard.web.customers.models import Account, Customer
from tollguard.web.rating.models import RateCard
from tollguard.web.security import field_access, roles

from .. import factories
from ..api import people

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def admin_urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF="tests.web.admin.urls", ALLOWED_HOSTS=["testserver"]):
        yield


class _FormFields(HTMLParser):
    """The values a browser would submit from the page's forms."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        name = attr.get("name")
        if tag == "input" and name:
            kind = attr.get("type", "text")
            if kind in {"submit", "button", "file"}:
                return
            checkable = kind in {"checkbox", "radio"}
            if checkable and "checked" not in attr:
                return
            default = "on" if checkable else ""
            self.values.setdefault(name, []).append(attr.get("value", default))
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in attr:
            self.values[self._select].append(attr.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def change_url(obj: Any) -> str:
    return f"/hidden/{obj._meta.app_label}/{obj._meta.model_name}/{obj.pk}/change/"


def post_back(client: Client, url: str, forged: dict[str, Any]) -> int:
    page = client.get(url)
    assert page.status_code == 200
    parser = _FormFields()
    parser.feed(page.content.decode())
    data: dict[str, Any] = {k: v if len(v) != 1 else v[0] for k, v in parser.values.items()}
    data.pop("_popup", None)
    for name, value in forged.items():
        if value is None:
            data.pop(name, None)  # an unticked check box
        else:
            data[name] = value
    return client.post(url, data).status_code


def signed_in(*role_names: str) -> Client:
    user = people.role_user(role_names[0])
    for extra in role_names[1:]:
        user.groups.add(people.role_user(extra).groups.get())
    client = Client()
    client.force_login(user)
    return client


def customer_state(customer: Customer) -> dict[str, Any]:
    customer.refresh_from_db()
    return {
        "name": customer.name,
        "enabled": customer.enabled,
        "sell_card": customer.sell_card_id,
        "strategy": customer.strategy,
        "allow_negative_margin": customer.allow_negative_margin,
        "max_call_duration_s": customer.max_call_duration_s,
        "country_code": customer.country_code,
        "national_prefix": customer.national_prefix,
        "strip_prefix": customer.strip_prefix,
        "providers": sorted(customer.providers.values_list("pk", flat=True)),
        "billing_mode": customer.billing_mode,
        "credit_limit": customer.credit_limit,
        "currency": customer.currency,
    }


MONEY = {"enabled", "sell_card", "max_call_duration_s", "billing_mode", "credit_limit", "currency"}
TECHNICAL = {
    "name",
    "strategy",
    "allow_negative_margin",
    "country_code",
    "national_prefix",
    "strip_prefix",
    "providers",
}


@pytest.mark.usefixtures("admin_urls")
@pytest.mark.parametrize(
    ("role_names", "changeable"),
    [
        (("billing",), MONEY),
        (("operator",), MONEY | TECHNICAL),
        (("administrator",), MONEY | TECHNICAL),
        (("billing", "operator"), MONEY | TECHNICAL),
    ],
    ids=["billing", "operator", "administrator", "billing-and-operator"],
)
def test_admin_customer_fields_by_role(role_names: tuple[str, ...], changeable: set[str]) -> None:
    w = people.world()
    # The forged card, currency and provider agree (all USD): a customer paying in
    # another currency than its card, or listing a provider priced in another currency,
    # would be refused for that alone.
    other_card = RateCard.objects.create(name="sell-c", currency="USD")
    dollars = factories.rate_card("cost-usd", kind="cost", currency="USD")
    usd_provider = factories.provider("carrier-usd", cost_card=dollars)
    before = customer_state(w.a)
    forged = {
        "name": "renamed",
        "enabled": None,
        "sell_card": str(other_card.pk),
        "strategy": "priority",
        "allow_negative_margin": "on",
        "max_call_duration_s": "60",
        "country_code": "44",
        "national_prefix": "9",
        "strip_prefix": "11",
        "providers": [str(usd_provider.pk)],
        # The card prices in USD: the customer must pay in USD to move to it.
        "billing_mode": "postpaid",
        "credit_limit": "25",
        "currency": "USD",
    }
    status = post_back(signed_in(*role_names), change_url(w.a), forged)
    assert status == 302  # saved: every refused field was left out of the form
    after = customer_state(w.a)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == changeable


@pytest.mark.usefixtures("admin_urls")
def test_billing_cannot_change_accounts_through_the_customer_page() -> None:
    w = people.world()
    account = w.account_a
    forged = {"accounts-0-id": str(account.pk), "accounts-0-enabled": None}
    forged |= {"accounts-0-allow_md5": "on", "accounts-0-username": "mallory"}
    assert post_back(signed_in("billing"), change_url(w.a), forged) == 302
    account.refresh_from_db()
    assert (account.username, account.allow_md5, account.enabled) == ("alice", False, True)


@pytest.mark.usefixtures("admin_urls")
@pytest.mark.parametrize(
    "obj",
    ["account_a", "acl_a", "gateway", "provider"],
    ids=["account", "acl", "gateway", "provider"],
)
def test_billing_cannot_post_to_technical_objects(obj: str) -> None:
    target = getattr(people.world(), obj)
    response = signed_in("billing").post(change_url(target), {"name": "x"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("role", "strategy", "max_s"),
    [("billing", "lcr", 60), ("operator", "priority", 60)],
    ids=["billing", "operator"],
)
def test_api_applies_the_same_field_rule(role: str, strategy: str, max_s: int) -> None:
    w = people.world()
    issued = people.key(people.role_user(role), Scope.WRITE_PROVISIONING)
    client = Client(headers={"Authorization": f"Bearer {issued.secret}"})
    response = client.patch(
        f"/api/v1/customers/{w.a.pk}/",
        {"strategy": "priority", "max_call_duration_s": 60},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["strategy"] == strategy
    stored = Customer.objects.get(pk=w.a.pk)
    assert (stored.strategy, stored.max_call_duration_s) == (strategy, max_s)


def test_api_account_writes_follow_the_model_permissions() -> None:
    w = people.world()
    issued = people.key(people.role_user("billing"), Scope.WRITE_PROVISIONING)
    response = Client(headers={"Authorization": f"Bearer {issued.secret}"}).patch(
        f"/api/v1/accounts/{w.account_a.pk}/", {"allow_md5": True}, content_type="application/json"
    )
    assert response.status_code == 403
    assert Account.objects.get(pk=w.account_a.pk).allow_md5 is False


def test_superusers_and_users_without_a_role_have_no_field_limits() -> None:
    root = people.user("root", is_staff=True, is_superuser=True)
    custom = people.user("custom", is_staff=True)
    for user in (root, custom):
        assert field_access.read_only_fields(user, Customer) == frozenset()


def test_the_table_names_real_roles_and_fields() -> None:
    for label, by_role in field_access.READ_ONLY_FIELDS.items():
        model = apps.get_model(label)
        for role, names in by_role.items():
            assert role in roles.ROLES
            for name in names:
                try:
                    model._meta.get_field(name)
                except FieldDoesNotExist:  # pragma: no cover - the failure message
                    pytest.fail(f"{label}.{name} in the {role} row is not a field")
