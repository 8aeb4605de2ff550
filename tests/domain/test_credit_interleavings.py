"""Many calls of one customer against one balance, interleaved at random.

Calls start, get answered, are extended when their deadlines come, hang up, fail or
are cut when the funds run out, and top-ups arrive in between, on one fake clock. After
every step: a prepaid balance less its reservations never goes below zero (a postpaid
one never below minus its limit), the balance moved by exactly the top-ups less the
commits, the reservations held are those of the calls still up, no call is charged
more than it reserved, and a call cut for want of funds left less than one billing
increment of its rate unspent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tollguard.domain.credit import CallCredit, CreditControl, CreditPolicy, Deadline, price
from tollguard.domain.plan import BillingMode, CreditTerms, Customer, Rate, RateCard, Rounding
from tollguard.state.memory import MemoryReservations

T0 = 1_800_000_000.0
CUSTOMER_ID = 3


def _rate(price: str, fee: str, initial: int, following: int) -> Rate:
    return Rate("1", "anywhere", Decimal(price), Decimal(fee), initial, following)


TARIFFS: tuple[tuple[Rate, RateCard], ...] = (
    (_rate("1.20", "0.10", 30, 6), RateCard(1, "four", decimals=4)),
    (_rate("0.60", "0", 60, 60), RateCard(2, "minutes", decimals=4)),
    (_rate("0.01", "0", 1, 1), RateCard(3, "cents-up", decimals=2, rounding=Rounding.UP)),
    (
        _rate("0.37", "0.015", 1, 1),
        RateCard(4, "half-even", decimals=3, rounding=Rounding.HALF_EVEN),
    ),
    (_rate("0", "0", 60, 60), RateCard(5, "free", decimals=4)),
    (_rate("2.50", "0", 45, 10), RateCard(6, "odd-grid", decimals=6, rounding=Rounding.DOWN)),
)


@dataclass
class _Call:
    credit: CallCredit
    answered_ms: int | None = None  # on the machine's clock
    deadline: Deadline | None = None


class ManyCalls(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryReservations()
        self.control = CreditControl(self.store)
        self.customer = Customer(CUSTOMER_ID, "acme")
        self.calls: dict[str, _Call] = {}
        self.now_ms = 0
        self.serial = 0
        self.version = 1
        self.opening = Decimal(0)
        self.topped = Decimal(0)
        self.committed = Decimal(0)

    @initialize(
        balance=st.decimals("0", "20", places=2),
        postpaid=st.booleans(),
        limit=st.decimals("0", "10", places=2),
        slice_s=st.integers(1, 180),
        lead=st.integers(0, 30),
        cap_s=st.integers(1, 1200),
    )
    def setup(
        self,
        balance: Decimal,
        postpaid: bool,
        limit: Decimal,
        slice_s: int,
        lead: int,
        cap_s: int,
    ) -> None:
        mode = BillingMode.POSTPAID if postpaid else BillingMode.PREPAID
        self.customer = Customer(
            CUSTOMER_ID,
            "acme",
            max_call_duration_s=cap_s,
            credit=CreditTerms(mode=mode, credit_limit=limit),
        )
        self.control = CreditControl(
            self.store, CreditPolicy(slice_s=slice_s, extend_before_s=min(lead, slice_s - 1))
        )
        self.store.open(CUSTOMER_ID, balance, self.version)
        self.opening = balance

    @property
    def now(self) -> float:
        return T0 + self.now_ms / 1000

    @rule(tariff=st.sampled_from(TARIFFS))
    def start(self, tariff: tuple[Rate, RateCard]) -> None:
        self.serial += 1
        key = f"call-{self.serial}"
        rate, card = tariff
        headroom = self.store.available(CUSTOMER_ID) - self.customer.credit.floor
        granted = self.control.admit(key, self.customer, rate, card, self.now)
        if isinstance(granted, CallCredit):
            self.calls[key] = _Call(granted)
        else:
            # Refused only when the first increment does not fit.
            first = price(rate.initial_increment, rate, card)
            assert first > headroom and first > 0

    def _pick(self, data: st.DataObject, answered: bool | None) -> str | None:
        names = sorted(
            name
            for name, call in self.calls.items()
            if answered is None or (call.answered_ms is not None) == answered
        )
        return data.draw(st.sampled_from(names)) if names else None

    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        name = self._pick(data, answered=False)
        if name is None:
            return
        call = self.calls[name]
        call.answered_ms = self.now_ms
        call.deadline = self.control.answered(call.credit, self.now)

    @rule(data=st.data())
    def hang_up(self, data: st.DataObject) -> None:
        name = self._pick(data, answered=None)
        if name is None:
            return
        call = self.calls[name]
        duration = 0 if call.answered_ms is None else self.now_ms - call.answered_ms
        self._settle(name, duration)

    @rule(amount=st.decimals("0.01", "5", places=2))
    def top_up(self, amount: Decimal) -> None:
        self.version += 1
        assert self.store.adjust(CUSTOMER_ID, amount, self.version)
        self.topped += amount

    @rule(ms=st.integers(1, 90_000), late_ms=st.integers(0, 1500))
    def advance(self, ms: int, late_ms: int) -> None:
        """Let time pass, handling each deadline that comes, in order, at its time; a
        call cut for want of funds ends ``late_ms`` after its reserved time (a busy
        event loop), which must not be charged."""
        end = self.now_ms + ms
        while True:
            due = sorted(
                (call.answered_ms + self._due_ms(call), name)
                for name, call in self.calls.items()
                if call.answered_ms is not None
            )
            if not due or due[0][0] > end:
                break
            at, name = due[0]
            self.now_ms = max(self.now_ms, at)
            self._deadline(name, late_ms)
        self.now_ms = end

    def _due_ms(self, call: _Call) -> int:
        if call.deadline is None:
            # Reserved up to the longest call: the switch's maximum-duration timer ends it.
            return self.customer.max_call_duration_s * 1000
        return call.deadline.at_ms

    def _deadline(self, name: str, late_ms: int) -> None:
        call = self.calls[name]
        assert call.answered_ms is not None
        elapsed = self.now_ms - call.answered_ms
        if call.deadline is None:
            self._settle(name, self.customer.max_call_duration_s * 1000 + late_ms)
            return
        if call.deadline.hang_up:
            self._settle(name, call.deadline.at_ms + late_ms)
            return
        credit = call.credit
        call.deadline = self.control.extend(credit, elapsed, self.now)
        if call.deadline is not None and call.deadline.hang_up:
            # Cut: not one more increment fits.
            headroom = self.store.available(CUSTOMER_ID) - self.customer.credit.floor
            following = credit.covered_s + credit.rate.next_increment
            assert headroom < price(following, credit.rate, credit.card) - credit.reserved
            assert call.deadline.at_ms == credit.covered_ms <= elapsed

    def _settle(self, name: str, duration_ms: int) -> None:
        call = self.calls.pop(name)
        reserved = call.credit.reserved
        charge = self.control.settle(call.credit, duration_ms, self.now)
        assert charge.amount <= reserved
        self.committed += charge.amount

    @precondition(lambda self: bool(self.calls))
    @rule()
    def housekeeping(self) -> None:
        # Every call is extended before its lease ends: nothing lapses.
        assert self.control.housekeeping(self.now) == ()

    @invariant()
    def within_funds(self) -> None:
        floor = self.customer.credit.floor
        assert self.store.available(CUSTOMER_ID) >= floor
        assert self.committed <= self.opening + self.topped - floor

    @invariant()
    def balance_is_the_sum(self) -> None:
        assert self.store.balance(CUSTOMER_ID) == self.opening + self.topped - self.committed

    @invariant()
    def reservations_are_the_calls_up(self) -> None:
        held = sum((call.credit.reserved for call in self.calls.values()), Decimal(0))
        assert self.store.balance(CUSTOMER_ID) - self.store.available(CUSTOMER_ID) == held


ManyCalls.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestManyCalls = ManyCalls.TestCase
