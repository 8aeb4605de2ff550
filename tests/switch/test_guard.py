"""The SIP shield and the fraud engine on a running switch (loopback peers).

The harness's customer sends from 127.0.0.1, which is in the customer's IP list and so
on the shield's allow-list; an attacker here sends from other loopback addresses.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from decimal import Decimal

import pytest

from tollguard.domain.plan import (
    CallLimits,
    DestinationMatch,
    DestinationRule,
    FraudPlan,
    FraudPolicy,
)
from tollguard.sip.digest import authorization
from tollguard.sip.message import Response, make_response

from .conftest import PASSWORD, Harness, Peer, answer, plan_data, request
from .test_b2bua import Run, _processed, advance


async def _peer(host: str) -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=(host, 0))
    return peer


def _invite(h: Harness, peer: Peer, call_id: str, creds: str = "") -> None:
    uri = f"sip:442071234567@127.0.0.1:{h.switch[1]}"
    extra = (("Proxy-Authorization", creds),) if creds else ()
    # The switch answers where a request came from (RFC 3581): the Via may say 127.0.0.1.
    message = request(
        "INVITE", uri, local_port=peer.port, call_id=call_id, from_tag=call_id, extra=extra
    )
    peer.send(message, h.switch)


async def _try_password(h: Harness, peer: Peer, call_id: str, password: str) -> int:
    """A digest INVITE from ``peer``: its 407, then the answer with ``password``."""
    _invite(h, peer, call_id)
    challenge = await peer.response(407)
    value = next(v for v in challenge.headers.get_all("Proxy-Authenticate") if "SHA-256" in v)
    uri = f"sip:442071234567@127.0.0.1:{h.switch[1]}"
    _invite(h, peer, call_id + "b", authorization(value, "alice", password, "INVITE", uri, "c"))
    final = await peer.response()
    return final.status


def test_a_password_guesser_is_banned_and_answered_as_before(
    run_scenario: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        guesser = await _peer("127.0.0.2")
        for attempt in range(5):
            assert await _try_password(h, guesser, f"guess-{attempt}", "wrong") == 403
        await asyncio.sleep(0.05)  # the fifth failure is counted once its 403 is out
        # Banned now (refuse mode): the right password gets the same 403, no gateway.
        assert await _try_password(h, guesser, "right-too-late", PASSWORD) == 403
        assert h.gw1.nothing(lambda m: True)
        # Another address with the right password is not affected.
        other = await _peer("127.0.0.3")
        _invite(h, other, "honest")
        challenge = await other.response(407)
        value = next(v for v in challenge.headers.get_all("Proxy-Authenticate") if "SHA-256" in v)
        uri = f"sip:442071234567@127.0.0.1:{h.switch[1]}"
        creds = authorization(value, "alice", PASSWORD, "INVITE", uri, "c")
        _invite(h, other, "honestb", creds)
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 486)
        assert (await other.response()).status == 486
        for peer in (guesser, other):
            assert peer.transport is not None
            peer.transport.close()

    with caplog.at_level(logging.WARNING, "tollguard.security"):
        run_scenario(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert any(line.startswith("sip ban") and "ip=127.0.0.2" in line for line in lines), lines
    assert sum("auth failure: ip=127.0.0.2" in line for line in lines) == 6
    assert any("ip=127.0.0.2" in line and "reason=shield" in line for line in lines)


def test_a_scanner_is_dropped_and_its_source_banned(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        scanner = await _peer("127.0.0.4")
        uri = f"sip:100@127.0.0.1:{h.switch[1]}"
        probe = (
            request("OPTIONS", uri, local_port=scanner.port, call_id="scan-1", from_tag="s")
            .to_bytes()
            .replace(b"User-Agent: test-uac", b"User-Agent: friendly-scanner")
        )
        scanner.send(probe, h.switch)
        plain = request("OPTIONS", uri, local_port=scanner.port, call_id="scan-2", from_tag="s")
        scanner.send(plain, h.switch)  # banned now: even a plain request is dropped
        # The customer on its allow-listed address is answered as usual.
        h.uac.send(
            request("OPTIONS", uri, local_port=h.uac.port, call_id="ok-1", from_tag="o"),
            h.switch,
        )
        await h.uac.response(200, method="OPTIONS")
        await asyncio.sleep(0.1)
        assert scanner.inbox == []
        assert scanner.transport is not None
        scanner.transport.close()

    run_scenario(scenario)


def test_the_allow_list_holds_from_the_first_request(run_scenario: Run) -> None:
    """The plan's IP lists join the allow-list when the switch loads the plan, not when
    the first call reaches admission: a customer's first request, even one a scanner
    would send, is answered and never bans its own address."""

    async def scenario(h: Harness) -> None:
        uri = f"sip:100@127.0.0.1:{h.switch[1]}"
        odd = (
            request("OPTIONS", uri, local_port=h.uac.port, call_id="first-1", from_tag="f")
            .to_bytes()
            .replace(b"User-Agent: test-uac", b"User-Agent: friendly-scanner")
        )
        h.uac.send(odd, h.switch)
        await h.uac.response(200, method="OPTIONS")
        h.uac.send(
            request("OPTIONS", uri, local_port=h.uac.port, call_id="first-2", from_tag="f"),
            h.switch,
        )
        await h.uac.response(200, method="OPTIONS")

    run_scenario(scenario)


def test_a_concurrent_call_limit_admits_exactly_n(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        data = plan_data((h.gw1.port, h.gw2.port), version=2)
        policy = FraudPolicy(limits=CallLimits(max_concurrent=2))
        await h.source.swap(replace(data, fraud=FraudPlan(customers={1: policy})))
        first, second = h.invite(), h.invite()
        ringing = []
        for _ in range(2):
            invite, addr = await h.gw1.request("INVITE")
            answer(h.gw1, invite, addr, 180)
            ringing.append((invite, addr))
        h.invite()  # the third at once: refused before any gateway
        refused = await h.uac.response(503)
        assert refused.headers.get("Reason") == 'Q.850;cause=34;text="Service Unavailable"'
        assert h.gw1.nothing(lambda m: hasattr(m, "method") and m.method == "INVITE")
        (cdr,) = await h.sink.wait()
        assert cdr.sip_code == 503
        assert cdr.detail.startswith("fraud ")
        assert cdr.attempts == ()
        # One ends: the next call is admitted again.
        first.cancel()
        cancel, caddr = await h.gw1.request("CANCEL")
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, *ringing[0], 487)
        await h.sink.wait(2)
        h.invite()
        await h.gw1.request("INVITE")
        del second

    run_scenario(scenario)


def test_a_denied_destination_is_refused_with_a_cdr_for_the_operator(
    run_scenario: Run,
) -> None:
    async def scenario(h: Harness) -> None:
        data = plan_data((h.gw1.port, h.gw2.port), version=2)
        deny = DestinationRule(False, DestinationMatch.PREFIX, "4420", note="London is off")
        policy = FraudPolicy(destination_rules=(deny,))
        await h.source.swap(replace(data, fraud=FraudPlan(customers={1: policy})))
        h.invite()
        refused: Response = await h.uac.response(403)
        # The caller learns nothing useful; the CDR says which rule and why.
        assert refused.reason == "Forbidden"
        (cdr,) = await h.sink.wait()
        assert (cdr.sip_code, cdr.q850_cause) == (403, 21)
        assert "destination" in cdr.detail
        assert h.gw1.nothing(lambda m: True)

    run_scenario(scenario)


def test_spend_is_counted_from_charges(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        data = plan_data((h.gw1.port, h.gw2.port), version=2)
        cap = FraudPolicy(limits=CallLimits(spend_per_day=Decimal("0.0001")))
        await h.source.swap(replace(data, fraud=FraudPlan(customers={1: cap})))
        dialog, _, _ = await h.connected()
        await _processed(h)
        advance(h, 1.0)  # a billed second: 0.0200 a minute
        h.uac.send(dialog.in_dialog("BYE"), h.switch)
        bye, addr = await h.gw1.request("BYE")
        h.gw1.send(make_response(bye, 200), addr)
        (cdr,) = await h.sink.wait()
        assert cdr.sell_amount > 0
        h.invite()  # the day's cap is spent: refused
        refused = await h.uac.response()
        assert refused.status == 403
        cdrs = await h.sink.wait(2)
        assert "spend" in cdrs[1].detail

    run_scenario(scenario, clock=True)
