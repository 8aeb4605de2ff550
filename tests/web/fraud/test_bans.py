"""The SIP ban list in the database: import/export (plain and APIBAN), persistence
across a switch restart, synchronisation with the switch's memory."""

from __future__ import annotations

import ipaddress
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from tollguard.domain.fraud import Suspension
from tollguard.domain.shield import Ban, BanMode, BanReason, Shield, ShieldPolicy
from tollguard.state.memory import MemoryBans, MemoryCounters, MemorySuspensions
from tollguard.state.sync import LiveStateSync
from tollguard.web.fraud import selectors, services
from tollguard.web.fraud.models import FraudEvent, SipBan
from tollguard.web.fraud.stores import DbBanStore, DbFraudEventStore, DbSuspensionStore

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)

APIBAN = """{
  "ipaddress": ["203.0.113.9", "198.51.100.0/24", "2001:db8::7"],
  "ID": "1700000000"
}"""


def networks() -> list[str]:
    return sorted(SipBan.objects.values_list("network", flat=True))


# --- parsing -----------------------------------------------------------------------------------


def test_plain_list_with_comments_and_blank_lines() -> None:
    text = (
        "# scanners seen this week\n203.0.113.9\n\n"
        "198.51.100.0/24  # a whole range\n::ffff:192.0.2.1\n"
    )
    assert [str(n) for n in services.parse_ban_list(text)] == [
        "203.0.113.9/32",
        "198.51.100.0/24",
        "192.0.2.1/32",
    ]


def test_apiban_json() -> None:
    assert [str(n) for n in services.parse_ban_list(APIBAN)] == [
        "203.0.113.9/32",
        "198.51.100.0/24",
        "2001:db8::7/128",
    ]
    assert services.parse_ban_list('["192.0.2.1"]') == [ipaddress.ip_network("192.0.2.1/32")]


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        (
            "203.0.113.9\nexample.com\n198.51.100.0/33\n",
            [
                "line 2: 'example.com' is not an IP address or CIDR network",
                "line 3: '198.51.100.0/33' is not an IP address or CIDR network",
            ],
        ),
        (
            '{"ipaddress": ["203.0.113.9", 7, "x"]}',
            [
                "entry 2: 7 is not a string",
                "entry 3: 'x' is not an IP address or CIDR network",
            ],
        ),
        ('{"ipaddress": ["203.0.113.9",\n}', ["line 2: not valid JSON (Expecting value)"]),
        ('{"ID": "1"}', ['JSON: expected an object with an "ipaddress" list (APIBAN)']),
        ('{"ipaddress": "203.0.113.9"}', ["JSON: expected a list of addresses"]),
    ],
    ids=["plain", "apiban-entries", "broken-json", "no-ipaddress", "not-a-list"],
)
def test_bad_lists_name_every_bad_line(text: str, errors: list[str]) -> None:
    with pytest.raises(services.BanListError) as caught:
        services.parse_ban_list(text)
    assert caught.value.errors == errors


def test_a_failed_import_changes_nothing() -> None:
    services.add_ban("192.0.2.50", duration=None, by="ops")
    before = selectors.live_version(services.BANS)
    with pytest.raises(services.BanListError):
        services.import_bans("203.0.113.9\nnot-an-address\n", duration=None)
    assert networks() == ["192.0.2.50"]
    assert selectors.live_version(services.BANS) == before


# --- import, export, add, remove -------------------------------------------------------------


