"""Credit control end to end: SIPp callers spend a customer's money through a real switch.

A switch of this module's own (``tollguard serve`` on a fresh data directory) relays to
the session's answering gateway (``alpha``), with reservations one second long
(``[billing] slice_s = 1``, extended when they run out) so that money runs out within
seconds. Calls are priced 0.01 a second, billed by the second, no connect fee; every
amount is checked exactly (``Decimal``) against the ledger the CDR writer posts to and
the operator tops up through (:func:`tollguard.web.billing.services.post_entry`, what the
admin and the API call).

Each customer has funds for about 90 s of calls and places 50 concurrent calls that
never hang up by themselves: the switch must cut every one with
``Reason: Q.850;cause=31;text="Credit exhausted"`` (the SIPp caller checks the header),
charge no more than there was, refuse the next call with 402, and let a call through
again once a top-up lands, without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.bench.calls import TollguardServer
from tollguard.bench.sippctl import LOOPBACK, Sipp, free_udp_ports

from .harness import Switch, close_shell, export_cdrs, manage_shell, number, provisioned_ids

pytestmark = pytest.mark.integration

PREPAID_HOST = "127.0.0.4"
POSTPAID_HOST = "127.0.0.5"
LOADED_HOST = "127.0.0.6"
THRIFTY_HOST = "127.0.0.7"
# The session's gateways this module's switch routes to, by the route they serve.
ROUTES = {"alpha": "4410", "busy": "4430", "ringer": "4450"}
ROUTE = ROUTES["alpha"]  # answers

PER_SECOND = Decimal("0.01")
FUNDS = Decimal("0.905")  # 90 s of calls, and half a second more that buys nothing
CALLS = 50
TOP_UP = Decimal("0.02")  # two seconds more
SETTINGS = {
    # One-second reservations, extended as they run out: with 50 calls on 90 s of
    # funds each call gets one or two seconds.
    "billing": {"slice_s": 1, "extend_before_s": 0},
    "cdr": {"flush_interval_s": 0.2},
    # Nothing here is about set-up timeouts: give a gateway on a busy machine time.
    "sip": {"gateway_setup_timeout_s": 10.0},
}


def credit_plan(gateways: Mapping[str, int]) -> dict[str, Any]:
    """Routes to the session's gateways ``alpha`` (answers), ``busy`` (486) and
    ``ringer`` (rings until cancelled), each provider's cost card covering its route."""

    def rate(prefix: str) -> dict[str, Any]:
        return {
            "prefix": prefix,
            "destination": f"Route {prefix}",
            "price_per_minute": str(PER_SECOND * 60),
            "connect_fee": "0",
            "initial_increment": 1,
            "next_increment": 1,
        }

    def customer(name: str, host: str, credit: dict[str, str]) -> dict[str, Any]:
        return {
            "name": name,
            "sell_card": "credit-sell",
            "credit": credit,
            "strategy": "lcr",
            "numbering": {"country_code": "44"},
            "acl": [{"network": f"{host}/32"}],
        }

    cards = [{"name": "credit-sell", "kind": "sell", "currency": "EUR", "rates": [rate("44")]}]
    providers = []
    for priority, (name, prefix) in enumerate(ROUTES.items(), start=1):
        cards.append(
            {"name": f"{name}-cost", "kind": "cost", "currency": "EUR", "rates": [rate(prefix)]}
        )
        gateway = {"name": f"{name}-gw", "host": LOOPBACK, "port": gateways[name]}
        providers.append(
            {
                "name": name,
                "cost_card": f"{name}-cost",
                "priority": priority,
                "gateways": [{**gateway, "transport": "udp"}],
            }
        )
    return {
        "rate_cards": cards,
        "providers": providers,
        "customers": [
            customer("prepaid", PREPAID_HOST, {"mode": "prepaid"}),
            customer("postpaid", POSTPAID_HOST, {"mode": "postpaid", "credit_limit": str(FUNDS)}),
            customer("loaded", LOADED_HOST, {"mode": "prepaid"}),
            customer("thrifty", THRIFTY_HOST, {"mode": "prepaid"}),
        ],
    }


# --- the ledger, through the product's own services -----------------------------------------


