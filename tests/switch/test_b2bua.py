"""End-to-end B2BUA scenarios over loopback UDP: a test UAC, two test gateways, the switch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tollguard.config import Listen
from tollguard.domain.cdr import HangupSide
from tollguard.domain.plan import SipTransport
from tollguard.sip import parse_message
from tollguard.sip.digest import authorization
from tollguard.sip.message import Request, Response, make_response
from tollguard.switch.q850 import REASON_MAX_DURATION, REASON_NO_ANSWER, REASON_TIMER_EXPIRY
from tollguard.switch.session_timer import REASON_REFRESH_FAILED, REASON_SESSION_EXPIRED
from tollguard.transport import Transports, client_context

from .conftest import (
    PASSWORD,
    SDP_ANSWER,
    SDP_OFFER,
    TIMEOUT,
    Dialog,
    Harness,
    Peer,
    answer,
    plan_data,
    request,
    write_certificate,
)

Run = Callable[..., None]


def _is(method: str) -> Callable[[Request | Response], bool]:
    return lambda m: isinstance(m, Request) and m.method == method


async def _bye_from_customer(h: Harness, dialog: Dialog) -> None:
    h.uac.send(dialog.in_dialog("BYE"), h.switch)
    bye, addr = await h.gw1.request("BYE")
    h.gw1.send(make_response(bye, 200), addr)
    await h.uac.response(200, method="BYE")


def test_basic_call_is_relayed_rated_and_recorded(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        trying = await h.uac.response(100)
        assert trying.call_id == dialog.call_id
        invite, addr = await h.gw1.request("INVITE")
        assert invite.body == SDP_OFFER
        assert str(invite.uri).startswith("sip:442071234567@127.0.0.1:")
        assert invite.max_forwards == 69
        answer(h.gw1, invite, addr, 180)
        ringing = await h.uac.response(180)
        assert ringing.to.tag
        answer(h.gw1, invite, addr, 200, body=SDP_ANSWER)
        ok = await h.uac.response(200)
        assert ok.body == SDP_ANSWER
        assert ok.to.tag == ringing.to.tag
        dialog.ack(ok)
        await h.gw1.request("ACK")
        await _bye_from_customer(h, dialog)
        (cdr,) = await h.sink.wait()
        assert cdr.call_id == dialog.call_id
        assert cdr.sip_code == 200
        assert cdr.q850_cause == 16
        assert cdr.hangup_side is HangupSide.CALLER
        assert cdr.callee_raw == "777442071234567"
        assert cdr.callee == "442071234567"
        assert cdr.customer_id == 1
        assert cdr.account_id is None
        assert cdr.provider_id == 1
        assert cdr.gateway_id == 1
        assert [a.sip_code for a in cdr.attempts] == [200]
        assert cdr.caller_user_agent == "test-uac"
        assert cdr.callee_user_agent == "test-gw"
        assert cdr.answered_at is not None
        assert cdr.margin == cdr.sell_amount - cdr.cost_amount

    run_scenario(scenario)


def test_topology_hiding_both_ways(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite(extra=(("Record-Route", "<sip:edge.customer.example;lr>"),))
        invite, addr = await h.gw1.request("INVITE")
        raw = h.gw1.raw[-1]
        uac_port = str(h.uac.port).encode()
        assert b"customer.example" not in raw
        assert b"alice@127.0.0.1:" + uac_port not in raw  # customer's Contact
        assert all(str(v.port) != str(h.uac.port) for v in invite.vias)
        assert invite.call_id != dialog.call_id
        assert invite.from_.tag != dialog.from_tag
        assert len(invite.vias) == 1
        answer(
            h.gw1,
            invite,
            addr,
            200,
            body=SDP_ANSWER,
            headers=(("Record-Route", "<sip:core.carrier.example;lr>"),),
        )
        ok = await h.uac.response(200)
        back = next(r for r in reversed(h.uac.raw) if r.startswith(b"SIP/2.0 200"))
        assert b"carrier.example" not in back
        assert b"gw@127.0.0.1" not in back
        assert ok.headers.get("Contact") is not None
        dialog.ack(ok)
        await h.gw1.request("ACK")
        await _bye_from_customer(h, dialog)

    run_scenario(scenario)


def test_failover_on_503_tries_the_next_gateway(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 503)
        await h.gw1.request("ACK")
        invite2, addr2 = await h.gw2.request("INVITE")
        assert invite2.call_id != invite.call_id
        answer(h.gw2, invite2, addr2, 200, body=SDP_ANSWER)
        ok = await h.uac.response(200)
        dialog.ack(ok)
        await h.gw2.request("ACK")
        h.uac.send(dialog.in_dialog("BYE"), h.switch)
        bye, baddr = await h.gw2.request("BYE")
        h.gw2.send(make_response(bye, 200), baddr)
        (cdr,) = await h.sink.wait()
        assert [(a.gateway_id, a.sip_code) for a in cdr.attempts] == [(1, 503), (2, 200)]
        assert cdr.gateway_id == 2

    run_scenario(scenario)


@pytest.mark.parametrize("status", [486, 603], ids=["busy", "decline"])
def test_no_failover_on_busy_or_6xx(run_scenario: Run, status: int) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, status)
        final = await h.uac.response()
        assert final.status == status
        (cdr,) = await h.sink.wait()
        assert cdr.sip_code == status
        assert cdr.hangup_side is HangupSide.CALLEE
        assert h.gw2.nothing(lambda m: True)

    run_scenario(scenario)


def test_last_failure_code_goes_to_the_customer(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 503)
        invite2, addr2 = await h.gw2.request("INVITE")
        answer(h.gw2, invite2, addr2, 502)
        final = await h.uac.response()
        assert final.status == 502
        (cdr,) = await h.sink.wait()
        assert cdr.q850_cause == 38

    run_scenario(scenario)


def advance(h: Harness, seconds: float) -> None:
    """Move the switch's manual clock (scenarios run with ``clock=True``)."""
    assert h.clock is not None
    h.clock.advance(seconds)


