"""A signed-in superuser on the admin mounted at ``/hidden/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

ADMIN_URLS = "tests.web.admin.urls"


@pytest.fixture
def admin_urls(db: None) -> Iterator[None]:
    with override_settings(ROOT_URLCONF=ADMIN_URLS, ALLOWED_HOSTS=["testserver"]):
        yield


@pytest.fixture
def superuser(db: None) -> Any:
    user = get_user_model().objects.create(username="root", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    return user


@pytest.fixture
def client(admin_urls: None, superuser: Any) -> Client:
    # force_login: no password step, so no slow hasher; the test settings turn the
    # second factor off (tests/web/security checks it with OTP on).
    client = Client()
    client.force_login(superuser)
    return client