def post(
    server: TollguardServer, customer: str, kind: str, amount: Decimal, *, reference: str = ""
) -> None:
    """Post a ledger entry the way the admin and the API do (their ledger service)."""
    manage_shell(
        server,
        "import json\n"
        "from decimal import Decimal\n"
        "from tollguard.web.billing import services\n"
        "from tollguard.web.customers.models import Customer\n"
        f"entry = services.post_entry(Customer.objects.get(name={customer!r}), {kind!r},"
        f" Decimal({str(amount)!r}), reason='test', reference={reference!r})\n"
        "print(json.dumps(entry.pk))\n",
    )


def top_up(server: TollguardServer, customer: str, amount: Decimal, reference: str) -> None:
    post(server, customer, "top_up", amount, reference=reference)


@dataclass(frozen=True)
class Ledger:
    balance: Decimal  # the cached balance
    total: Decimal  # the sum of the entries
    charges: dict[str, Decimal]  # call charges by Call-ID (positive amounts)


def ledger(server: TollguardServer, customer: str) -> Ledger:
    raw = manage_shell(
        server,
        "import json\n"
        "from decimal import Decimal\n"
        "from tollguard.web.billing.models import LedgerEntry\n"
        "from tollguard.web.billing.selectors import balance_mismatches, balance_of\n"
        "from tollguard.web.customers.models import Customer\n"
        f"entries = list(LedgerEntry.objects.filter(customer__name={customer!r}))\n"
        "print(json.dumps({\n"
        f"  'balance': str(balance_of(Customer.objects.get(name={customer!r}).pk)),\n"
        "  'total': str(sum((e.amount for e in entries), Decimal(0))),\n"
        "  'charges': [[e.call_id, str(e.amount)] for e in entries if e.kind == 'call'],\n"
        "  'mismatches': [name for name, _, _ in balance_mismatches()],\n"
        "}))\n",
    )
    # What 'tollguard check' proves (billing.E001): cached balances are the ledger's sums.
    assert raw["mismatches"] == []
    charges: dict[str, Decimal] = {}
    for call_id, amount in raw["charges"]:
        assert call_id not in charges, f"call {call_id} charged twice"
        charges[call_id] = -Decimal(amount)
    return Ledger(Decimal(raw["balance"]), Decimal(raw["total"]), charges)


def _sell(cdr: dict[str, Any]) -> Decimal:
    return Decimal(str(cdr["sell_amount"] or 0))


# --- the switch ------------------------------------------------------------------------------


def _ports(switch: Switch) -> dict[str, int]:
    return {name: switch.gateways[name].local_port for name in ROUTES}


@pytest.fixture(scope="module")
def credit(switch: Switch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switch]:
    root = tmp_path_factory.mktemp("sipp-credit")
    (port,) = free_udp_ports(1)
    server = TollguardServer(root / "data", sip_port=port, settings=SETTINGS)
    try:
        server.init()
        server.load(credit_plan(_ports(switch)))
        ids = provisioned_ids(server)
        # Funds posted before the start: the switch loads them from the ledger.
        top_up(server, "prepaid", FUNDS, "opening")
        top_up(server, "thrifty", PER_SECOND, "opening")
        server.start()
        yield Switch(
            server=server,
            workdir=root / "callers",
            gateways=switch.gateways,
            provider_ids=ids["providers"],
            gateway_ids=ids["gateways"],
            customer_ids=ids["customers"],
        )
    finally:
        server.stop()
        close_shell(server)


