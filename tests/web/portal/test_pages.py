"""The customer portal: sign-in, own calls and exports, rate card, SIP and API keys."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.templatetags.static import static
from django.test import Client, override_settings
from django.utils import timezone

from tollguard.web.api.keys import check_key
from tollguard.web.api.models import ApiKey
from tollguard.web.cdr.models import Cdr
from tollguard.web.customers.models import Account
from tollguard.web.customers.services import ha1_digests

from ..api import people

PAGES = [
    "/portal/",
    "/portal/cdrs/",
    "/portal/accounts/",
    "/portal/numbers/",
    "/portal/api-keys/",
    "/portal/password/",
]


@pytest.fixture
def w() -> people.World:
    return people.world()


@pytest.fixture
def alice(w: people.World) -> Client:
    client = Client()
    client.force_login(people.customer_user("cust-a", w.a))
    return client


def text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return str(response.content.decode())


def test_login_with_password() -> None:
    w = people.world()
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        user = people.customer_user("cust-a", w.a)
        user.set_password("a long customer passphrase")
        user.save()
        client = Client()
        page = client.get("/portal/login/")
        assert page.status_code == 200
        assert 'name="password"' in text(page)
        wrong = client.post(
            "/portal/login/", {"username": "cust-a", "password": "not the passphrase"}
        )
        assert wrong.status_code == 200
        assert "did not match" in text(wrong)
        right = client.post(
            "/portal/login/", {"username": "cust-a", "password": "a long customer passphrase"}
        )
    assert right.status_code == 302
    assert right["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200


@pytest.mark.parametrize("path", PAGES, ids=PAGES)
def test_anonymous_is_sent_to_login(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/portal/login/?next=")


@pytest.mark.parametrize("path", PAGES, ids=PAGES)
def test_operator_without_customer_is_refused(path: str) -> None:
    client = Client()
    client.force_login(people.user("root", is_staff=True, is_superuser=True))
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", PAGES, ids=PAGES)
def test_pages_follow_the_content_security_policy(alice: Client, path: str) -> None:
    response = alice.get(path)
    assert response.status_code == 200
    html = text(response)
    assert "<style" not in html
    assert " style=" not in html
    assert "<script" not in html
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', html) == [
        static("portal/portal.css")
    ]
    assert response["Cache-Control"] == "no-store"


def test_stylesheet_is_served(alice: Client) -> None:
    response = alice.get(static("portal/portal.css"))
    assert response.status_code == 200
    assert "font" in text(response)


def test_overview_shows_the_balance(alice: Client) -> None:
    # No ledger entry yet: a balance of nothing, not a made-up one.
    html = text(alice.get("/portal/"))
    assert '<dd id="funds-balance">0.0000 EUR</dd>' in html
    assert "/portal/ledger/" in html
    assert "/portal/rate-card.csv" in html


def test_overview_shows_this_and_last_months_charges(w: people.World) -> None:
    now = timezone.now()
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = this_month - timedelta(days=1)
    for started, amount in ((this_month, "1.25"), (this_month, "0.50"), (last_month, "2.00")):
        people.cdr(w.a, started, answered_at=started, sell_amount=Decimal(amount))
    people.cdr(w.a, this_month, sip_code=486)  # not answered, nothing charged
    people.cdr(w.b, this_month, answered_at=this_month, sell_amount=Decimal("99"))
    client = Client()
    client.force_login(people.customer_user("cust-charges", w.a))
    html = text(client.get("/portal/"))
    this_row = f"<td>{this_month:%B %Y} (so far)</td>\n      <td>3</td>\n      <td>2</td>\n"
    assert this_row in html
    assert "<td>1.7500 EUR</td>" in html
    assert "<td>2.0000 EUR</td>" in html
    assert "99" not in html  # another customer's calls


def test_cdr_list_shows_only_own_calls(alice: Client, w: people.World) -> None:
    html = text(alice.get("/portal/cdrs/"))
    assert w.cdr_a.callee in html
    assert w.cdr_b.callee not in html


def test_cdr_list_filters(alice: Client, w: people.World) -> None:
    people.cdr(w.a, people.T0 + timedelta(days=2), callee="3312345", sip_code=486)
    html = text(alice.get("/portal/cdrs/?callee_prefix=33"))
    assert "3312345" in html
    assert w.cdr_a.callee not in html
    html = text(alice.get("/portal/cdrs/?since=2026-03-02&until=2026-03-03"))
    assert "3312345" in html
    assert w.cdr_a.callee not in html
    bad = alice.get("/portal/cdrs/?sip_code=abc")
    assert bad.status_code == 200
    assert "No calls match" in text(bad)


def test_cdr_list_pages_with_a_cursor(alice: Client, w: people.World) -> None:
    Cdr.objects.all().delete()
    for n in range(60):
        people.cdr(w.a, people.T0 + timedelta(seconds=n // 2), callee=f"4930{n:04d}")
    first = text(alice.get("/portal/cdrs/"))
    assert first.count("<tr>") == 51  # header + 50 rows
    older = re.search(r'href="\?([^"]*after=[^"]+)" rel="next"', first)
    assert older
    second = text(alice.get("/portal/cdrs/?" + older.group(1).replace("&amp;", "&")))
    assert second.count("<tr>") == 11
    shown = set(re.findall(r"4930\d{4}", first)) | set(re.findall(r"4930\d{4}", second))
    assert len(shown) == 60
    assert 'rel="next"' not in second


def test_cdr_export_is_own_filtered_csv(alice: Client, w: people.World) -> None:
    people.cdr(w.a, people.T0 + timedelta(hours=1), callee="4912", caller="=HYPERLINK(1)")
    response = alice.get("/portal/cdrs/export.csv?callee_prefix=49")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(text(response))))
    assert [r["callee"] for r in rows] == ["4930123", "4912"]
    assert rows[1]["caller"] == "'=HYPERLINK(1)"
    assert "cost_amount" not in rows[0]
    assert "provider_id" not in rows[0]
    # The SIP account by the name the customer gave it, not a number of ours.
    assert "account_id" not in rows[0] and "account" in rows[0]
    assert rows[0]["sell_currency"] == "EUR"


def test_rate_card_download(alice: Client, w: people.World) -> None:
    response = alice.get("/portal/rate-card.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(text(response))))
    assert [(r["prefix"], r["price_per_minute"], r["currency"]) for r in rows] == [
        ("4930", "0.010000", "EUR")
    ]


def test_rate_card_missing(w: people.World) -> None:
    w.a.sell_card = None
    w.a.save()
    client = Client()
    client.force_login(people.customer_user("cust-a", w.a))
    assert client.get("/portal/rate-card.csv").status_code == 404


def test_sip_password_reset(alice: Client, w: people.World) -> None:
    listing = text(alice.get("/portal/accounts/"))
    assert "alice" in listing
    assert "bob" not in listing
    before = Account.objects.get(pk=w.account_a.pk).ha1_sha256
    # The list's link leads to a page that asks; asking changes nothing.
    assert f'href="/portal/accounts/{w.account_a.pk}/reset/"' in listing
    confirm = alice.get(f"/portal/accounts/{w.account_a.pk}/reset/")
    assert confirm.status_code == 200
    assert "stops working until it is given" in text(confirm)
    assert f'<form method="post" action="/portal/accounts/{w.account_a.pk}/reset/">' in text(
        confirm
    )
    assert Account.objects.get(pk=w.account_a.pk).ha1_sha256 == before
    response = alice.post(f"/portal/accounts/{w.account_a.pk}/reset/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    password = re.search(r'<output class="secret"[^>]*>([A-Za-z0-9]+)</output>', text(response))
    assert password
    assert len(password.group(1)) == 24
    account = Account.objects.get(pk=w.account_a.pk)
    realm = settings.TOLLGUARD.sip.realm
    assert (account.ha1_md5, account.ha1_sha256) == ha1_digests(
        "alice", realm, password.group(1), md5=account.allow_md5
    )
    assert password.group(1) not in text(alice.get("/portal/accounts/"))


def test_sip_reset_of_another_customers_account_is_404(alice: Client, w: people.World) -> None:
    before = Account.objects.get(pk=w.account_b.pk).ha1_sha256
    assert alice.post(f"/portal/accounts/{w.account_b.pk}/reset/").status_code == 404
    assert alice.get(f"/portal/accounts/{w.account_b.pk}/reset/").status_code == 404
    assert Account.objects.get(pk=w.account_b.pk).ha1_sha256 == before


def test_api_key_create_use_and_revoke(alice: Client, w: people.World) -> None:
    response = alice.post(
        "/portal/api-keys/",
        {"name": "billing export", "scopes": ["read:cdr"], "allowed_networks": "127.0.0.0/8"},
    )
    assert response.status_code == 200
    found = re.search(r'<output class="secret"[^>]*>(tg_[^<]+)</output>', text(response))
    assert found
    secret = found.group(1)
    key = ApiKey.objects.get(name="billing export")
    assert key.customer_id == w.a.pk
    assert key.allowed_networks == ["127.0.0.0/8"]
    listing = text(alice.get("/portal/api-keys/"))
    assert key.prefix in listing
    assert secret not in listing
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [r["id"] for r in api.get("/api/v1/cdrs/").json()["results"]] == [w.cdr_a.pk]
    # One click on the list only asks; the key still works until the form is sent.
    assert f'href="/portal/api-keys/{key.pk}/revoke/"' in listing
    confirm = alice.get(f"/portal/api-keys/{key.pk}/revoke/")
    assert confirm.status_code == 200 and "stops working at once" in text(confirm)
    assert api.get("/api/v1/cdrs/").status_code == 200
    assert alice.post(f"/portal/api-keys/{key.pk}/revoke/").status_code == 302
    assert api.get("/api/v1/cdrs/").status_code == 401
    assert "already revoked" in text(alice.get(f"/portal/api-keys/{key.pk}/revoke/"))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "k", "scopes": ["write:provisioning"]}, "valid choice"),
        ({"name": "k", "scopes": ["read:cdr"], "allowed_networks": "10.0.0.1/8"}, "CIDR"),
        ({"name": "k", "scopes": ["read:cdr"], "expires_on": "2001-01-01"}, "future"),
        ({"name": "", "scopes": ["read:cdr"]}, "required"),
    ],
    ids=["write-scope", "host-bits", "past-expiry", "no-name"],
)
def test_api_key_form_refuses(alice: Client, data: dict[str, Any], error: str) -> None:
    response = alice.post("/portal/api-keys/", data)
    assert response.status_code == 200
    assert error in text(response)
    assert not ApiKey.objects.exists()


def test_api_key_form_groups_the_scopes_and_labels_every_other_field(alice: Client) -> None:
    html = text(alice.get("/portal/api-keys/"))
    assert "<fieldset><legend>Scopes</legend>" in html
    for name in ("name", "expires_on", "allowed_networks"):
        assert f'<label for="id_{name}">' in html
    assert '<div class="help">Leave empty: never.</div>' in html


def test_cannot_revoke_another_customers_key(alice: Client, w: people.World) -> None:
    other = people.key(people.customer_user("cust-b", w.b), "read:cdr")
    assert alice.post(f"/portal/api-keys/{other.key.pk}/revoke/").status_code == 404
    check_key(other.secret, address="127.0.0.1", now=people.T0)


def test_logout_is_post_only(alice: Client) -> None:
    assert alice.get("/portal/logout/").status_code == 405
    assert alice.post("/portal/logout/").status_code == 302
    assert alice.get("/portal/").status_code == 302


def test_staff_cannot_be_customer_users(w: people.World) -> None:
    from django.core.exceptions import ValidationError

    from tollguard.web.portal.models import CustomerUser

    link = CustomerUser(user=people.user("op", is_staff=True), customer=w.a)
    with pytest.raises(ValidationError, match="Staff users"):
        link.full_clean()


def test_key_scopes_promise_only_what_a_customer_key_reads(alice: Client) -> None:
    html = text(alice.get("/portal/api-keys/"))
    assert "carriers" not in html
    assert "read your customer record, SIP accounts, IP access list and rate card" in html
    assert "read your calls (CDRs)" in html
