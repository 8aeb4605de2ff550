"""The site root leads to the portal, and ``/favicon.ico`` is a cacheable icon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from tollguard.web.core import views

from .api import people
from .browser.served import ServedApp, serve
from .test_observatory import observatory

ICON = Path(views.__file__).parent / "static" / "core" / "favicon.ico"


@pytest.fixture(autouse=True)
def _web(db: None) -> Iterator[None]:
    cache.clear()
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        yield
    cache.clear()


def signed_in(kind: str) -> Client:
    client = Client()
    if kind == "customer":
        client.force_login(people.customer_user("cust-a", people.world().a))
    elif kind == "staff":
        client.force_login(people.role_user("administrator"))
    return client


@pytest.mark.parametrize(
    ("kind", "location"),
    [("anonymous", "/portal/login/"), ("customer", "/portal/"), ("staff", "/portal/")],
    ids=["anonymous-to-login", "customer-to-home", "staff-to-portal-not-admin"],
)
def test_root_leads_to_the_portal(kind: str, location: str) -> None:
    response = signed_in(kind).get("/")
    assert response.status_code == 302
    assert response["Location"] == location
    # The answer depends on the session, so no shared cache may keep it.
    assert "private" in response["Cache-Control"]
    assert "Cookie" in response["Vary"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [("anonymous", 200), ("customer", 200), ("staff", 403)],
    ids=["anonymous-sees-login", "customer-sees-home", "staff-refused-by-portal"],
)
def test_following_the_root_ends_on_a_portal_page(kind: str, status: int) -> None:
    response = signed_in(kind).get("/", follow=True)
    assert response.status_code == status
    # Only portal pages on the way: the root never leads to (or names) the admin.
    assert response.redirect_chain
    assert all(url.startswith("/portal/") for url, _ in response.redirect_chain)


@pytest.mark.parametrize("path", ["/", "/favicon.ico"], ids=["root", "favicon"])
def test_only_safe_methods(path: str) -> None:
    assert Client().post(path).status_code == 405


def test_favicon_is_the_static_icon_with_a_long_cache() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content == ICON.read_bytes()
    # An ICO directory: reserved 0, type 1 (icon), then the number of images.
    assert response.content[:4] == b"\x00\x00\x01\x00"
    cache_control = response["Cache-Control"]
    assert "public" in cache_control
    assert f"max-age={views.FAVICON_MAX_AGE}" in cache_control
    assert views.FAVICON_MAX_AGE >= 24 * 3600
    # Security headers reach the icon too (the middleware runs for every answer).
    assert response["X-Content-Type-Options"] == "nosniff"


def test_favicon_head_has_no_body() -> None:
    response = Client().head("/favicon.ico")
    assert response.status_code == 200
    assert response.content == b""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with serve(tmp_path_factory.mktemp("root") / "data") as app:
        yield app


@pytest.mark.integration
def test_observatory_grades_the_root_a_plus(served: ServedApp) -> None:
    # The scanner follows the redirect, so the grade covers both answers.
    result = observatory(served, "/")
    assert "error" not in result, result
    failing = {
        name: test["result"]
        for name, test in result["tests"].items()
        if not test["pass"] or test.get("scoreModifier", 0) < 0
    }
    assert result["scan"]["grade"] == "A+", (result["scan"], failing)
    assert failing == {}
