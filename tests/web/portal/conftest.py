"""Every portal test: the database, the test host allowed, and an empty throttle cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import override_settings


@pytest.fixture(autouse=True)
def _web(db: None) -> Iterator[None]:
    cache.clear()
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        yield
    cache.clear()
