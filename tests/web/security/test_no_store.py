"""The no-store middleware on its own: who gets ``Cache-Control: no-store`` (ASVS 14.3.2).

The walk in ``test_asvs_walk.py`` checks every URL of the project; these pin the rule.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from tollguard.web.security.middleware import NoStoreMiddleware


class SignedIn:
    is_authenticated = True


def answer(cache_control: str) -> NoStoreMiddleware:
    def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse("page")
        if cache_control:
            response["Cache-Control"] = cache_control
        return response

    return NoStoreMiddleware(view)


def request_as(who: str) -> Any:
    headers = {"HTTP_AUTHORIZATION": "Bearer tg_x_y"} if who == "api-key" else {}
    request: Any = RequestFactory().get("/portal/cdrs/", **headers)
    request.user = SignedIn() if who == "session" else AnonymousUser()
    request.session = {"_auth_user_id": "7"} if who == "half-signed-in" else {}
    return request


@pytest.mark.parametrize(
    ("who", "view_sets", "expected"),
    [
        ("session", "", {"no-store"}),
        ("api-key", "", {"no-store"}),
        ("half-signed-in", "", {"no-store"}),
        ("session", "public, max-age=3600", {"no-store", "private", "max-age=3600"}),
        ("session", "no-store", {"no-store"}),
        ("anonymous", "", {""}),
        ("anonymous", "max-age=60", {"max-age=60"}),
    ],
    ids=[
        "session",
        "api-key",
        "staff-before-second-factor",
        "public-made-private",
        "kept",
        "anonymous-untouched",
        "anonymous-keeps-its-caching",
    ],
)
def test_who_gets_no_store(who: str, view_sets: str, expected: set[str]) -> None:
    response = answer(view_sets)(request_as(who))
    directives = {d.strip() for d in response.get("Cache-Control", "").split(",")}
    assert directives == expected
