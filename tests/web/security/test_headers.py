"""Headers: a strict CSP with nonces, frame, type, referrer, opener and feature
policies, on HTML pages and static files; admin pages carry no un-nonced inline code."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from django.test import Client

from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.rating.models import Rate, RateCard
from tollguard.web.security.models import BannedAddress, HoneypotAttempt

from .. import factories
from .conftest import ADMIN

EXPECTED_CSP = (
    "default-src 'none'; script-src 'self' 'nonce-{n}'; style-src 'self' 'nonce-{n}'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'"
)


def nonce_of(policy: str) -> str:
    match = re.search(r"'nonce-([^']+)'", policy)
    assert match is not None, policy
    return match.group(1)


def test_login_page_headers(hardened: None) -> None:
    response = Client().get(f"{ADMIN}login/", secure=True)
    policy = response["Content-Security-Policy"]
    assert policy == EXPECTED_CSP.format(n=nonce_of(policy))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    permissions = response["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "usb=()", "payment=()"):
        assert feature in permissions


def test_nonces_differ_per_response(hardened: None) -> None:
    client = Client()
    first = nonce_of(client.get(f"{ADMIN}login/")["Content-Security-Policy"])
    second = nonce_of(client.get(f"{ADMIN}login/")["Content-Security-Policy"])
    assert first != second


def test_static_files_carry_the_headers(hardened: None) -> None:
    response = Client().get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response["Permissions-Policy"]
    response.close()


class InlineCode(HTMLParser):
    """Collects inline scripts and styles without the page's nonce, and style= attributes."""

    def __init__(self, nonce: str) -> None:
        super().__init__()
        self.nonce = nonce
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if "style" in values:
            self.problems.append(f"<{tag} style=...>")
        if any(name.startswith("on") for name in values):
            self.problems.append(f"<{tag} on...= handler>")
        inline = (
            tag == "script" and "src" not in values and values.get("type") != "application/json"
        )
        if inline and values.get("nonce") != self.nonce:
            self.problems.append("<script> inline without nonce")
        if tag == "style" and values.get("nonce") != self.nonce:
            self.problems.append("<style> without nonce")
        if tag in {"script", "link"} and values.get("nonce") not in {None, self.nonce}:
            self.problems.append(f"<{tag}> with a foreign nonce")
        for name in ("src", "href"):
            url = values.get(name) or ""
            if re.match(r"^(https?:)?//", url):
                self.problems.append(f"<{tag} {name}={url}> loads from outside")


CONFIG_MODELS = [
    RateCard,
    Rate,
    Provider,
    Gateway,
    Customer,
    Account,
    AclEntry,
    HoneypotAttempt,
    BannedAddress,
]


def admin_pages() -> list[str]:
    pages = [
        ADMIN,
        f"{ADMIN}password_change/",
        f"{ADMIN}auth/user/",
        f"{ADMIN}auth/user/add/",
        f"{ADMIN}auth/group/",
        f"{ADMIN}axes/accessattempt/",
        f"{ADMIN}auditlog/logentry/",
        f"{ADMIN}sessions/",
        f"{ADMIN}otp/devices/",
        f"{ADMIN}otp/confirm-password/",
    ]
    for model in CONFIG_MODELS:
        base = f"{ADMIN}{model._meta.app_label}/{model._meta.model_name}/"
        pages += [base, f"{base}add/"]
    return pages


def test_admin_pages_follow_the_policy(verified_client: Client) -> None:
    customer = factories.customer()
    provider = factories.provider()
    pages = [
        *admin_pages(),
        f"{ADMIN}customers/customer/{customer.pk}/change/",
        f"{ADMIN}carriers/provider/{provider.pk}/change/",
        f"{ADMIN}carriers/provider/{provider.pk}/delete/",
    ]
    for page in pages:
        response = verified_client.get(page, secure=True)
        assert response.status_code in {200, 403}, (page, response.status_code)
        if response.status_code != 200:
            continue
        policy = response["Content-Security-Policy"]
        nonce = nonce_of(policy) if "'nonce-" in policy else ""
        checker = InlineCode(nonce)
        checker.feed(response.content.decode())
        assert checker.problems == [], page


def test_the_scanner_finds_inline_code() -> None:
    checker = InlineCode("abc")
    checker.feed(
        '<style>p{}</style><script>x()</script><div style="a"></div>'
        '<a onclick="y()"></a><script src="https://cdn.example/x.js"></script>'
        '<script nonce="abc">ok()</script>'
    )
    assert len(checker.problems) == 5
