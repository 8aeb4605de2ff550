"""The CDR of a call to a DID that forwards: the DID called, delivered or refused.

The number the provider called is what the operator bills and searches by: the CDR's
``did`` and ``destination`` name it, its price is charged to its owner, and where the
forward took the call is in ``detail`` (docs/billing.md, "Forwards").
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tollguard.domain.cdr import CallDirection
from tollguard.domain.plan import PlanData

from .conftest import Harness
from .test_b2bua import advance
from .test_inbound import (
    BOB_CONTACT,
    BOB_DID,
    DID_PRICE,
    PROVIDER_HOST,
    RANGE,
    Run,
    _ack,
    _handled,
    _invite,
    _peer,
    _provider_hangs_up,
    _registered,
    _reply,
    _run,
    did_plan,
)

RANGE_PRICE = Decimal("0.0300")  # the range's own price, not bob's DID's
CALLED = "442079460042"  # a number of the range, which forwards to BOB_DID


def forwarding_plan(h: Harness) -> PlanData:
    plan = did_plan(h)
    dids = tuple(
        replace(did, price_per_minute=RANGE_PRICE) if did.first == RANGE[0] else did
        for did in plan.dids
    )
    return replace(plan, dids=dids)


def test_a_forwarded_call_is_recorded_as_the_did_called_delivered_or_refused(
    run_scenario: Run,
) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(forwarding_plan(h))
        provider = await _peer(PROVIDER_HOST)
        # Refused: bob, where the forward goes, has not registered.
        _invite(h, provider, CALLED)
        assert (await provider.response()).status == 480
        (refused,) = await h.sink.wait()
        # Delivered: bob's phone answers, 30 s of talk.
        phone = await _registered(h, "bob", BOB_CONTACT)
        call_id = _invite(h, provider, f"+{CALLED}")
        invite, addr = await phone.request("INVITE")
        _reply(phone, invite, addr, 200)
        ok = await provider.response(200)
        _ack(provider, h, ok, call_id, f"sip:{CALLED}@127.0.0.1:{h.switch[1]}")
        await phone.request("ACK")
        await _handled(h, provider)
        advance(h, 30)
        await _provider_hangs_up(h, provider, phone, ok, call_id, CALLED)
        delivered = (await h.sink.wait(2))[1]

        for cdr in (refused, delivered):
            assert cdr.direction is CallDirection.INBOUND
            assert cdr.did == CALLED
            assert cdr.destination == f"DID {RANGE[0]}"
            assert (cdr.customer_id, cdr.account_id) == (1, 2)
        assert refused.detail == f"inbound: not registered; forwarded to DID {BOB_DID}"
        assert delivered.detail == f"forwarded to DID {BOB_DID}"
        # The range's price per started minute, not that of the DID it forwards to.
        assert delivered.sell_rate == RANGE_PRICE != DID_PRICE
        assert (delivered.billed_s, delivered.sell_amount) == (60, RANGE_PRICE)
        assert refused.sell_amount == 0

    _run(run_scenario, scenario, clock=True)


def test_a_call_to_the_did_itself_says_nothing_of_forwards(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await h.source.swap(forwarding_plan(h))
        provider = await _peer(PROVIDER_HOST)
        _invite(h, provider, BOB_DID)
        assert (await provider.response()).status == 480
        (cdr,) = await h.sink.wait()
        assert (cdr.did, cdr.destination) == (BOB_DID, f"DID {BOB_DID}")
        assert cdr.detail == "inbound: not registered"

    _run(run_scenario, scenario)
