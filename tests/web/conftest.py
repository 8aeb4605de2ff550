"""Django for the web tests: test settings, one in-memory database per session.

Only this directory sets Django up; the other test directories never import it.
Each test that asks for ``db`` runs inside a transaction that is rolled back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import django
import pytest

os.environ["DJANGO_SETTINGS_MODULE"] = "tollguard.web.settings.test"
django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402

from tollguard.web.security.eventlog import SecurityEventHandler  # noqa: E402

security_log = logging.getLogger("tollguard.security")


@pytest.fixture(scope="session")
def django_database() -> Iterator[None]:
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    yield
    connection.creation.destroy_test_db(old_name, verbosity=0)
    teardown_test_environment()


@pytest.fixture
def db(django_database: None) -> Iterator[None]:
    # Security lines are stored as in production (settings.LOGGING), here only while a
    # test has its database: the rows go with the test's transaction.
    handler = SecurityEventHandler()
    security_log.addHandler(handler)
    try:
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
    finally:
        security_log.removeHandler(handler)
        handler.close()
