"""Contract tests of the live-state ports, run against every implementation.

An implementation's test module subclasses each contract and says how to make a fresh,
empty instance (``make``); the memory one is ``test_memory.py``, a shared store (Redis)
gets its own module with the same three lines each (the registrar's bindings included).
Nothing here knows which implementation it runs against. Times are plain numbers: no clock is read.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollguard.domain.fraud import Suspension, Suspensions
from tollguard.domain.limits import Counters, TokenBucket, Window, money_units
from tollguard.domain.registration import Binding, Bindings
from tollguard.domain.shield import Ban, BanMode, BanReason, Bans

T0 = 1_800_000_000.0  # some time in 2027, on a whole minute


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


class CountersContract:
    def make(self) -> Counters:
        raise NotImplementedError

    # channels

    def test_channels_stop_at_the_limit_and_come_back(self) -> None:
        c = self.make()
        assert [c.acquire("k", 2) for _ in range(3)] == [True, True, False]
        assert c.in_use("k") == 2
        c.release("k")
        assert c.in_use("k") == 1
        assert c.acquire("k", 2)
        assert not c.acquire("k", 2)

    def test_channels_never_go_below_zero(self) -> None:
        c = self.make()
        c.release("k")
        assert c.in_use("k") == 0
        assert c.acquire("k", 1)
        assert not c.acquire("k", 1)

    def test_channel_keys_are_independent(self) -> None:
        c = self.make()
        assert c.acquire("a", 1)
        assert c.acquire("b", 1)
        assert not c.acquire("a", 1)

    # token buckets

    def test_bucket_starts_full_then_refills_at_its_rate(self) -> None:
        c = self.make()
        spec = TokenBucket(rate=2.0, burst=3.0)
        assert [c.take("b", spec, T0) for _ in range(4)] == [True, True, True, False]
        assert c.take("b", spec, T0 + 0.5)  # one token back after half a second
        assert not c.take("b", spec, T0 + 0.5)
        # A long pause refills to the burst, not beyond.
        assert [c.take("b", spec, T0 + 100) for _ in range(4)] == [True, True, True, False]

    def test_bucket_ignores_a_clock_that_steps_back(self) -> None:
        c = self.make()
        spec = TokenBucket(rate=1.0, burst=1.0)
        assert c.take("b", spec, T0 + 10)
        assert not c.take("b", spec, T0)
        assert not c.take("b", spec, T0 + 10)
        assert c.take("b", spec, T0 + 11)

    @settings(max_examples=50, deadline=None)
    @given(
        gaps=st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), max_size=60),
        rate=st.floats(min_value=0.5, max_value=50),
        burst=st.integers(min_value=1, max_value=20),
    )
    def test_bucket_never_grants_more_than_burst_plus_rate_times_time(
        self, gaps: list[float], rate: float, burst: int
    ) -> None:
        c = self.make()
        spec = TokenBucket(rate, float(burst))
        now, granted = T0, 0
        for gap in gaps:
            now += gap
            granted += c.take("b", spec, now)
        assert granted <= burst + rate * (now - T0) + 1e-9

    # windows

    def test_window_sums_and_forgets_old_slots(self) -> None:
        c = self.make()
        w = Window(60.0, 6)  # slots of 10 s
        assert c.add("w", 1, w, T0) == 1
        assert c.add("w", 2, w, T0 + 25) == 3
        assert c.total("w", w, T0 + 59) == 3
        # At T0 + 60 the slot of T0 has left the window.
        assert c.total("w", w, T0 + 60) == 2
        assert c.total("w", w, T0 + 200) == 0
        assert c.add("w", 5, w, T0 + 200) == 5

    def test_window_takes_negative_amounts_and_money(self) -> None:
        c = self.make()
        assert c.add("s", money_units(Decimal("1.25")), Window(3600), T0) == 1_250_000
        assert c.add("s", -money_units(Decimal("0.25")), Window(3600), T0 + 1) == 1_000_000
        assert c.total("unknown", Window(3600), T0) == 0

    # sets

    def test_remember_is_true_only_for_members_not_held(self) -> None:
        c = self.make()
        assert c.remember("s", "a", 10, T0)
        assert not c.remember("s", "a", 10, T0 + 5)
        assert c.remember("s", "b", 10, T0 + 5)
        assert c.members("s", T0 + 5) == 2
        # "a" was refreshed at T0 + 5: it lasts until T0 + 15.
        assert c.members("s", T0 + 14) == 2
        assert c.members("s", T0 + 15) == 0
        assert c.remember("s", "a", 10, T0 + 16)

    def test_prune_forgets_only_what_no_longer_counts(self) -> None:
        c = self.make()
        spec = TokenBucket(1.0, 5.0)
        c.take("bucket", spec, T0)
        c.add("window", 1, Window(60, 6), T0)
        c.remember("set", "x", 30, T0)
        assert c.acquire("channel", 1)
        assert c.prune(T0 + 0.5) == 0  # the bucket is not full again yet
        assert c.prune(T0 + 100) == 3
        assert c.in_use("channel") == 1  # channels are never pruned: calls still run
        assert c.take("bucket", spec, T0 + 100)
        assert c.total("window", Window(60, 6), T0 + 100) == 0


def ban(
    network: str,
    *,
    created: float = T0,
    expires: float | None = T0 + 600,
    mode: BanMode = BanMode.DROP,
    reason: BanReason = BanReason.OPERATOR,
    offences: int = 1,
) -> Ban:
    return Ban(net(network), reason, created, expires, mode, offences)


class BansContract:
    def make(self) -> Bans:
        raise NotImplementedError

    @pytest.mark.parametrize(
        ("banned", "source", "hit"),
        [
            ("203.0.113.9/32", "203.0.113.9", True),
            ("203.0.113.9/32", "203.0.113.10", False),
            ("203.0.113.0/24", "203.0.113.77", True),
            ("203.0.113.0/24", "203.0.114.1", False),
            ("203.0.113.9/32", "::ffff:203.0.113.9", True),
            ("203.0.113.0/24", "::ffff:203.0.113.1", True),
            ("2001:db8::/32", "2001:db8:1::5", True),
            ("2001:db8::1/128", "2001:db8::1", True),
            ("2001:db8::1/128", "2001:db8::2", False),
            ("0.0.0.0/0", "198.51.100.1", True),
            ("203.0.113.0/24", "not-an-address", False),
            ("203.0.113.0/24", "", False),
        ],
    )
    def test_match(self, banned: str, source: str, hit: bool) -> None:
        bans = self.make()
        bans.add(ban(banned))
        assert (bans.match(source, T0) is not None) is hit

    def test_most_specific_ban_wins(self) -> None:
        bans = self.make()
        bans.add(ban("203.0.113.0/24", mode=BanMode.DROP))
        bans.add(ban("203.0.113.0/28", mode=BanMode.REFUSE))
        found = bans.match("203.0.113.5", T0)
        assert found is not None and found.network == net("203.0.113.0/28")

    def test_expired_bans_do_not_match_but_are_kept_until_pruned(self) -> None:
        bans = self.make()
        bans.add(ban("203.0.113.9/32", expires=T0 + 10))
        assert bans.match("203.0.113.9", T0 + 10) is None
        assert bans.get(net("203.0.113.9/32")) is not None
        assert bans.prune(T0 + 20, keep_s=100) == 0
        assert bans.prune(T0 + 111, keep_s=100) == 1
        assert bans.get(net("203.0.113.9/32")) is None

    def test_permanent_bans_are_never_pruned(self) -> None:
        bans = self.make()
        bans.add(ban("203.0.113.9/32", expires=None))
        assert bans.prune(T0 + 10**9, keep_s=0) == 0
        assert bans.match("203.0.113.9", T0 + 10**9) is not None

    def test_add_keeps_the_longer_ban_and_the_stronger_mode(self) -> None:
        bans = self.make()
        bans.add(ban("203.0.113.9/32", expires=T0 + 1000, mode=BanMode.REFUSE))
        kept = bans.add(ban("203.0.113.9/32", created=T0 + 1, expires=T0 + 100))
        assert kept.expires == T0 + 1000
        assert kept.mode is BanMode.DROP
        longer = bans.add(ban("203.0.113.9/32", created=T0 + 2, expires=None))
        assert longer.expires is None
        assert bans.match("203.0.113.9", T0 + 10**6) == longer

    def test_add_replaces_an_expired_ban(self) -> None:
        bans = self.make()
        bans.add(ban("203.0.113.9/32", expires=T0 + 10, offences=1))
        new = ban("203.0.113.9/32", created=T0 + 50, expires=T0 + 60, offences=2)
        assert bans.add(new) == new

    def test_remove_lifts_exactly_one_network(self) -> None:
        bans = self.make()
        bans.add(ban("203.0.113.0/24"))
        bans.add(ban("203.0.113.9/32"))
        assert bans.remove(net("203.0.113.9/32")) is not None
        assert bans.remove(net("203.0.113.9/32")) is None
        assert bans.match("203.0.113.9", T0) is not None  # the /24 still holds
        assert bans.remove(net("203.0.113.0/24")) is not None
        assert bans.match("203.0.113.9", T0) is None

    def test_replace_holds_exactly_the_snapshot(self) -> None:
        bans = self.make()
        bans.add(ban("203.0.113.9/32"))
        bans.replace([ban("198.51.100.0/24"), ban("2001:db8::1/128")])
        assert bans.match("203.0.113.9", T0) is None
        assert bans.match("198.51.100.3", T0) is not None
        assert bans.match("2001:db8::1", T0) is not None
        assert sorted(str(b.network) for b in bans.all()) == [
            "198.51.100.0/24",
            "2001:db8::1/128",
        ]


class SuspensionsContract:
    def make(self) -> Suspensions:
        raise NotImplementedError

    def test_suspend_get_release(self) -> None:
        s = self.make()
        s.suspend(Suspension("account:7", "velocity", T0, T0 + 60))
        assert s.get("account:7", T0 + 59) is not None
        assert s.get("account:7", T0 + 60) is None
        assert s.get("account:8", T0) is None
        released = s.release("account:7")
        assert released is not None and released.reason == "velocity"
        assert s.release("account:7") is None

    def test_a_new_suspension_replaces_the_old(self) -> None:
        s = self.make()
        s.suspend(Suspension("customer:3", "first", T0, T0 + 10))
        s.suspend(Suspension("customer:3", "second", T0 + 1, None))
        held = s.get("customer:3", T0 + 10**6)
        assert held is not None and held.reason == "second"
        assert len(s.all()) == 1

    def test_replace(self) -> None:
        s = self.make()
        s.suspend(Suspension("customer:3", "x", T0))
        s.replace([Suspension("sip-user:bob", "locked", T0)])
        assert s.get("customer:3", T0) is None
        assert s.get("sip-user:bob", T0) is not None


def _binding(uri: str, expires_at: float, account_id: int = 1, transport: str = "udp") -> Binding:
    return Binding(account_id, uri, expires_at, "c1", 1, ("203.0.113.5", 40000), transport, 0)


class BindingsContract:
    def make(self) -> Bindings:
        raise NotImplementedError

    def test_put_replaces_an_accounts_bindings(self) -> None:
        store = self.make()
        a, b = _binding("sip:a@h", T0 + 10), _binding("sip:b@h", T0 + 20)
        store.put(1, (a, b))
        assert store.of(1, T0) == (a, b)
        store.put(1, (b,))
        assert store.of(1, T0) == (b,)
        store.put(1, ())
        assert (store.of(1, T0), len(store)) == ((), 0)

    def test_expired_bindings_are_not_listed_and_expire_removes_them(self) -> None:
        store = self.make()
        a = _binding("sip:a@h", T0 + 10)
        b = _binding("sip:b@h", T0 + 20, account_id=2, transport="tcp")
        store.put(1, (a,))
        store.put(2, (b,))
        assert (sorted(x.contact for x in store.every(T0)), len(store)) == (
            ["sip:a@h", "sip:b@h"],
            2,
        )
        store.put(1, (replace(a, expires_at=T0 + 100),))  # a refresh outlives b
        assert store.expire(T0 + 15) == []
        assert store.expire(T0 + 25) == [b]
        assert store.of(2, T0) == ()
        assert store.of(1, T0 + 101) == ()  # expired, not yet swept: not listed
        assert store.every(T0 + 101) == []
        assert [x.contact for x in store.expire(T0 + 101)] == ["sip:a@h"]
        assert len(store) == 0
