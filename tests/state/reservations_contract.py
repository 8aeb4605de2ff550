"""The contract of :class:`tollguard.domain.credit.Reservations` (balances and
reservations), run against every implementation unchanged.

An implementation's test module subclasses :class:`ReservationsContract` and says how to
make a fresh, empty store (``make``), as for the ports of ``contract.py``; the memory one
is in ``test_memory.py``. A networked store (Redis, for several switch nodes) passes these
as they are: they pin down what docs/architecture.md ("Live state") promises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest

from tollguard.domain.credit import Lapsed, Reservations
from tollguard.domain.errors import CreditError, ReservationExists, ReservationUnknown

NOW = 1_800_000_000.0
LATER = NOW + 3600
ZERO = Decimal(0)
C = 42  # a customer


def _opened(store: Reservations, balance: str = "10") -> Reservations:
    store.open(C, Decimal(balance), 5)
    return store


class ReservationsContract:
    def make(self) -> Reservations:
        raise NotImplementedError

    def test_an_unknown_customer_has_nothing(self) -> None:
        store = self.make()
        assert store.balance(C) == ZERO
        assert store.available(C) == ZERO

    def test_open_sets_a_customer_once(self) -> None:
        store = self.make()
        assert store.open(C, Decimal("12.5"), 5) is True
        assert store.open(C, Decimal("99"), 9) is False
        assert store.balance(C) == Decimal("12.5")

    def test_adjust_applies_each_version_once(self) -> None:
        store = self.make()
        _opened(store)
        assert store.adjust(C, Decimal("5"), 5) is False  # included in the opening balance
        assert store.adjust(C, Decimal("5"), 6) is True
        assert store.adjust(C, Decimal("5"), 6) is False  # a second node applying it again
        assert store.adjust(C, Decimal("-2.5"), 8) is True
        assert store.adjust(C, Decimal("100"), 7) is False  # older than the last one applied
        assert store.balance(C) == Decimal("12.5")

    def test_adjust_starts_an_unknown_customer_at_zero(self) -> None:
        store = self.make()
        assert store.adjust(C, Decimal("3"), 1) is True
        assert store.balance(C) == Decimal(3)
        assert store.open(C, Decimal(50), 1) is False

    def test_reserve_what_fits_and_nothing_more(self) -> None:
        store = self.make()
        _opened(store)
        assert store.reserve(C, "a", Decimal("6"), ZERO, LATER) is True
        assert store.available(C) == Decimal(4)
        assert store.balance(C) == Decimal(10)
        assert store.reserve(C, "b", Decimal("4.000001"), ZERO, LATER) is False
        assert store.reserve(C, "b", Decimal("4"), ZERO, LATER) is True
        assert store.available(C) == ZERO

    def test_a_negative_floor_is_credit(self) -> None:
        store = self.make()
        _opened(store, "1")
        assert store.reserve(C, "a", Decimal("3"), Decimal("-2"), LATER) is True
        assert store.available(C) == Decimal(-2)
        assert store.reserve(C, "b", Decimal("0.01"), Decimal("-2"), LATER) is False

    def test_zero_always_fits(self) -> None:
        store = self.make()
        _opened(store, "-5")
        assert store.reserve(C, "free", ZERO, ZERO, LATER) is True
        assert store.reserve(C, "paid", Decimal("0.01"), ZERO, LATER) is False

    def test_a_key_is_reserved_once_per_customer(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal(1), ZERO, LATER)
        with pytest.raises(ReservationExists):
            store.reserve(C, "a", Decimal(1), ZERO, LATER)
        # The same key under another customer is another reservation.
        store.open(C + 1, Decimal(1), 5)
        assert store.reserve(C + 1, "a", Decimal(1), ZERO, LATER) is True

    def test_extend_adds_what_fits(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal(4), ZERO, LATER)
        assert store.extend(C, "a", Decimal(5), ZERO, LATER) is True
        assert store.available(C) == Decimal(1)
        assert store.extend(C, "a", Decimal(2), ZERO, LATER) is False
        assert store.available(C) == Decimal(1)

    def test_extend_needs_a_reservation(self) -> None:
        store = self.make()
        _opened(store)
        with pytest.raises(ReservationUnknown):
            store.extend(C, "nobody", Decimal(1), ZERO, LATER)
        store.reserve(C, "a", Decimal(1), ZERO, LATER)
        with pytest.raises(ReservationUnknown):
            store.extend(C + 1, "a", Decimal(1), ZERO, LATER)  # another customer's key

    def test_commit_charges_and_releases_the_rest(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal(6), ZERO, LATER)
        assert store.commit(C, "a", Decimal("2.5"), NOW) is True
        assert store.balance(C) == Decimal("7.5")
        assert store.available(C) == Decimal("7.5")

    def test_a_commit_is_owed_whatever_the_funds(self) -> None:
        store = self.make()
        _opened(store, "1")
        # Without a reservation (it lapsed) and more than the balance: charged all the same.
        assert store.commit(C, "lapsed", Decimal(3), NOW) is True
        assert store.balance(C) == Decimal(-2)

    def test_settling_twice_changes_nothing(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal(6), ZERO, LATER)
        store.commit(C, "a", Decimal(2), NOW)
        assert store.commit(C, "a", Decimal(2), NOW + 1) is False  # a retried commit
        assert store.release(C, "a", NOW + 2) == ZERO
        assert store.balance(C) == Decimal(8)
        with pytest.raises(ReservationExists):
            store.reserve(C, "a", Decimal(1), ZERO, LATER)
        with pytest.raises(ReservationUnknown):
            store.extend(C, "a", Decimal(1), ZERO, LATER)

    def test_a_settled_key_is_remembered_ten_minutes(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal(1), ZERO, LATER)
        store.release(C, "a", NOW)
        store.expire(NOW + 599)
        assert store.commit(C, "a", Decimal(1), NOW + 599) is False
        store.expire(NOW + 601 + 3600)
        assert store.reserve(C, "a", Decimal(1), ZERO, LATER + 7200) is True

    def test_release_returns_what_was_held(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal("3.25"), ZERO, LATER)
        assert store.release(C, "a", NOW) == Decimal("3.25")
        assert store.release(C, "a", NOW) == ZERO
        assert store.release(C, "never", NOW) == ZERO
        assert store.available(C) == store.balance(C) == Decimal(10)

    def test_an_unextended_reservation_lapses(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal(2), ZERO, NOW + 60)
        store.reserve(C, "b", Decimal(3), ZERO, NOW + 90)
        assert store.expire(NOW + 59.9) == ()
        assert store.expire(NOW + 60) == (Lapsed(C, "a", Decimal(2)),)
        assert store.available(C) == Decimal(7)
        with pytest.raises(ReservationUnknown):
            store.extend(C, "a", ZERO, ZERO, NOW + 120)
        # Its call still pays when it ends.
        assert store.commit(C, "a", Decimal(1), NOW + 61) is True
        assert store.balance(C) == Decimal(9)

    def test_extending_moves_the_lease(self) -> None:
        store = self.make()
        _opened(store)
        store.reserve(C, "a", Decimal(2), ZERO, NOW + 60)
        assert store.extend(C, "a", ZERO, ZERO, NOW + 120) is True  # a renewal
        assert store.expire(NOW + 90) == ()
        assert store.extend(C, "a", Decimal(100), ZERO, NOW + 500) is False
        # A refused extension leaves the lease where it was.
        assert store.expire(NOW + 120) == (Lapsed(C, "a", Decimal(2)),)

    @pytest.mark.parametrize(
        "call",
        [
            lambda s: s.reserve(C, "a", Decimal("0.0000001"), ZERO, LATER),
            lambda s: s.reserve(C, "a", Decimal(-1), ZERO, LATER),
            lambda s: s.commit(C, "a", Decimal("NaN"), NOW),
            lambda s: s.adjust(C, Decimal("1.1234567"), 9),
            lambda s: s.open(C, Decimal("Infinity"), 1),
        ],
        ids=["seven-places", "negative-reservation", "nan-charge", "adjust-places", "open-inf"],
    )
    def test_unstorable_amounts_are_refused(self, call: Callable[[Reservations], object]) -> None:
        store = self.make()
        _opened(store)
        with pytest.raises(CreditError):
            call(store)
        assert store.balance(C) == store.available(C) == Decimal(10)

    def test_concurrent_callers_never_overspend(self) -> None:
        """Eight threads take 0.01 reservations and commit them until the money is gone."""
        store = self.make()
        _opened(store, "5")
        granted: list[int] = []

        def spend(worker: int) -> None:
            count = 0
            for n in range(200):
                key = f"{worker}-{n}"
                if store.reserve(C, key, Decimal("0.01"), ZERO, LATER):
                    store.commit(C, key, Decimal("0.01"), NOW)
                    count += 1
            granted.append(count)

        threads = [threading.Thread(target=spend, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(granted) == 500
        assert store.balance(C) == store.available(C) == ZERO
