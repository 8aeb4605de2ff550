"""ASVS rows about the logs themselves: time stamps and what they must never hold."""

from __future__ import annotations

import logging
import time

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from tollguard.web.settings import base

from .conftest import ADMIN, PASSWORD


def test_log_times_are_utc() -> None:
    # ASVS 16.2.2: every log line starts with its time; the web process runs in UTC
    # (Django sets the process time zone from TIME_ZONE), so no line is in local time.
    assert base.TIME_ZONE == "UTC"
    assert time.strftime("%z") == "+0000"
    assert base.LOGGING["formatters"]["plain"]["format"].startswith("%(asctime)s")
    record = logging.LogRecord("tollguard.security", logging.INFO, "", 0, "x", None, None)
    stamp = logging.Formatter("%(asctime)s").format(record)
    assert stamp.startswith(time.strftime("%Y-%m-%d %H", time.gmtime(record.created)))


WRONG_PASSWORD = "my-secret-wrong-guess-4711"


def test_sign_in_logs_hold_no_password(
    staff: AbstractBaseUser, caplog: pytest.LogCaptureFixture
) -> None:
    # ASVS 16.2.5 and 16.3.1: failures and successes are logged with address and user
    # name, never with the password tried, right or wrong.
    client = Client(REMOTE_ADDR="10.1.2.3")
    with caplog.at_level(logging.DEBUG):
        client.post(f"{ADMIN}login/", {"username": "root", "password": WRONG_PASSWORD})
        client.post(f"{ADMIN}login/", {"username": "root", "password": PASSWORD})
    messages = [record.getMessage() for record in caplog.records]
    security = [m for m in messages if "ip=10.1.2.3" in m]
    assert any(m.startswith("admin login failure:") for m in security), messages
    assert any(m.startswith("admin login:") for m in security), messages
    for message in messages:
        assert WRONG_PASSWORD not in message and PASSWORD not in message
