"""Every API test: the database, the test host allowed, and an empty throttle cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from tollguard.web.api.models import Scope

from . import people


@pytest.fixture(autouse=True)
def _web(db: None) -> Iterator[None]:
    cache.clear()
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        yield
    cache.clear()


@pytest.fixture
def api() -> Client:
    """A client with an operator's key that reads and writes provisioning."""
    admin = people.user("root", is_staff=True, is_superuser=True)
    issued = people.key(admin, Scope.READ_PROVISIONING, Scope.WRITE_PROVISIONING)
    return Client(**people.bearer(issued))
