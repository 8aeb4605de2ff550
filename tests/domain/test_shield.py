"""The SIP shield's rules over the memory ports, with a fake clock (plain numbers)."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain.fraud import Suspension
from tollguard.domain.shield import (
    Ban,
    BanMode,
    BanReason,
    Shield,
    ShieldPolicy,
    ban_duration,
    parse_network,
)
from tollguard.state.memory import MemoryBans, MemoryCounters, MemorySuspensions

T0 = 1_800_000_000.0
ATTACKER = "203.0.113.9"
TRUNK = "198.51.100.7"


class Harness:
    def __init__(self, policy: ShieldPolicy | None = None, **kwargs: object) -> None:
        self.bans = MemoryBans()
        self.counters = MemoryCounters()
        self.locks = MemorySuspensions()
        self.made: list[Ban] = []
        self.locked: list[Suspension] = []
        self.shield = Shield(
            policy or ShieldPolicy(**kwargs),  # type: ignore[arg-type]
            self.bans,
            self.counters,
            self.locks,
            on_ban=self.made.append,
            on_lock=self.locked.append,
        )


def allow(*networks: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(parse_network(n) for n in networks)


# --- ban escalation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offences", "expected"),
    [(0, 900), (1, 900), (2, 3600), (3, 14400), (4, 57600), (5, 86400), (50, 86400)],
)
def test_ban_duration_grows_and_stops_at_the_cap(offences: int, expected: float) -> None:
    assert ban_duration(900, offences, 4, 86400) == expected


@given(st.integers(1, 10_000), st.floats(1, 100), st.floats(1, 1e7))
def test_ban_duration_is_monotonic_and_capped(offences: int, factor: float, cap: float) -> None:
    first = ban_duration(60, offences, factor, cap)
    assert first <= ban_duration(60, offences + 1, factor, cap) <= max(cap, 60)


def test_repeat_offenders_get_longer_bans() -> None:
    h = Harness(auth_failures=3, ban_s=100, ban_factor=4, max_ban_s=10_000)
    now = T0
    for offence in (1, 2, 3):
        for _ in range(3):
            h.shield.auth_failed(ATTACKER, "bob", now)
        ban = h.bans.match(ATTACKER, now)
        assert ban is not None
        assert ban.offences == offence
        assert ban.expires == now + 100 * 4 ** (offence - 1)
        now = ban.expires + 1  # served; a later failure starts a new count
        now += 700  # out of the failure window
    assert [b.offences for b in h.made] == [1, 2, 3]


def test_offences_are_forgotten_after_the_memory() -> None:
    h = Harness(auth_failures=1, ban_s=100, offence_memory_s=1000)
    h.shield.auth_failed(ATTACKER, "", T0)
    h.shield.prune(T0 + 100 + 1001)
    h.shield.auth_failed(ATTACKER, "", T0 + 100 + 1002)
    ban = h.bans.match(ATTACKER, T0 + 100 + 1002)
    assert ban is not None and ban.offences == 1


# --- authentication failures --------------------------------------------------------------


def test_auth_failures_ban_in_refuse_mode_and_stay_indistinguishable() -> None:
    h = Harness(auth_failures=5, auth_window_s=60)
    for _ in range(4):
        h.shield.auth_failed(ATTACKER, "bob", T0)
        assert h.shield.may_authenticate(ATTACKER, "bob", T0)
    h.shield.auth_failed(ATTACKER, "bob", T0)
    ban = h.bans.match(ATTACKER, T0)
    assert ban is not None
    assert (ban.reason, ban.mode) == (BanReason.AUTH_FAILURES, BanMode.REFUSE)
    # Refused, not dropped: the datagram is still parsed and answered like a failure.
    assert h.shield.datagram(ATTACKER, 500, T0 + 1)
    assert not h.shield.may_authenticate(ATTACKER, "alice", T0 + 1)
    assert h.shield.may_authenticate("203.0.113.10", "alice", T0 + 1)


def test_failures_outside_the_window_do_not_add_up() -> None:
    h = Harness(auth_failures=3, auth_window_s=60)
    for i in range(10):
        h.shield.auth_failed(ATTACKER, "bob", T0 + i * 40)
    assert h.bans.match(ATTACKER, T0 + 400) is None


def test_allow_list_is_never_banned() -> None:
    h = Harness(auth_failures=1, allow=allow("198.51.100.0/24"), source_rate=1, source_burst=1)
    for _ in range(50):
        h.shield.auth_failed(TRUNK, "trunk", T0)
        assert h.shield.datagram(TRUNK, 1000, T0)
        assert h.shield.request(TRUNK, "friendly-scanner", 10, T0)
    assert h.bans.all() == []
    assert h.made == []
    # Even an operator's ban of the network does not drop an allow-listed source.
    h.shield.ban(parse_network("198.51.100.0/24"), BanReason.OPERATOR, None, T0)
    assert h.shield.datagram(TRUNK, 1000, T0)
    assert h.shield.may_authenticate(TRUNK, "trunk", T0)


def test_extra_allow_comes_from_the_plan() -> None:
    h = Harness(auth_failures=1)
    h.shield.set_extra_allow(allow("198.51.100.7"))
    h.shield.auth_failed(TRUNK, "x", T0)
    assert h.bans.all() == []
    h.shield.set_extra_allow(())
    h.shield.auth_failed(TRUNK, "x", T0)
    assert h.bans.match(TRUNK, T0) is not None


def test_account_locks_after_failures_from_many_sources_until_released(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(auth_failures=100, lock_sources=3, lock_window_s=600)
    caplog.set_level(logging.INFO, logger="tollguard.security")
    for i in range(3):
        assert h.shield.may_authenticate(f"203.0.113.{i}", "1001", T0 + i)
        h.shield.auth_failed(f"203.0.113.{i}", "1001", T0 + i)
    assert not h.shield.may_authenticate("192.0.2.1", "1001", T0 + 10)
    assert h.shield.may_authenticate("192.0.2.1", "1002", T0 + 10)
    # Locked until an operator says otherwise: a year later still.
    assert not h.shield.may_authenticate("192.0.2.1", "1001", T0 + 365 * 86400)
    assert [s.subject for s in h.locked] == ["sip-user:1001"]
    assert 'sip account lock: ip=203.0.113.2 user="1001" sources=3' in caplog.messages
    assert h.shield.unlock("1001", by="ops")
    assert h.shield.may_authenticate("192.0.2.1", "1001", T0 + 11)
    assert not h.shield.unlock("1001")


def test_one_source_failing_many_times_does_not_lock_the_account() -> None:
    h = Harness(auth_failures=1000, lock_sources=3)
    for _ in range(50):
        h.shield.auth_failed(ATTACKER, "1001", T0)
    assert h.shield.may_authenticate("192.0.2.1", "1001", T0)


# --- before parsing: bans, size, flood, global cap --------------------------------------------


def test_drop_mode_ban_drops_before_parsing() -> None:
    h = Harness()
    h.shield.ban(parse_network("203.0.113.0/24"), BanReason.OPERATOR, 60, T0)
    assert not h.shield.datagram(ATTACKER, 300, T0)
    assert h.shield.datagram(ATTACKER, 300, T0 + 60)  # expired


@pytest.mark.parametrize(("size", "ok"), [(16384, True), (16385, False), (0, True)])
def test_message_size_limit(size: int, ok: bool) -> None:
    assert Harness().shield.datagram(ATTACKER, size, T0) is ok


def test_flood_from_one_source_is_banned_while_others_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(source_rate=10, source_burst=20, flood_ban_s=300)
    caplog.set_level(logging.INFO, logger="tollguard.security")
    passed = sum(h.shield.datagram(ATTACKER, 400, T0 + i * 0.001) for i in range(1000))
    assert passed == 20  # the burst, then the ban
    ban = h.bans.match(ATTACKER, T0 + 1)
    assert ban is not None and ban.reason is BanReason.FLOOD and ban.mode is BanMode.DROP
    assert not h.shield.datagram(ATTACKER, 400, T0 + 299)
    assert h.shield.datagram("192.0.2.50", 400, T0 + 1)
    assert "sip flood: ip=203.0.113.9 rate=10/s" in caplog.messages
    assert any(m.startswith("sip ban: ip=203.0.113.9 until=") for m in caplog.messages)


def test_global_cap_spares_the_allow_list() -> None:
    h = Harness(
        allow=allow("198.51.100.0/24"),
        source_rate=1000,
        source_burst=1000,
        global_rate=10,
        global_burst=50,
    )
    # A flood from many addresses exhausts the global cap ...
    spoofed = [f"10.{i // 250}.{i % 250}.1" for i in range(500)]
    accepted = sum(h.shield.datagram(src, 400, T0) for src in spoofed)
    assert accepted == 50
    assert not h.shield.datagram("192.0.2.1", 400, T0)
    # ... and the operator's trunks still get through.
    assert all(h.shield.datagram(TRUNK, 400, T0) for _ in range(100))
    # No source sent enough to be banned: a distributed flood is shed, not banned.
    assert h.bans.all() == []


# --- after parsing: scanners, header count, transactions ----------------------------------


@pytest.mark.parametrize(
    "agent",
    ["friendly-scanner", "sipvicious 0.3.4", "SIPCLI/v1.8", "VaxSIPUserAgent/3.1", "pplsip"],
)
def test_scanners_are_dropped_and_banned(agent: str, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    caplog.set_level(logging.INFO, logger="tollguard.security")
    assert not h.shield.request(ATTACKER, agent, 10, T0)
    ban = h.bans.match(ATTACKER, T0 + 3600)
    assert ban is not None and ban.reason is BanReason.SCANNER
    assert not h.shield.datagram(ATTACKER, 300, T0 + 1)
    assert any(m.startswith("sip scanner: ip=203.0.113.9 agent=") for m in caplog.messages)


def test_scanner_list_is_configurable_and_ordinary_agents_pass() -> None:
    h = Harness(scanner_agents=("evil-dialer",))
    assert h.shield.request(ATTACKER, "friendly-scanner", 10, T0)
    assert not h.shield.request(ATTACKER, "Evil-Dialer/2", 10, T0)
    assert Harness().shield.request(ATTACKER, "Linphone/5.2 (belle-sip/5.2)", 10, T0)


def test_header_count_limit() -> None:
    h = Harness(max_headers=20)
    assert h.shield.request(ATTACKER, "", 20, T0)
    assert not h.shield.request(ATTACKER, "", 21, T0)
    assert h.bans.all() == []


def test_open_transactions_per_source() -> None:
    h = Harness(max_transactions=2, allow=allow(TRUNK))
    assert h.shield.open_transaction(ATTACKER)
    assert h.shield.open_transaction(ATTACKER)
    assert not h.shield.open_transaction(ATTACKER)
    assert h.shield.open_transaction("192.0.2.1")
    h.shield.close_transaction(ATTACKER)
    assert h.shield.open_transaction(ATTACKER)
    assert all(h.shield.open_transaction(TRUNK) for _ in range(10))


# --- parsing and the log line --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", "203.0.113.9/32"),
        (" 203.0.113.0/24 ", "203.0.113.0/24"),
        ("203.0.113.7/24", "203.0.113.0/24"),
        ("::ffff:203.0.113.9", "203.0.113.9/32"),
        ("2001:db8::/32", "2001:db8::/32"),
    ],
)
def test_parse_network(text: str, expected: str) -> None:
    assert str(parse_network(text)) == expected


@pytest.mark.parametrize("text", ["", "203.0.113", "example.com", "203.0.113.0/33", "1.2.3.4/x"])
def test_parse_network_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        parse_network(text)


def test_attacker_text_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    caplog.set_level(logging.INFO, logger="tollguard.security")
    h.shield.request(ATTACKER, 'friendly-scanner"\nsip ban: ip=192.0.2.1 x', 10, T0)
    [line] = [m for m in caplog.messages if m.startswith("sip scanner")]
    assert "\n" not in line
    assert line == 'sip scanner: ip=203.0.113.9 agent="friendly-scanner??sip ban: ip=192.0.2.1 x"'


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="auth_failures"):
        ShieldPolicy(auth_failures=0)
    with pytest.raises(ValueError, match="ban_factor"):
        ShieldPolicy(ban_factor=0.5)
    policy = ShieldPolicy()
    assert dataclasses.replace(policy, ban_s=1).ban_s == 1


def test_names_that_are_no_account_are_never_locked() -> None:
    h = Harness(auth_failures=1000, lock_sources=2)
    long_name = "x" * 65
    for i in range(5):
        h.shield.auth_failed(f"203.0.113.{i}", "made-up", T0, known_user=False)
        h.shield.auth_failed(f"203.0.113.{i}", long_name, T0)
    assert h.locks.all() == []
    assert h.locked == []
    assert h.counters.members("shield:authsrc:made-up", T0) == 0


def test_an_ipv6_attacker_cannot_walk_its_network() -> None:
    h = Harness(source_rate=1, source_burst=10, auth_failures=3)
    # Every request from a new address of one /64: counted as one source.
    passed = sum(h.shield.datagram(f"2001:db8:0:1::{i:x}", 300, T0) for i in range(1, 50))
    assert passed == 10
    ban = h.bans.match("2001:db8:0:1:ffff::1", T0 + 1)
    assert ban is not None and str(ban.network) == "2001:db8:0:1::/64"
    assert h.shield.datagram("2001:db8:0:2::1", 300, T0 + 1)
    # Password guessing across addresses of one /64 adds up too.
    for i in range(3):
        h.shield.auth_failed(f"2001:db8:0:3::{i + 1}", "bob", T0)
    assert not h.shield.may_authenticate("2001:db8:0:3::99", "alice", T0)
    # IPv4-mapped addresses count as the IPv4 address.
    for _ in range(3):
        h.shield.auth_failed("::ffff:192.0.2.7", "bob", T0)
    assert not h.shield.may_authenticate("192.0.2.7", "alice", T0)


def test_ipv6_prefix_128_counts_single_addresses() -> None:
    h = Harness(source_rate=1, source_burst=2, ipv6_prefix=128)
    assert sum(h.shield.datagram(f"2001:db8::{i:x}", 300, T0) for i in range(1, 6)) == 5