def test_setup_timeout_fails_over(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        await h.gw1.request("INVITE")  # gateway 1 stays silent
        advance(h, 0.99)
        assert h.gw2.nothing(_is("INVITE"))
        advance(h, 0.01)  # the setup timeout (1 s)
        invite2, addr2 = await h.gw2.request("INVITE")
        answer(h.gw2, invite2, addr2, 486)
        final = await h.uac.response()
        assert final.status == 486
        (cdr,) = await h.sink.wait()
        assert [(a.gateway_id, a.sip_code) for a in cdr.attempts] == [(1, 408), (2, 486)]
        assert cdr.call_id == dialog.call_id

    run_scenario(scenario, clock=True)


def test_late_provisional_after_setup_timeout_gets_cancel_with_reason(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        invite, addr = await h.gw1.request("INVITE")
        advance(h, 1.0)  # the setup timeout
        invite2, addr2 = await h.gw2.request("INVITE")
        # Gateway 1 wakes up after the switch moved on: RFC 3261 §9.1 lets the switch
        # CANCEL only now, and it says why.
        answer(h.gw1, invite, addr, 180)
        cancel, caddr = await h.gw1.request("CANCEL")
        assert cancel.headers.get_all("Reason") == (REASON_TIMER_EXPIRY,)
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, invite, addr, 487)
        answer(h.gw2, invite2, addr2, 486)
        assert (await h.uac.response()).status == 486

    run_scenario(scenario, clock=True)


def test_ring_timeout_cancels_and_fails_over(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 180)
        await h.uac.response(180)
        advance(h, 4.9)
        assert h.gw1.nothing(_is("CANCEL"))
        advance(h, 0.1)  # the ring timeout (5 s)
        cancel, caddr = await h.gw1.request("CANCEL")
        assert cancel.vias[0].branch == invite.vias[0].branch
        # RFC 3326: the gateway learns why (Q.850 19, no answer from user).
        assert cancel.headers.get_all("Reason") == (REASON_NO_ANSWER,)
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, invite, addr, 487)
        invite2, addr2 = await h.gw2.request("INVITE")
        answer(h.gw2, invite2, addr2, 404)
        assert (await h.uac.response()).status == 404

    run_scenario(scenario, clock=True)


def test_cancel_before_answer(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 180)
        await h.uac.response(180)
        dialog.cancel()
        assert (await h.uac.response(200, method="CANCEL")).status == 200
        assert (await h.uac.response(487)).status == 487
        cancel, caddr = await h.gw1.request("CANCEL")
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, invite, addr, 487)
        await h.gw1.request("ACK")
        (cdr,) = await h.sink.wait()
        assert cdr.sip_code == 487
        assert cdr.hangup_side is HangupSide.CALLER
        # The attempt is recorded with the 487 it got, and why the switch cancelled it.
        assert (cdr.attempts[0].sip_code, cdr.attempts[0].reason) == (487, "cancelled")
        assert h.gw2.nothing(lambda m: True)
        assert cancel.headers.get("Reason") is None  # the customer gave none

    run_scenario(scenario)


def test_cancel_passes_the_customers_reason_on(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 180)
        await h.uac.response(180)
        reasons = (
            ("Reason", 'SIP;cause=200;text="Call completed elsewhere"'),
            ("Reason", "Q.850;cause=sixteen"),  # malformed: not passed on
        )
        dialog.cancel(extra=reasons)
        await h.uac.response(200, method="CANCEL")
        cancel, caddr = await h.gw1.request("CANCEL")
        assert cancel.headers.get_all("Reason") == (
            'SIP;cause=200;text="Call completed elsewhere"',
        )
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, invite, addr, 487)
        (cdr,) = await h.sink.wait()
        assert cdr.sip_code == 487

    run_scenario(scenario)


