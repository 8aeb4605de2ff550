"""Every ``tollguard.security`` line is stored, and the dashboard and the admin read the
store: failed sign-ins, lockouts, honeypot hits, bans and permission denials show up.

Before the store, the dashboard read django-axes' ``AccessFailureLog``, which axes
writes only with ``AXES_ENABLE_ACCESS_FAILURE_LOG``: after twelve failures and two
lockouts its "Recent security events" stayed empty.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from tollguard.web.dashboard import selectors
from tollguard.web.security import eventlog
from tollguard.web.security.eventlog import EventLine, RepeatLimiter, SecurityEventHandler
from tollguard.web.security.models import SecurityEvent

from .conftest import ADMIN, PASSWORD

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
security_log = logging.getLogger("tollguard.security")


def fail(client: Client, username: str) -> int:
    return client.post(
        f"{ADMIN}login/", {"username": username, "password": "not the password"}
    ).status_code


def test_failures_and_lockouts_reach_the_dashboard(staff: AbstractBaseUser) -> None:
    first, second = Client(REMOTE_ADDR="10.1.2.3"), Client(REMOTE_ADDR="10.1.2.4")
    statuses = [fail(first, "root") for _ in range(6)] + [fail(second, "ops") for _ in range(6)]
    # Per address the fifth failure locks the pair and the sixth is refused as locked.
    assert statuses == ([200] * 4 + [429] * 2) * 2
    events = selectors.security_data()["events"]
    kinds = [(e["kind"], e["address"], e["username"]) for e in events]
    assert kinds.count(("admin lockout", "10.1.2.3", "root")) == 2
    assert kinds.count(("admin lockout", "10.1.2.4", "ops")) == 2
    assert kinds.count(("admin login failure", "10.1.2.3", "root")) == 6
    assert kinds.count(("admin login failure", "10.1.2.4", "ops")) == 6
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)


def test_honeypot_hits_bans_and_denials_are_stored(
    staff: AbstractBaseUser, verified_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="tollguard.security"):
        Client(REMOTE_ADDR="203.0.113.4").post(
            "/admin/login/", {"username": "admin", "password": "x"}
        )
        Client(REMOTE_ADDR="203.0.113.4").get("/")
    readonly = Client(REMOTE_ADDR="10.0.0.8")
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    viewer = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.groups.add(Group.objects.get(name="read-only"))
    device = TOTPDevice.objects.create(user=viewer, name="t", confirmed=True)
    readonly.force_login(viewer)
    session = readonly.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    assert readonly.get(f"{ADMIN}auth/user/add/").status_code == 403

    stored = {(e.event, e.address, e.user) for e in SecurityEvent.objects.all()}
    assert ("honeypot login", "203.0.113.4", "admin") in stored
    assert ("address banned", "203.0.113.4", "") in stored
    assert ("banned address refused", "203.0.113.4", "") in stored
    assert ("permission denied", "10.0.0.8", "viewer") in stored
    shown = {e["kind"] for e in selectors.security_data()["events"]}
    # The dashboard lists warnings; an address refused again while banned is info.
    assert {"honeypot login", "address banned", "permission denied"} <= shown
    assert "banned address refused" not in shown


def test_the_admin_lists_the_events_read_only(
    staff: AbstractBaseUser, verified_client: Client
) -> None:
    fail(Client(REMOTE_ADDR="10.7.7.7"), "mallory")
    page = verified_client.get(f"{ADMIN}security/securityevent/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "admin login failure" in text and "10.7.7.7" in text and "mallory" in text
    event = SecurityEvent.objects.get(user="mallory")
    change = verified_client.post(f"{ADMIN}security/securityevent/{event.pk}/change/", {})
    assert change.status_code == 403
    assert verified_client.get(f"{ADMIN}security/securityevent/add/").status_code == 403
    assert SecurityEvent.objects.filter(user="mallory").count() == 1


@pytest.mark.usefixtures("db")
def test_the_dashboard_endpoint_shows_new_events_without_waiting_for_its_cache(
    staff: AbstractBaseUser, verified_client: Client
) -> None:
    url = f"{ADMIN}cdr/cdr/dashboard/data/?period=1h"
    before = verified_client.get(url).json()["security"]["events"]
    fail(Client(REMOTE_ADDR="10.4.4.4"), "late")
    after = verified_client.get(url).json()["security"]["events"]
    assert len(after) == len(before) + 1
    assert after[0]["kind"] == "admin login failure" and after[0]["username"] == "late"


@pytest.mark.parametrize(
    ("line", "event", "address", "user"),
    [
        ('admin lockout: ip=203.0.113.9 user="root"', "admin lockout", "203.0.113.9", "root"),
        (
            'auth failure: ip=198.51.100.2 port=5060 transport=udp user="1001" reason=bad',
            "auth failure",
            "198.51.100.2",
            "1001",
        ),
        (
            "sip ban: ip=203.0.113.9 until=2026-01-02T03:04:05Z reason=auth-failures",
            "sip ban",
            "203.0.113.9",
            "",
        ),
        ('permission denied: ip=- user="" path="/x"', "permission denied", "", ""),
        ("something else entirely", "something else entirely", "", ""),
    ],
    ids=["web", "sip-auth", "sip-ban", "no-address", "other-shape"],
)
def test_lines_are_taken_apart(line: str, event: str, address: str, user: str) -> None:
    parsed = eventlog.parse_line(line, T0, logging.WARNING)
    assert (parsed.event, parsed.address, parsed.user) == (event, address, user)
    assert parsed.detail in line


@given(st.text(max_size=2000))
def test_any_line_parses_into_columns_that_fit(line: str) -> None:
    parsed = eventlog.parse_line(line, T0, logging.INFO)
    assert len(parsed.event) <= 64 and len(parsed.address) <= 45
    assert len(parsed.user) <= 150 and len(parsed.detail) <= 512


def line(user: str = "root") -> EventLine:
    return EventLine(T0, logging.WARNING, "admin login failure", "10.0.0.1", user, "")


def test_repeats_beyond_the_limit_are_counted_then_noted() -> None:
    limiter = RepeatLimiter(limit=3, window=60)
    admitted = [limiter.admit(line(), 1000 + n) for n in range(5)]
    assert [a is not None for a in admitted] == [True, True, True, False, False]
    assert limiter.admit(line("other"), 1010) is not None  # another key is not held back
    later = limiter.admit(line(), 1061)
    assert later is not None and "(and 2 more like it before, not stored)" in later.detail


@pytest.mark.usefixtures("db")
def test_a_line_logged_on_an_event_loop_is_queued_and_written_off_it() -> None:
    handler = SecurityEventHandler()
    record = logging.LogRecord(
        "tollguard.security", logging.WARNING, __file__, 1, "sip ban: ip=192.0.2.1 x=1", (), None
    )

    async def on_the_loop() -> None:
        handler.handle(record)

    written: list[Any] = []
    original = handler._write

    def capture(lines: list[EventLine]) -> None:
        written.append((threading.current_thread().name, [x.event for x in lines]))

    handler._write = capture  # type: ignore[method-assign]
    try:
        asyncio.run(on_the_loop())
        handler.flush()
    finally:
        handler._write = original  # type: ignore[method-assign]
    # Written by the writer thread, not on the loop's thread.
    assert written == [("security-events", ["sip ban"])]


def test_a_full_queue_drops_lines_and_says_how_many() -> None:
    handler = SecurityEventHandler(queue_size=1, limiter=RepeatLimiter(limit=100))
    blocked = threading.Event()
    stored: list[list[str]] = []

    def slow(lines: list[EventLine]) -> None:
        blocked.wait(5)
        stored.append([f"{x.event} {x.detail}" for x in lines])

    handler._store = slow  # type: ignore[method-assign]

    async def flood() -> None:
        for n in range(5):
            handler.handle(
                logging.LogRecord(
                    "tollguard.security", 30, __file__, 1, f"sip flood: ip=192.0.2.{n}", (), None
                )
            )

    asyncio.run(flood())
    blocked.set()
    handler.flush()
    # The queue holds one line (and the writer perhaps one more): the rest are counted.
    flat = [entry for batch in stored for entry in batch]
    written = [e for e in flat if e.startswith("sip flood")]
    lost = [e for e in flat if e.startswith("security events lost")]
    assert len(written) in {1, 2}
    assert lost == [f"security events lost count={5 - len(written)} reason=queue-full"]


@pytest.mark.usefixtures("db")
def test_old_events_are_deleted() -> None:
    old = SecurityEvent.objects.create(
        at=datetime.now(UTC) - eventlog.RETENTION - timedelta(days=1),
        level=30,
        event="admin lockout",
    )
    SecurityEventHandler().handle(
        logging.LogRecord(
            "tollguard.security", 30, __file__, 1, 'admin lockout: ip=10.0.0.1 user="x"', (), None
        )
    )
    assert not SecurityEvent.objects.filter(pk=old.pk).exists()
    assert not SecurityEvent.objects.filter(at__lt=datetime.now(UTC) - eventlog.RETENTION).exists()
    new = SecurityEvent.objects.get(user="x")
    assert new.at > datetime.now(UTC) - timedelta(minutes=1)