def test_import_export_round_trip(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollguard.security")
    services.add_ban("203.0.113.9", duration=timedelta(hours=1), by="ops", now=NOW)
    report = services.import_bans(APIBAN, duration=timedelta(days=7), note="apiban", by="ops")
    assert (report.added, report.replaced) == (2, 1)
    assert networks() == ["198.51.100.0/24", "2001:db8::7", "203.0.113.9"]
    ban = SipBan.objects.get(network="203.0.113.9")
    assert ban.reason == BanReason.IMPORT and ban.note == "apiban"
    text = services.export_bans("text")
    assert text == "198.51.100.0/24\n2001:db8::7\n203.0.113.9\n"
    exported = services.export_bans("json")
    assert json.loads(exported) == {"ipaddress": ["198.51.100.0/24", "2001:db8::7", "203.0.113.9"]}
    assert services.parse_ban_list(exported) == services.parse_ban_list(text)
    assert "sip ban import: ip=- count=3 until=" in caplog.text


def test_expired_bans_are_not_exported() -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    services.add_ban("203.0.113.9", duration=timedelta(hours=1), now=yesterday)
    services.add_ban("203.0.113.10", duration=None)
    assert services.export_bans() == "203.0.113.10\n"


def test_add_and_remove_log_and_bump_the_version(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tollguard.security")
    version = selectors.live_version(services.BANS)
    services.add_ban("203.0.113.0/24", duration=None, note="abuse", by="ops")
    assert selectors.live_version(services.BANS) == version + 1
    assert services.remove_ban("203.0.113.0/24", by="ops")
    assert not services.remove_ban("203.0.113.0/24", by="ops")
    assert selectors.live_version(services.BANS) == version + 2
    assert (
        'sip ban: ip=203.0.113.0/24 until=never reason=operator offences=1 mode=drop by="ops"'
        in caplog.messages
    )
    assert 'sip unban: ip=203.0.113.0/24 by="ops"' in caplog.messages


def test_add_refuses_what_is_not_an_address() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        services.add_ban("example.com", duration=None)
    assert networks() == []


# --- the switch's side: persistence and synchronisation ---------------------------------------


def switch() -> tuple[Shield, MemoryBans, MemorySuspensions, LiveStateSync]:
    bans, locks = MemoryBans(), MemorySuspensions()
    sync = LiveStateSync(bans, DbBanStore(), locks, DbSuspensionStore(), DbFraudEventStore())
    shield = Shield(
        ShieldPolicy(auth_failures=2, lock_sources=2),
        bans,
        MemoryCounters(),
        locks,
        on_ban=sync.ban_made,
        on_lock=sync.suspension_made,
    )
    sync.load()
    return shield, bans, locks, sync


def test_bans_made_by_the_switch_survive_a_restart() -> None:
    now = NOW.timestamp()
    shield, _bans, _, sync = switch()
    shield.auth_failed("203.0.113.9", "1001", now)
    shield.auth_failed("203.0.113.9", "1001", now)
    shield.auth_failed("203.0.113.10", "1001", now)  # a second source locks "1001"
    sync.sync(now)
    row = SipBan.objects.get(network="203.0.113.9")
    assert (row.reason, row.mode) == (BanReason.AUTH_FAILURES, BanMode.REFUSE)
    # A new process: the ban and the lock are back before the first call.
    shield2, bans2, _locks2, _ = switch()
    ban = bans2.match("203.0.113.9", now + 1)
    assert ban is not None and ban.offences == 1 and ban.expires == now + 900
    assert not shield2.may_authenticate("192.0.2.1", "1001", now + 1)
    # Escalation remembers the offence across the restart.
    shield2.auth_failed("203.0.113.9", "x", now + 2000)
    shield2.auth_failed("203.0.113.9", "x", now + 2000)
    again = bans2.match("203.0.113.9", now + 2001)
    assert again is not None and again.offences == 2


def test_operator_changes_reach_a_running_switch() -> None:
    now = NOW.timestamp()
    shield, _bans, _locks, sync = switch()
    services.add_ban("198.51.100.0/24", duration=None, by="ops")
    assert shield.datagram("198.51.100.4", 400, now)  # not yet synchronised
    sync.sync(now)
    assert not shield.datagram("198.51.100.4", 400, now)
    services.suspend("sip-user:1001", "operator", duration=None, by="ops")
    sync.sync(now)
    assert not shield.may_authenticate("192.0.2.1", "1001", now)
    services.remove_ban("198.51.100.0/24", by="ops")
    services.release_suspension("sip-user:1001", by="ops")
    sync.sync(now)
    assert shield.datagram("198.51.100.4", 400, now)
    assert shield.may_authenticate("192.0.2.1", "1001", now)


def test_a_ban_made_between_syncs_is_not_lost_by_a_reload() -> None:
    now = NOW.timestamp()
    shield, bans, _, sync = switch()
    shield.request("203.0.113.9", "friendly-scanner", 5, now)
    services.add_ban("192.0.2.99", duration=None)  # an operator change at the same time
    sync.sync(now)
    assert bans.match("203.0.113.9", now) is not None
    assert bans.match("192.0.2.99", now) is not None


def test_a_longer_stored_ban_is_kept_when_the_switch_saves_a_shorter_one() -> None:
    services.add_ban("203.0.113.9", duration=None, by="ops")
    now = NOW.timestamp()
    services.save_bans(
        [Ban(ipaddress.ip_network("203.0.113.9/32"), BanReason.FLOOD, now, now + 60)]
    )
    row = SipBan.objects.get(network="203.0.113.9")
    assert row.expires_at is None and row.reason == BanReason.OPERATOR


def test_events_and_one_click_release(caplog: pytest.LogCaptureFixture) -> None:
    from tests.web import factories
    from tollguard.domain.fraud import FraudEvent as Event
    from tollguard.domain.fraud import FraudRule
    from tollguard.domain.plan import FraudAction

    customer = factories.customer()
    account = factories.account(customer, "bob")
    now = NOW.timestamp()
    suspension = Suspension(f"account:{account.pk}", "velocity", now, None)
    services.save_suspensions([suspension])
    services.save_events(
        [
            Event(
                now,
                FraudRule.VELOCITY_DESTINATIONS,
                FraudAction.SUSPEND_ACCOUNT,
                customer.pk,
                account.pk,
                "198.51.100.4",
                "88216123",
                "40 destinations",
                suspension,
            ),
            Event(
                now,
                FraudRule.DESTINATION,
                FraudAction.BLOCK,
                999_999,
                None,
                "198.51.100.4",
                "5321234567",
                "country CU",
            ),
        ]
    )
    assert selectors.open_events() == 2
    event = FraudEvent.objects.get(rule=FraudRule.VELOCITY_DESTINATIONS)
    assert event.account == account and event.suspended == f"account:{account.pk}"
    assert FraudEvent.objects.get(rule=FraudRule.DESTINATION).customer is None
    services.release_event(event, by="ops")
    assert selectors.suspensions() == []
    assert selectors.open_events() == 1
    event.refresh_from_db()
    assert event.released_by == "ops" and event.released_at is not None


def test_a_large_list_imports_in_slices() -> None:
    text = "".join(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}\n" for i in range(40_000))
    services.add_ban("10.0.0.5", duration=None)
    report = services.import_bans(text, duration=None)
    assert (report.added, report.replaced) == (39_999, 1)
    assert SipBan.objects.count() == 40_000


def test_a_subject_too_long_to_store_is_dropped_not_fatal() -> None:
    services.save_suspensions(
        [
            Suspension("sip-user:" + "x" * 200, "locked", NOW.timestamp()),
            Suspension("account:7", "velocity", NOW.timestamp()),
        ]
    )
    assert [s.subject for s in selectors.suspensions()] == ["account:7"]