def spend_everything(credit: Switch, customer: str, host: str, floor: Decimal) -> Ledger:
    """50 concurrent calls on about 90 s of funds: every one cut, no money overspent."""
    before = ledger(credit.server, customer)
    assert before.balance == before.total
    tag, result = credit.call(
        "uac_credit_cut", number(ROUTE), host=host, calls=CALLS, rate=CALLS, limit=CALLS,
        timeout_s=90,
    )  # fmt: skip
    # Every call answered and then ended by the switch's BYE with cause 31 (the caller
    # checks the Reason header; a call hung up otherwise, or refused, fails it).
    assert result.ok, result.errors
    assert sorted(result.final_codes.values()) == [200] * CALLS, result.final_codes
    cdrs = credit.cdrs(tag, CALLS)
    assert len(cdrs) == CALLS
    for cdr in cdrs:
        assert (cdr["sip_code"], cdr["hangup_side"]) == (200, "switch"), cdr
        assert cdr["q850_cause"] == 31, cdr
        assert cdr["customer_id"] == credit.customer_ids[customer], cdr
        billed_s = cdr["billed_s"]
        assert billed_s >= 1, cdr
        # Cut at the end of the reserved time: the call lasted into its last second,
        # and nothing past the reservation was charged.
        assert cdr["duration_ms"] > (billed_s - 1) * 1000, cdr
        assert _sell(cdr) == billed_s * PER_SECOND, cdr
    spent = sum((_sell(cdr) for cdr in cdrs), Decimal(0))

    after = ledger(credit.server, customer)
    assert after.balance == after.total
    assert after.balance == before.balance - spent
    # Never below the floor, and less than one increment of the rate left unspent.
    assert after.balance >= floor
    assert after.balance - floor < PER_SECOND
    assert spent == (before.balance - floor) // PER_SECOND * PER_SECOND
    # The CDR writer posted each call's charge with its CDR, one to one.
    new_charges = {k: v for k, v in after.charges.items() if k not in before.charges}
    assert new_charges == {cdr["call_id"]: _sell(cdr) for cdr in cdrs}
    return after


def refused_then_topped_up(credit: Switch, customer: str, host: str, spent: Ledger) -> None:
    """The next call gets 402; after a top-up the next one goes through again."""
    tag, result = credit.call("uac_expect_code", number(ROUTE), host=host, keys={"expected": "402"})
    assert result.ok, result.errors
    (refused,) = credit.cdrs(tag, 1)
    assert (refused["sip_code"], refused["q850_cause"]) == (402, 21), refused
    assert refused["attempts"] == [], "no gateway is tried for a call nobody pays for"
    assert _sell(refused) == 0

    top_up(credit.server, customer, TOP_UP, f"{customer}-top-up")
    # The switch applies ledger changes every second: poll until a call is admitted.
    deadline = time.monotonic() + 10
    refusals = 0
    while True:
        tag, result = credit.call("uac_credit_cut", number(ROUTE), host=host)
        assert result.ok, result.errors
        (code,) = result.final_codes.values()
        if code == 200:
            break
        assert code == 402, code
        refusals += 1
        assert time.monotonic() < deadline, f"the top-up never reached the switch ({refusals})"
    (cdr,) = credit.cdrs(tag, 1)
    assert (cdr["hangup_side"], cdr["q850_cause"]) == ("switch", 31), cdr
    # Two seconds more, and the half increment still left over.
    assert _sell(cdr) == TOP_UP, cdr
    final = ledger(credit.server, customer)
    assert final.balance == final.total == spent.balance
    assert final.charges[cdr["call_id"]] == TOP_UP


def test_prepaid_balance_is_spent_to_zero_never_below(credit: Switch) -> None:
    spent = spend_everything(credit, "prepaid", PREPAID_HOST, floor=Decimal(0))
    assert spent.balance == FUNDS - Decimal("0.90")
    refused_then_topped_up(credit, "prepaid", PREPAID_HOST, spent)


def test_postpaid_customer_is_stopped_at_its_credit_limit(credit: Switch) -> None:
    spent = spend_everything(credit, "postpaid", POSTPAID_HOST, floor=-FUNDS)
    assert spent.balance == Decimal("-0.90")
    refused_then_topped_up(credit, "postpaid", POSTPAID_HOST, spent)


