"""The OpenAPI schema and the served docs: authenticated, complete, and local only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from tollguard.web.api.models import Scope

from . import people


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(people.user("root", is_staff=True, is_superuser=True))
    return client


def test_schema_needs_authentication() -> None:
    assert Client().get("/api/v1/schema/").status_code == 401
    assert Client().get("/api/v1/docs/").status_code in {401, 403}


def test_schema_lists_every_endpoint() -> None:
    admin = people.user("root", is_staff=True, is_superuser=True)
    client = Client(**people.bearer(people.key(admin, Scope.READ_CDR)))
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    for path in (
        "/api/v1/customers/",
        "/api/v1/accounts/{id}/",
        "/api/v1/acl/",
        "/api/v1/providers/",
        "/api/v1/gateways/",
        "/api/v1/rate-cards/",
        "/api/v1/rates/",
        "/api/v1/cdrs/",
        "/api/v1/stats/",
    ):
        assert path in schema["paths"], path
    account = schema["components"]["schemas"]["Account"]
    assert "password" not in account["properties"]  # write-only: only in requests
    assert "password" in schema["components"]["schemas"]["AccountRequest"]["properties"]
    params = {p["name"] for p in schema["paths"]["/api/v1/cdrs/"]["get"]["parameters"]}
    assert {"started_after", "started_before", "customer", "provider", "cursor"} <= params


def test_docs_page_loads_nothing_from_outside(staff: Client) -> None:
    page = staff.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls
    assert all(url.startswith("/") for url in urls), urls
    script = next(url for url in urls if "script" in url)
    init = staff.get(script)
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert "/api/v1/schema/" in init.content.decode()


def test_schema_generates_without_warnings_and_validates(tmp_path: Path) -> None:
    # --fail-on-warn turns any view the generator cannot describe into an error.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "bearerFormat: tg_<prefix>_<secret>" in text
