"""Credit control in the running switch, over loopback UDP, with balances from a fixed
ledger: refused before routing, cut when the money runs out, and turned off."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from tollguard.domain.credit import BalanceSnapshot, FundsChange, price
from tollguard.domain.fraud import Suspension
from tollguard.domain.shield import Ban
from tollguard.sip.message import make_response
from tollguard.switch.server import LiveStores

from .conftest import Harness, answer, plan_data

Run = Callable[..., None]
CUSTOMER_ID = 1  # plan_data's customer, prepaid by default
# Bounds a hang only: generous, as these run beside SIPp tests on a busy machine.
WAIT_S = 10.0


class _Ledger:
    """A :class:`BalanceSource` holding one balance and no later changes."""

    def __init__(self, balance: Decimal) -> None:
        self.balance = balance

    def snapshot(self) -> BalanceSnapshot:
        return BalanceSnapshot(1, ((CUSTOMER_ID, self.balance),))

    def changes(self, after: int, limit: int) -> tuple[FundsChange, ...]:
        return ()


class _Nothing:
    """Ban and suspension stores with nothing in them."""

    def version(self) -> int:
        return 0

    def load(self) -> list[Ban] | list[Suspension]:
        return []

    def save(self, items: list[Ban] | list[Suspension]) -> None:
        pass


def _stores(balance: Decimal) -> LiveStores:
    return LiveStores(_Nothing(), _Nothing(), balances=_Ledger(balance))  # type: ignore[arg-type]


def _seconds_of(seconds: int) -> Decimal:
    """What ``seconds`` of talk cost on plan_data's sell card."""
    card = plan_data((1, 2)).rate_cards[0]
    return price(seconds, card.rates[0], card)


def test_a_customer_who_cannot_pay_is_refused_before_any_gateway(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        refused = await h.uac.response(timeout=WAIT_S)  # the final answer, whatever it is
        assert (refused.status, refused.reason) == (402, "Insufficient funds")
        assert refused.headers.get("Reason") == 'Q.850;cause=21;text="Insufficient funds"'
        (cdr,) = await h.sink.wait(1, timeout=WAIT_S)
        assert (cdr.sip_code, cdr.q850_cause, cdr.sell_amount) == (402, 21, 0)
        assert cdr.attempts == ()
        assert h.gw1.nothing(lambda m: True) and h.gw2.nothing(lambda m: True)

    run_scenario(scenario, live_stores=_stores(Decimal(0)))


def test_an_answered_call_is_cut_when_its_money_runs_out(run_scenario: Run) -> None:
    funds = _seconds_of(2)

    async def scenario(h: Harness) -> None:
        dialog, _, _ = await h.connected()
        # One-second reservations: the second one still fits, the third does not.
        reason = 'Q.850;cause=31;text="Credit exhausted"'
        customer_bye, addr = await h.uac.request("BYE", timeout=WAIT_S)
        assert customer_bye.headers.get("Reason") == reason
        h.uac.send(make_response(customer_bye, 200), addr)
        gateway_bye, addr = await h.gw1.request("BYE", timeout=WAIT_S)
        assert gateway_bye.headers.get("Reason") == reason
        h.gw1.send(make_response(gateway_bye, 200), addr)
        (cdr,) = await h.sink.wait(1, timeout=WAIT_S)
        assert (cdr.sip_code, cdr.q850_cause, cdr.hangup_side.value) == (200, 31, "switch")
        assert cdr.billed_s == 2
        assert cdr.sell_amount == funds  # all of it, and not a cent more
        assert dialog.call_id == cdr.call_id

    run_scenario(
        scenario,
        billing={"slice_s": 1, "extend_before_s": 0},
        live_stores=_stores(funds),
    )


def test_credit_control_turned_off_lets_the_call_through(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        invite, addr = await h.gw1.request("INVITE", timeout=WAIT_S)
        answer(h.gw1, invite, addr, 486)
        # Routed, not refused for money: the gateway's answer reaches the customer.
        assert (await h.uac.response(timeout=WAIT_S)).status == 486

    run_scenario(scenario, billing={"credit_control": False}, live_stores=_stores(Decimal(0)))