def test_failed_and_cancelled_calls_cost_nothing_and_hold_nothing(credit: Switch) -> None:
    """A customer with one second of funds: calls that fail or are cancelled give their
    reservation back at once, so the next answered call still gets that second."""
    tag, busy = credit.call(
        "uac_expect_code", number(ROUTES["busy"]), host=THRIFTY_HOST, calls=10, rate=20,
        keys={"expected": "486"},
    )  # fmt: skip
    # One reservation at a time: a call may find the second held by the one before it
    # (402); every other one reached the gateway and got its 486.
    codes = list(busy.final_codes.values())
    assert len(codes) == 10 and set(codes) <= {486, 402}, codes
    assert codes.count(486) >= 1, codes
    tag, cancelled = credit.call(
        "uac_cancel", number(ROUTES["ringer"]), host=THRIFTY_HOST, pause_ms=300
    )
    assert cancelled.ok, cancelled.errors
    assert list(cancelled.final_codes.values()) == [487]
    untouched = ledger(credit.server, "thrifty")
    assert untouched.balance == PER_SECOND
    assert untouched.charges == {}

    tag, result = credit.call("uac_credit_cut", number(ROUTE), host=THRIFTY_HOST)
    assert result.ok, result.errors
    assert list(result.final_codes.values()) == [200]
    (cdr,) = credit.cdrs(tag, 1)
    assert (cdr["billed_s"], _sell(cdr), cdr["q850_cause"]) == (1, PER_SECOND, 31), cdr
    assert ledger(credit.server, "thrifty").balance == 0


def test_charges_and_cdrs_agree_after_a_graceful_stop_under_load(
    switch: Switch, tmp_path: Path
) -> None:
    """SIGTERM while calls are up and more are arriving: every answered call is ended,
    settled and written, and the ledger's call charges are exactly the CDRs' amounts."""
    (port,) = free_udp_ports(1)
    server = TollguardServer(tmp_path / "data", sip_port=port, settings=SETTINGS)
    caller: Sipp | None = None
    start = Decimal("5.00")
    try:
        server.init()
        server.load(credit_plan(_ports(switch)))
        top_up(server, "loaded", start, "opening")
        server.start()
        (caller_port,) = free_udp_ports(1, host=LOADED_HOST)
        caller = Sipp(
            "uac_until_bye", workdir=tmp_path, local_host=LOADED_HOST, local_port=caller_port,
            remote=(LOOPBACK, port), service=number(ROUTE), calls=80, rate=20, limit=80,
            recv_timeout_ms=10_000, call_id="%u-loaded@%s",
        ).start()  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stats = caller.result().stats
            if stats is not None and stats.created >= 40:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the caller never had 40 calls going")
        assert server.stop() == 0, server.log()[-2000:]
        seen = caller.stop()
        cdrs = [c for c in export_cdrs(server) if "-loaded@" in c["call_id"]]
        after = ledger(server, "loaded")
    finally:
        server.stop()
        if caller is not None:
            caller.kill()
    answered = [c for c in cdrs if c["sip_code"] == 200]
    # Calls were up when the stop came, and each one the caller saw answered has its CDR.
    assert len(answered) >= 30, len(answered)
    assert {c["call_id"] for c in answered} == {
        call_id for call_id, code in seen.final_codes.items() if code == 200
    }
    for cdr in answered:
        assert cdr["hangup_side"] == "switch", cdr
        assert _sell(cdr) == cdr["billed_s"] * PER_SECOND, cdr
    charged = {c["call_id"]: _sell(c) for c in cdrs if _sell(c)}
    assert charged, "the calls were charged"
    assert after.charges == charged
    assert after.balance == after.total == start - sum(charged.values(), Decimal(0))
    assert after.balance >= 0

    # A restart rebuilds the live balances from the ledger, the charges the stop wrote
    # included: leave exactly two seconds' worth, and that is what the switch spends.
    post(server, "loaded", "adjustment", 2 * PER_SECOND - after.balance)
    restarted = Switch(server=server, workdir=tmp_path / "again", gateways=switch.gateways)
    try:
        server.start()
        tag, result = restarted.call("uac_credit_cut", number(ROUTE), host=LOADED_HOST)
        assert result.ok, result.errors
        assert list(result.final_codes.values()) == [200]
        (cdr,) = restarted.cdrs(tag, 1)
        assert (cdr["billed_s"], _sell(cdr), cdr["q850_cause"]) == (2, 2 * PER_SECOND, 31)
        _, refused = restarted.call(
            "uac_expect_code", number(ROUTE), host=LOADED_HOST, keys={"expected": "402"}
        )
        assert refused.ok, refused.errors
    finally:
        server.stop()
    assert ledger(server, "loaded").balance == 0
    close_shell(server)
