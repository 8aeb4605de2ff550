"""Billing tests: the admin at its test path, the test host allowed, no throttle state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import override_settings


@pytest.fixture(autouse=True)
def _web(db: None) -> Iterator[None]:
    cache.clear()
    with override_settings(ROOT_URLCONF="tests.web.billing.urls", ALLOWED_HOSTS=["testserver"]):
        yield
    cache.clear()