def test_bye_reason_is_passed_on_and_its_cause_recorded(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, _, _ = await h.connected()
        cause = 'Q.850;cause=17;text="User busy"'
        h.uac.send(dialog.in_dialog("BYE", extra=(("Reason", cause),)), h.switch)
        bye, addr = await h.gw1.request("BYE")
        assert bye.headers.get_all("Reason") == (cause,)
        h.gw1.send(make_response(bye, 200), addr)
        (cdr,) = await h.sink.wait()
        assert cdr.hangup_side is HangupSide.CALLER
        assert cdr.q850_cause == 17

    run_scenario(scenario)


def test_bye_from_the_provider(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, invite, addr = await h.connected()
        bye = _from_gateway(invite, "BYE", 1, h.gw1.port)
        h.gw1.send(bye.with_headers(bye.headers.append("Reason", "Q.850;cause=31")), addr)
        await h.gw1.response(200, method="BYE")
        cbye, caddr = await h.uac.request("BYE")
        assert cbye.call_id == dialog.call_id
        assert cbye.headers.get_all("Reason") == ("Q.850;cause=31",)
        h.uac.send(make_response(cbye, 200), caddr)
        (cdr,) = await h.sink.wait()
        assert cdr.hangup_side is HangupSide.CALLEE
        assert cdr.q850_cause == 31  # the provider's cause, not our mapping of 200

    run_scenario(scenario)


def test_reinvite_is_relayed_both_ways(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, _, _ = await h.connected()
        h.uac.send(dialog.in_dialog("INVITE", body=SDP_OFFER), h.switch)
        reinvite, addr = await h.gw1.request("INVITE")
        h.gw1.send(
            make_response(
                reinvite, 200, body=SDP_ANSWER, headers=(("Content-Type", "application/sdp"),)
            ),
            addr,
        )
        ok = await h.uac.response(200)
        assert ok.body == SDP_ANSWER
        await h.gw1.request("ACK")
        h.uac.send(dialog.in_dialog("INFO"), h.switch)
        info, iaddr = await h.gw1.request("INFO")
        h.gw1.send(make_response(info, 200), iaddr)
        await h.uac.response(200, method="INFO")
        await _bye_from_customer(h, dialog)

    run_scenario(scenario)


def _from_gateway(invite: Request, method: str, cseq: int, port: int) -> Request:
    """An in-dialog request from gateway 1 for the call that ``invite`` started."""
    to = invite.headers.get("To") or ""
    return Request(
        method,
        invite.from_.uri,
        invite.headers.remove("Max-Forwards")
        .replace("CSeq", f"{cseq} {method}")
        .replace("From", f"{to};tag=x1")
        .replace("To", invite.headers.get("From") or "")
        .replace("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{method}{cseq}"),
    )


def test_required_extensions_get_420(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        # RFC 3261 §8.2.2.3: Unsupported lists what the switch does not support of a
        # Require (it supports session timers, RFC 4028).
        h.invite(extra=(("Require", "100rel, timer"),))
        refused = await h.uac.response(420)
        assert refused.headers.get_all("Unsupported") == ("100rel",)
        assert refused.to.tag
        assert h.gw1.nothing(_is("INVITE"))
        # Supported (not Require) is fine: the call goes through.
        dialog = h.invite(extra=(("Supported", "100rel, timer"),))
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 200, body=SDP_ANSWER)
        dialog.ack(await h.uac.response(200))
        await h.gw1.request("ACK")
        # In a dialog too, and nothing is relayed.
        h.uac.send(dialog.in_dialog("INFO", extra=(("Require", "foo"),)), h.switch)
        assert (await h.uac.response(420, method="INFO")).headers.get("Unsupported") == "foo"
        assert h.gw1.nothing(_is("INFO"))
        await _bye_from_customer(h, dialog)

    run_scenario(scenario)


def test_rfc4475_bext01_gets_420_listing_the_required_options(run_scenario: Run) -> None:
    # RFC 4475 §3.3.5: a UAS answers 420 listing the Require options (Proxy-Require is a
    # proxy's business, and the switch is a user agent on each leg).
    corpus = Path(__file__).resolve().parents[1] / "sip" / "rfc4475"
    torture = (corpus / "bext01.dat").read_bytes()

    async def scenario(h: Harness) -> None:
        h.uac.send(torture, h.switch)
        refused = await h.uac.response(420, method="OPTIONS")
        assert refused.headers.get_all("Unsupported") == (
            "nothingSupportsThis",
            "nothingSupportsThisEither",
        )

    run_scenario(scenario)


def test_overlapping_and_crossing_reinvites(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, invite, addr = await h.connected()
        h.uac.send(dialog.in_dialog("INVITE", body=SDP_OFFER), h.switch)
        reinvite, raddr = await h.gw1.request("INVITE")
        # RFC 3261 §14.2: a second re-INVITE from the customer while its first is
        # unanswered gets 500 with a Retry-After of 0-10 s, and goes no further.
        h.uac.send(dialog.in_dialog("INVITE", body=SDP_OFFER), h.switch)
        refused = await h.uac.response(500)
        retry = refused.headers.get("Retry-After")
        assert retry is not None and 0 <= int(retry) <= 10
        # The gateway's own re-INVITE crosses ours on its leg: 491 Request Pending.
        h.gw1.send(_from_gateway(invite, "INVITE", 2, h.gw1.port), addr)
        assert (await h.gw1.response(491)).status == 491
        assert h.uac.nothing(_is("INVITE"))
        # Once the first is answered, re-INVITEs flow again.
        h.gw1.send(
            make_response(
                reinvite, 200, body=SDP_ANSWER, headers=(("Content-Type", "application/sdp"),)
            ),
            raddr,
        )
        await h.uac.response(200)
        await h.gw1.request("ACK")
        h.gw1.send(_from_gateway(invite, "INVITE", 3, h.gw1.port), addr)
        relayed, caddr = await h.uac.request("INVITE")
        # ... and the customer's crossing one gets 491 while the switch's is pending.
        h.uac.send(dialog.in_dialog("INVITE", body=SDP_OFFER), h.switch)
        assert (await h.uac.response(491)).status == 491
        h.uac.send(make_response(relayed, 200), caddr)
        await h.gw1.response(200, method="INVITE")
        await _bye_from_customer(h, dialog)

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("user", "algorithm"),
    [("alice", "MD5"), ("alice", "SHA-256"), ("bob", "SHA-256")],
    ids=["md5", "sha256", "sha256-only-account"],
)
def test_digest_auth(run_scenario: Run, user: str, algorithm: str) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite(number="442071234567")
        challenge = await h.uac.response(407)
        values = challenge.headers.get_all("Proxy-Authenticate")
        offered = [v for v in values if f"algorithm={algorithm}," in v]
        assert offered
        # The 407 is the answer at once: no 100 Trying before it (RFC 3261 §17.2.1).
        assert h.uac.nothing(lambda m: isinstance(m, Response) and m.status == 100)
        creds = authorization(offered[0], user, PASSWORD, "INVITE", dialog.uri, "c1")
        h.invite(number="442071234567", extra=(("Proxy-Authorization", creds),))
        invite, addr = await h.gw1.request("INVITE")
        # The authenticated INVITE waits for a gateway, so it gets its 100.
        assert (await h.uac.response(100)).status == 100
        answer(h.gw1, invite, addr, 486)
        assert (await h.uac.response(486)).status == 486
        (cdr,) = await h.sink.wait()
        assert cdr.account_id == (1 if user == "alice" else 2)

    run_scenario(scenario)


def test_a_captured_proxy_authorization_places_one_call_only(run_scenario: Run) -> None:
    # Issue 9, defect 1: one captured Proxy-Authorization (same nonce, nc, cnonce)
    # was accepted for the original call, for a new Call-ID and from another address.
    async def scenario(h: Harness) -> None:
        dialog = h.invite(number="442071234567")
        challenge = await h.uac.response(407)
        offered = next(
            v for v in challenge.headers.get_all("Proxy-Authenticate") if "algorithm=SHA-256," in v
        )
        creds = authorization(offered, "alice", PASSWORD, "INVITE", dialog.uri, "c1")
        extra = (("Proxy-Authorization", creds),)
        first = h.invite(number="442071234567", extra=extra)
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 486)
        assert (await h.uac.response(486)).status == 486
        await h.sink.wait()
        # The original INVITE again: the switch answers it as the call it was.
        h.uac.send(first.invite, h.switch)
        assert (await h.uac.response(486)).status == 486
        # A new Call-ID with the same credentials: a fresh challenge, no call.
        h.invite(number="442071234567", extra=extra)
        replayed = await h.uac.response(407)
        assert all("stale=true" in v for v in replayed.headers.get_all("Proxy-Authenticate"))
        # The same from another address.
        loop = asyncio.get_running_loop()
        _, other = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.2", 0))
        stolen = request(
            "INVITE",
            dialog.uri,
            local_port=other.port,
            call_id="stolen-1@127.0.0.2",
            from_tag="x1",
            extra=extra,
            body=SDP_OFFER,
        )
        other.send(stolen, h.switch)
        elsewhere = await other.response(407)
        assert all("stale=true" in v for v in elsewhere.headers.get_all("Proxy-Authenticate"))
        assert other.transport is not None
        other.transport.close()
        assert h.gw1.nothing(_is("INVITE")) and h.gw2.nothing(_is("INVITE"))
        assert len(h.sink.cdrs) == 1

    run_scenario(scenario)


def test_md5_is_not_offered_to_a_sha256_only_account(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        invite = h.invite(number="442071234567")
        del invite
        # From user is alice in every test request; build bob's challenge via the 407.
        challenge = await h.uac.response(407)
        assert any("MD5" in v for v in challenge.headers.get_all("Proxy-Authenticate"))

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("user", "password", "algorithm"),
    [
        ("alice", "wrong", "SHA-256"),
        ("mallory", PASSWORD, "SHA-256"),
        ("bob", PASSWORD, "MD5"),
    ],
    ids=["wrong-password", "unknown-user", "md5-refused"],
)
def test_digest_failures_get_the_same_403(
    run_scenario: Run, user: str, password: str, algorithm: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite(number="442071234567")
        challenge = await h.uac.response(407)
        value = next(
            v
            for v in challenge.headers.get_all("Proxy-Authenticate")
            if f"algorithm={algorithm}," in v
        )
        creds = authorization(value, user, password, "INVITE", dialog.uri, "c1")
        h.invite(number="442071234567", extra=(("Proxy-Authorization", creds),))
        rejected = await h.uac.response(403)
        assert (rejected.status, rejected.reason) == (403, "Forbidden")
        assert set(rejected.headers.items) - {
            (n, v)
            for n, v in rejected.headers.items
            if n in ("Via", "From", "To", "Call-ID", "CSeq")
        } == {("Content-Length", "0")}
        assert h.gw1.nothing(lambda m: True)

    caplog.set_level("WARNING", logger="tollguard.security")
    run_scenario(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert any(line.startswith("auth failure: ip=127.0.0.1 port=") for line in lines)


def test_unnormalizable_number_gets_484(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite(number="777ab12")
        final = await h.uac.response()
        assert final.status == 484
        (cdr,) = await h.sink.wait()
        assert cdr.hangup_side is HangupSide.SWITCH
        assert cdr.q850_cause == 28
        assert cdr.attempts == ()

    run_scenario(scenario)


def test_no_route_answers_with_the_q850_reason(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite(number="777331234567")  # France: not on the customer's rate card
        final = await h.uac.response()
        assert final.status == 404
        reason = final.headers.get("Reason") or ""
        assert reason.startswith("Q.850;cause=3;text=")
        (cdr,) = await h.sink.wait()
        assert cdr.q850_cause == 3
        assert h.gw1.nothing(lambda m: True)

    run_scenario(scenario)


def test_gateway_at_max_channels_is_skipped(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        old = plan_data((h.gw1.port, h.gw2.port))
        limited = replace(old.gateways[0], max_channels=1)
        await h.source.swap(replace(old, version=2, gateways=(limited, old.gateways[1])))
        first = h.invite()
        invite1, addr1 = await h.gw1.request("INVITE")
        answer(h.gw1, invite1, addr1, 180)
        await h.uac.response(180)
        h.invite()  # gateway 1 is busy with the first call: straight to gateway 2
        invite2, addr2 = await h.gw2.request("INVITE")
        answer(h.gw2, invite2, addr2, 486)
        await h.uac.response(486)
        first.cancel()
        cancel, caddr = await h.gw1.request("CANCEL")
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, invite1, addr1, 487)
        await h.sink.wait(2)

    run_scenario(scenario)


def test_max_duration_ends_both_legs(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, _, _ = await h.connected()
        advance(h, 0.999)
        assert h.gw1.nothing(_is("BYE"))
        advance(h, 0.001)
        bye_b, baddr = await h.gw1.request("BYE")
        h.gw1.send(make_response(bye_b, 200), baddr)
        bye_a, aaddr = await h.uac.request("BYE")
        assert bye_a.call_id == dialog.call_id
        assert bye_a.headers.get_all("Reason") == bye_b.headers.get_all("Reason")
        assert bye_a.headers.get_all("Reason") == (REASON_MAX_DURATION,)
        h.uac.send(make_response(bye_a, 200), aaddr)
        (cdr,) = await h.sink.wait()
        assert cdr.hangup_side is HangupSide.SWITCH
        assert cdr.q850_cause == 16
        assert cdr.duration_ms == 1000

    run_scenario(scenario, customer={"max_call_duration_s": 1}, clock=True)


def test_options_unknown_method_and_register_challenged(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        for method, status in (("OPTIONS", 200), ("FOO", 501), ("REGISTER", 401)):
            h.uac.send(
                request(
                    method,
                    f"sip:127.0.0.1:{h.switch[1]}",
                    local_port=h.uac.port,
                    call_id=f"o-{method}",
                    from_tag="x",
                ),
                h.switch,
            )
            response = await h.uac.response(method=method)
            assert response.status == status
            if method == "OPTIONS":
                assert "INVITE" in (response.headers.get("Allow") or "")

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("method", "to_tag", "status"),
    [
        ("MESSAGE", False, 405),
        ("SUBSCRIBE", False, 405),
        ("NOTIFY", False, 405),
        ("REFER", False, 405),
        ("PUBLISH", False, 405),
        ("FOO", False, 501),
        ("BYE", False, 481),
        ("UPDATE", False, 481),
        ("INFO", False, 481),
        ("MESSAGE", True, 481),
        ("OPTIONS", True, 481),
        ("INVITE", True, 481),
    ],
    ids=str,
)
def test_requests_outside_a_dialog(
    run_scenario: Run, method: str, to_tag: bool, status: int
) -> None:
    """Known methods the switch does not serve get 405 with Allow, unknown ones 501
    (RFC 3261 §8.2.1); requests for a dialog it does not know get 481 (§12.2.2)."""

    async def scenario(h: Harness) -> None:
        uri = f"sip:bob@127.0.0.1:{h.switch[1]}"
        to = f"<{uri}>;tag=unknown" if to_tag else None
        h.uac.send(
            request(
                method, uri, local_port=h.uac.port, call_id=f"ood-{method}", from_tag="x", to=to
            ),
            h.switch,
        )
        response = await h.uac.response(method=method)
        assert response.status == status
        allow = response.headers.get("Allow")
        if status in (405, 501):
            assert allow is not None
            assert "INVITE" in allow
            assert method not in allow.split(", ")
        else:
            assert allow is None

    run_scenario(scenario)


def test_max_forwards_zero_and_loop(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        req = request(
            "INVITE",
            f"sip:777442071234567@127.0.0.1:{h.switch[1]}",
            local_port=h.uac.port,
            call_id="mf0",
            from_tag="x",
        )
        h.uac.send(req.with_headers(req.headers.replace("Max-Forwards", "0")), h.switch)
        assert (await h.uac.response(483)).status == 483

    run_scenario(scenario)


def test_plan_hot_swap_routes_new_calls_on_the_new_plan(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        old = plan_data((h.gw1.port, h.gw2.port))
        # Version 2: gateway 1 disabled; new calls go to gateway 2 only.
        new = replace(
            old, version=2, gateways=(replace(old.gateways[0], enabled=False), old.gateways[1])
        )
        await h.source.swap(new)
        h.invite()
        invite, addr = await h.gw2.request("INVITE")
        answer(h.gw2, invite, addr, 486)
        await h.uac.response(486)
        assert h.gw1.nothing(_is("INVITE"))

    run_scenario(scenario)


def test_graceful_stop_ends_calls_and_flushes_cdrs(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, _, _ = await h.connected()
        h.stop.set()
        bye_b, baddr = await h.gw1.request("BYE")
        h.gw1.send(make_response(bye_b, 200), baddr)
        bye_a, aaddr = await h.uac.request("BYE")
        h.uac.send(make_response(bye_a, 200), aaddr)
        async with asyncio.timeout(5):
            await h.task
        assert [c.call_id for c in h.sink.cdrs] == [dialog.call_id]
        assert h.sink.cdrs[0].hangup_side is HangupSide.SWITCH

    run_scenario(scenario)


def test_new_invites_get_503_while_stopping(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, _, _ = await h.connected()
        h.stop.set()
        await h.gw1.request("BYE")  # not answered: the switch waits for it, then stops
        h.invite()
        assert (await h.uac.response(503)).status == 503
        assert not h.task.done()
        advance(h, 6.5)  # Timer F (64*T1): the BYEs are given up, the switch stops
        async with asyncio.timeout(2):
            await h.task
        del dialog

    run_scenario(scenario, clock=True)


def test_bye_in_the_early_dialog_ends_the_call_like_cancel(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 180)
        ringing = await h.uac.response(180)
        dialog.to = ringing.headers.get("To") or ""
        h.uac.send(dialog.in_dialog("BYE"), h.switch)
        await h.uac.response(200, method="BYE")
        assert (await h.uac.response(487)).status == 487
        cancel, caddr = await h.gw1.request("CANCEL")
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, invite, addr, 487)
        (cdr,) = await h.sink.wait()
        assert cdr.hangup_side is HangupSide.CALLER
        assert (cdr.attempts[0].sip_code, cdr.attempts[0].reason) == (487, "caller hung up")

    run_scenario(scenario)


def test_a_cancelled_attempt_without_a_final_response_is_recorded_after_64_t1(
    run_scenario: Run,
) -> None:
    """RFC 3261 §9.1: a gateway that never answers the INVITE after the switch's CANCEL
    holds the CDR back 64*T1 at most; the attempt is then recorded as it stood."""

    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 180)
        await h.uac.response(180)
        dialog.cancel()
        assert (await h.uac.response(487)).status == 487
        cancel, caddr = await h.gw1.request("CANCEL")
        h.gw1.send(make_response(cancel, 200), caddr)  # ... and no 487
        advance(h, 6.3)
        await asyncio.sleep(0.1)
        assert h.sink.cdrs == []
        advance(h, 0.2)  # the call is forgotten 64*T1 after it ended
        (cdr,) = await h.sink.wait()
        assert cdr.sip_code == 487
        assert (cdr.attempts[0].sip_code, cdr.attempts[0].reason) == (
            0,
            "cancelled, no final response",
        )
        # The CDR says when the call ended for the customer, not when it was written.
        assert cdr.ended_at == cdr.started_at

    run_scenario(scenario, clock=True)


def test_a_setup_timeout_is_the_switch_giving_up(run_scenario: Run) -> None:
    """Every gateway silent: the customer gets 408 and the CDR says the switch ended it."""

    async def scenario(h: Harness) -> None:
        h.invite()
        await h.gw1.request("INVITE")
        advance(h, 1.0)
        await h.gw2.request("INVITE")
        advance(h, 1.0)
        assert (await h.uac.response()).status == 408
        (cdr,) = await h.sink.wait()
        assert (cdr.sip_code, cdr.hangup_side) == (408, HangupSide.SWITCH)
        assert [(a.sip_code, a.reason) for a in cdr.attempts] == [
            (408, "setup timeout"),
            (408, "setup timeout"),
        ]

    run_scenario(scenario, clock=True)


class StreamGateway:
    """A provider gateway listening on TCP, built on the switch's own transports."""

    def __init__(self) -> None:
        self.inbox: list[tuple[Request | Response, tuple[str, int], int]] = []
        self.event = asyncio.Event()
        self.transports = Transports(self._received)

    def _received(self, data: bytes, source: tuple[str, int], transport: str, conn: int) -> None:
        self.inbox.append((parse_message(data), source, conn))
        self.event.set()

    async def request(self, method: str) -> tuple[Request, tuple[str, int], int]:
        async with asyncio.timeout(3):
            while True:
                for index, (message, source, conn) in enumerate(self.inbox):
                    if isinstance(message, Request) and message.method == method:
                        del self.inbox[index]
                        return message, source, conn
                self.event.clear()
                await self.event.wait()


def test_provider_leg_over_tcp(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        gateway = StreamGateway()
        (listener,) = await gateway.transports.start([Listen("tcp", "127.0.0.1", 0)])
        old = plan_data((h.gw1.port, h.gw2.port))
        tcp_gw = replace(old.gateways[0], port=listener.port, transport=SipTransport.TCP)
        await h.source.swap(replace(old, version=2, gateways=(tcp_gw,)))
        dialog = h.invite()
        invite, source, conn = await gateway.request("INVITE")
        assert str(invite.uri).endswith(";transport=tcp")
        assert invite.vias[0].transport.upper() == "TCP"
        ok = make_response(
            invite,
            200,
            to_tag="tcpgw",
            headers=(("Contact", f"<sip:gw@127.0.0.1:{listener.port};transport=tcp>"),),
            body=SDP_ANSWER,
        )
        gateway.transports.send(
            ok.with_headers(ok.headers.append("Content-Type", "application/sdp")).to_bytes(),
            "tcp",
            source,
            conn,
        )
        answered = await h.uac.response(200)
        dialog.ack(answered)
        await gateway.request("ACK")
        h.uac.send(dialog.in_dialog("BYE"), h.switch)
        bye, bsource, bconn = await gateway.request("BYE")
        assert bconn == conn  # the same connection carries the whole dialog
        gateway.transports.send(make_response(bye, 200).to_bytes(), "tcp", bsource, bconn)
        await h.uac.response(200, method="BYE")
        (cdr,) = await h.sink.wait()
        assert cdr.sip_code == 200
        await gateway.transports.close()

    run_scenario(scenario, sip={"listen": ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")})


def test_retransmissions_over_udp(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog = h.invite()
        first, addr = await h.gw1.request("INVITE")
        advance(h, 0.1)  # T1
        again, _ = await h.gw1.request("INVITE")  # Timer A: same transaction, resent
        assert again.vias[0].branch == first.vias[0].branch
        h.uac.send(dialog.invite, h.switch)  # the customer retransmits: 100 again
        await h.uac.response(100)
        answer(h.gw1, first, addr, 200, body=SDP_ANSWER)
        ok = await h.uac.response(200)
        advance(h, 0.1)
        again_ok = await h.uac.response(200)  # no ACK yet: the 2xx is resent
        assert again_ok.to.tag == ok.to.tag
        await h.gw1.request("ACK")  # the switch acknowledged the gateway's 2xx itself
        # The customer never ACKs: after 64*T1 the switch hangs up both legs.
        advance(h, 6.2)
        assert h.gw1.nothing(_is("BYE"))
        advance(h, 0.1)
        bye_b, baddr = await h.gw1.request("BYE")
        assert bye_b.headers.get_all("Reason") == (REASON_TIMER_EXPIRY,)
        h.gw1.send(make_response(bye_b, 200), baddr)
        bye_a, aaddr = await h.uac.request("BYE")
        h.uac.send(make_response(bye_a, 200), aaddr)
        (cdr,) = await h.sink.wait()
        assert cdr.hangup_side is HangupSide.SWITCH
        assert cdr.q850_cause == 102
        # Hung up 64*T1 after the unacknowledged 2xx was first sent.
        assert cdr.duration_ms == 6400

    run_scenario(scenario, clock=True)


def test_malformed_request_gets_400_and_garbage_is_dropped(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        broken = (
            "INVITE sip:1@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{h.uac.port};branch=z9hG4bKm\r\n"
            "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: bad-1\r\n"
            "CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        h.uac.send(b"\x00\x01garbage that is not SIP at all\r\n\r\n", h.switch)
        h.uac.send(broken, h.switch)
        response = await h.uac.response(400, method="BYE")
        assert response.call_id == "bad-1"

    run_scenario(scenario)


def test_graceful_stop_cancels_calls_still_ringing(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 180)
        await h.uac.response(180)
        h.stop.set()
        assert (await h.uac.response(503)).status == 503
        cancel, caddr = await h.gw1.request("CANCEL")
        h.gw1.send(make_response(cancel, 200), caddr)
        answer(h.gw1, invite, addr, 487)
        async with asyncio.timeout(5):
            await h.task
        (cdr,) = h.sink.cdrs
        assert (cdr.sip_code, cdr.hangup_side) == (503, HangupSide.SWITCH)
        assert cdr.attempts[0].reason == "shutdown"

    run_scenario(scenario)


def test_tls_listener_uses_the_data_dir_certificate(run_scenario: Run, tmp_path: Path) -> None:
    cert = write_certificate(tmp_path / "tls")

    async def scenario(h: Harness) -> None:
        tls_line = next(line for line in h.ready if line.startswith("tls:"))
        port = int(tls_line.rsplit(":", 1)[1])
        received = asyncio.Queue[bytes]()
        client = Transports(
            lambda data, *_: received.put_nowait(data), client_ssl=client_context(cafile=cert)
        )
        options = request(
            "OPTIONS",
            f"sip:127.0.0.1:{port};transport=tls",
            local_port=1,
            call_id="t1",
            from_tag="x",
        )
        client.send(options.to_bytes(), "tls", ("127.0.0.1", port))
        async with asyncio.timeout(3):
            reply = parse_message(await received.get())
        assert isinstance(reply, Response)
        assert reply.status == 200
        await client.close()

    run_scenario(scenario, sip={"listen": ("udp:127.0.0.1:0", "tls:127.0.0.1:0")})


# -- session timers (RFC 4028) -------------------------------------------------------------


def _session_expires(message: Request | Response) -> str | None:
    return message.headers.get("Session-Expires")


async def _connected_with_timers(
    h: Harness, customer: tuple[tuple[str, str], ...], gateway: tuple[tuple[str, str], ...]
) -> tuple[Dialog, Response, Request, tuple[str, int], Request]:
    dialog = h.invite(extra=customer)
    invite, addr = await h.gw1.request("INVITE")
    answer(h.gw1, invite, addr, 200, body=SDP_ANSWER, headers=gateway)
    ok = await h.uac.response(200)
    dialog.ack(ok)
    ack, _ = await h.gw1.request("ACK")
    await _processed(h)
    return dialog, ok, invite, addr, ack


async def _processed(h: Harness) -> None:
    """Everything the customer sent so far was handled: an OPTIONS ping came back after it
    (one socket, handled in order), so the manual clock may move."""
    ping = request(
        "OPTIONS",
        f"sip:127.0.0.1:{h.switch[1]}",
        local_port=h.uac.port,
        call_id="ping",
        from_tag="p",
    )
    h.uac.send(ping, h.switch)
    await h.uac.response(200, method="OPTIONS")


def test_session_timers_are_offered_and_negotiated(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        dialog, ok, invite, _, _ = await _connected_with_timers(
            h,
            (("Supported", "timer"), ("Session-Expires", "120")),
            (("Session-Expires", "1800;refresher=uac"), ("Require", "timer")),
        )
        # Towards the gateway: the switch's own offer (sip.session_expires_s).
        assert "timer" in invite.headers.get_all("Supported")
        assert (_session_expires(invite), invite.headers.get("Min-SE")) == ("1800", "90")
        # Towards the customer: its interval, refreshed by itself (it supports timers).
        assert _session_expires(ok) == "120;refresher=uac"
        assert ok.headers.get_all("Require") == ("timer",)
        # A refresh from the customer is relayed, and its 2xx carries the interval.
        h.uac.send(dialog.in_dialog("UPDATE"), h.switch)
        update, uaddr = await h.gw1.request("UPDATE")
        assert _session_expires(update) == "1800;refresher=uac"  # the switch refreshes it
        h.gw1.send(make_response(update, 200), uaddr)
        assert _session_expires(await h.uac.response(200, method="UPDATE")) == "120;refresher=uac"
        await _bye_from_customer(h, dialog)

    run_scenario(scenario, clock=True)


def test_a_vanished_customer_is_hung_up_when_its_session_expires(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await _connected_with_timers(
            h, (("Supported", "timer"), ("Session-Expires", "120;refresher=uac")), ()
        )
        # The customer must refresh within 120 s; the switch waits 120 - min(32, 40) s.
        advance(h, 87.9)
        assert h.gw1.nothing(_is("BYE"))
        advance(h, 0.1)
        bye_b, baddr = await h.gw1.request("BYE")
        bye_a, aaddr = await h.uac.request("BYE")
        assert bye_a.headers.get_all("Reason") == (REASON_SESSION_EXPIRED,)
        assert bye_b.headers.get_all("Reason") == (REASON_SESSION_EXPIRED,)
        h.gw1.send(make_response(bye_b, 200), baddr)
        h.uac.send(make_response(bye_a, 200), aaddr)
        (cdr,) = await h.sink.wait()
        assert (cdr.duration_ms, cdr.hangup_side, cdr.q850_cause) == (88000, HangupSide.SWITCH, 102)

    run_scenario(scenario, clock=True)


def test_the_switch_refreshes_a_customer_without_timer_support(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        # No timer support: the switch is the refresher (sip.session_expires_s), by UPDATE
        # since the customer allows it; the gateway leg has no timer (no Session-Expires).
        dialog, ok, _, _, _ = await _connected_with_timers(
            h, (("Allow", "INVITE, ACK, BYE, CANCEL, UPDATE"),), ()
        )
        assert _session_expires(ok) == "1800;refresher=uas"
        for _ in range(2):
            advance(h, 899.9)
            assert h.uac.nothing(_is("UPDATE"))
            advance(h, 0.1)
            update, uaddr = await h.uac.request("UPDATE")
            assert _session_expires(update) == "1800;refresher=uac"
            h.uac.send(make_response(update, 200), uaddr)
            await _processed(h)
        assert h.gw1.nothing(_is("UPDATE"))
        await _bye_from_customer(h, dialog)
        (cdr,) = await h.sink.wait()
        assert cdr.duration_ms == 1_800_000

    run_scenario(scenario, clock=True)


def test_a_refresh_that_times_out_ends_the_call(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        # The gateway asks the switch (its UAC) to refresh; it allows no UPDATE, so the
        # switch re-INVITEs with the description it last sent on that leg.
        await _connected_with_timers(
            h,
            (("Supported", "timer"), ("Session-Expires", "1800")),
            (("Session-Expires", "600;refresher=uac"), ("Allow", "INVITE, ACK, BYE")),
        )
        advance(h, 300)
        refresh, raddr = await h.gw1.request("INVITE")
        assert _session_expires(refresh) == "600;refresher=uac"
        assert refresh.body == SDP_OFFER
        answer(h.gw1, refresh, raddr, 200, body=SDP_ANSWER, headers=(("Session-Expires", "600"),))
        await h.gw1.request("ACK")
        assert h.uac.nothing(_is("INVITE"))  # the switch's own refresh is not relayed
        # The gateway vanishes: its next refresh is never answered (Timer B, 64*T1).
        advance(h, 300)
        await h.gw1.request("INVITE")
        advance(h, 6.3)
        assert h.uac.nothing(_is("BYE"))
        advance(h, 0.2)
        bye_a, aaddr = await h.uac.request("BYE")
        assert bye_a.headers.get_all("Reason") == (REASON_REFRESH_FAILED,)
        h.uac.send(make_response(bye_a, 200), aaddr)
        (cdr,) = await h.sink.wait()
        assert (cdr.hangup_side, cdr.q850_cause) == (HangupSide.SWITCH, 102)

    run_scenario(scenario, clock=True)


def test_a_refresh_answered_481_ends_the_call(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        await _connected_with_timers(
            h, (), (("Session-Expires", "90;refresher=uac"), ("Allow", "INVITE, ACK, UPDATE"))
        )
        advance(h, 45)
        update, uaddr = await h.gw1.request("UPDATE")
        h.gw1.send(make_response(update, 481), uaddr)
        bye_a, aaddr = await h.uac.request("BYE")
        assert bye_a.headers.get_all("Reason") == (REASON_REFRESH_FAILED,)
        h.uac.send(make_response(bye_a, 200), aaddr)
        await h.sink.wait()

    run_scenario(scenario, clock=True)


def test_too_small_an_interval_gets_422_or_is_raised(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        # RFC 4028 §9: a caller that supports timers learns the minimum from a 422 ...
        h.invite(extra=(("Supported", "timer"), ("Session-Expires", "30")))
        refused = await h.uac.response(422)
        assert refused.headers.get("Min-SE") == "90"
        assert h.gw1.nothing(_is("INVITE"))
        # ... one that does not is raised to it, and the switch refreshes.
        dialog, ok, _, _, _ = await _connected_with_timers(h, (("Session-Expires", "30"),), ())
        assert _session_expires(ok) == "90;refresher=uas"
        assert ok.headers.get("Require") is None
        await _bye_from_customer(h, dialog)

    run_scenario(scenario, clock=True)


def test_a_gateway_422_is_retried_with_its_minimum(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        h.invite()
        invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, invite, addr, 422, headers=(("Min-SE", "3600"),))
        again, addr = await h.gw1.request("INVITE")
        assert (_session_expires(again), again.headers.get("Min-SE")) == ("3600", "3600")
        answer(h.gw1, again, addr, 486)
        assert (await h.uac.response()).status == 486
        (cdr,) = await h.sink.wait()
        assert [(a.gateway_id, a.sip_code) for a in cdr.attempts] == [(1, 422), (1, 486)]

    run_scenario(scenario, clock=True)


def test_a_call_whose_bye_is_never_answered_is_billed_to_the_bye(run_scenario: Run) -> None:
    """The CDR closes when the BYE is sent, whether or not anyone answers it: the
    gateway vanished, and the switch's BYE to it is lost with every retransmission."""

    async def scenario(h: Harness) -> None:
        dialog, _, _ = await h.connected()
        await _processed(h)
        advance(h, 61.0)
        h.uac.send(dialog.in_dialog("BYE"), h.switch)
        await h.uac.response(200, method="BYE")
        await h.gw1.request("BYE")  # never answered
        (cdr,) = await h.sink.wait()
        assert (cdr.duration_ms, cdr.billed_s, cdr.hangup_side) == (61000, 61, HangupSide.CALLER)
        advance(h, 6.5)  # Timer F gives the BYE up; nothing more is written
        await _processed(h)
        assert len(h.sink.cdrs) == 1

    run_scenario(scenario, clock=True)


def test_a_call_keeps_its_tcp_connection_past_the_idle_timeout(run_scenario: Run) -> None:
    # RFC 5626/5923: the connection a dialog lives on stays open while the dialog does;
    # connections that carry nothing are closed once idle. The limits come from the
    # settings (two connections per source here).
    async def scenario(h: Harness) -> None:
        tcp_line = next(line for line in h.ready if line.startswith("tcp:"))
        port = int(tcp_line.rsplit(":", 1)[1])
        customer = StreamGateway()
        uri = f"sip:777442071234567@127.0.0.1:{port};transport=tcp"
        invite = request(
            "INVITE", uri, local_port=1, call_id="tcp-call-1", from_tag="t1", body=SDP_OFFER
        )
        invite = invite.with_headers(
            invite.headers.replace("Via", "SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKtcp1")
        )
        customer.transports.send(invite.to_bytes(), "tcp", ("127.0.0.1", port))
        gw_invite, addr = await h.gw1.request("INVITE")
        answer(h.gw1, gw_invite, addr, 200, body=SDP_ANSWER)
        await h.gw1.request("ACK")

        async def final() -> Response:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    for message, _, _ in customer.inbox:
                        if isinstance(message, Response) and message.status >= 200:
                            return message
                    customer.event.clear()
                    await customer.event.wait()

        ok = await final()
        assert ok.status == 200
        ack = request(
            "ACK", uri, local_port=1, call_id="tcp-call-1", from_tag="t1", to=ok.headers.get("To")
        )
        customer.transports.send(
            ack.with_headers(
                ack.headers.replace("Via", "SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKtcp2")
            ).to_bytes(),
            "tcp",
            ("127.0.0.1", port),
        )
        # A second connection that carries no dialog is closed once idle ...
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        options = request(
            "OPTIONS", f"sip:127.0.0.1:{port}", local_port=1, call_id="idle-1", from_tag="i1"
        )
        writer.write(options.to_bytes())
        async with asyncio.timeout(TIMEOUT):
            assert (await reader.readuntil(b"\r\n")).startswith(b"SIP/2.0 200")
        # ... a third one from the same source is refused meanwhile ...
        extra_reader, extra = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(TIMEOUT):
            with contextlib.suppress(ConnectionResetError):
                assert await extra_reader.read() == b""
        extra.close()
        async with asyncio.timeout(TIMEOUT):
            while await reader.read(65536):
                pass
        writer.close()
        # ... while the call's connection, idle as long, still carries the BYE.
        h.gw1.send(_from_gateway(gw_invite, "BYE", 1, h.gw1.port), addr)
        await h.gw1.response(200, method="BYE")
        bye, source, conn = await customer.request("BYE")
        assert bye.call_id == "tcp-call-1"
        customer.transports.send(make_response(bye, 200).to_bytes(), "tcp", source, conn)
        (cdr,) = await h.sink.wait()
        assert cdr.hangup_side is HangupSide.CALLEE
        await customer.transports.close()

    run_scenario(
        scenario,
        sip={
            "listen": ("udp:127.0.0.1:0", "tcp:127.0.0.1:0"),
            "idle_timeout_s": 0.3,
            "max_connections_per_source": 2,
        },
    )
