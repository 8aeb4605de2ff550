"""Calls through a real ``tollguard serve``, each CDR checked against what SIPp did.

See ``harness.py`` for the routes and gateways. For every call the test knows the
SIPp caller's final code (its ``final <Call-ID> <code>`` log lines), the pause, and the
plan's rates, and checks the CDR with the same Call-ID: code, hangup side, answering
provider and gateway, every gateway attempt, duration, billed seconds and amounts.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.bench.calls import TollguardServer
from tollguard.bench.sippctl import LOOPBACK, Sipp, SippResult, free_udp_ports

from .harness import (
    ALICE,
    HANGUP_AFTER_MS,
    PROVIDERS,
    SELL_CONNECT_FEE,
    SELL_PER_MINUTE,
    SETUP_TIMEOUT_S,
    STRANGER_HOST,
    TRUNK_HOST,
    USD_HOST,
    Switch,
    build_plan,
    call_charges,
    number,
    security_events,
)

pytestmark = pytest.mark.integration

CENT = Decimal("0.0001")
ANY_CANCELLED = frozenset({0, 487})  # an attempt cancelled before answer


@dataclass(frozen=True)
class Expect:
    code: int
    hangup_side: str
    attempts: tuple[tuple[str, frozenset[int]], ...]  # (provider, acceptable codes)
    customer: str = "trunk"
    held_ms: int = 0  # how long the call was up, when answered


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_cdrs(
    switch: Switch, tag: str, result: SippResult, expect: Expect, calls: int = 1
) -> list[dict[str, Any]]:
    assert result.stats is not None, result.errors
    assert result.stats.created == calls, result.errors
    cdrs = switch.cdrs(tag, calls)
    assert len(cdrs) == calls, f"{len(cdrs)} CDRs for {calls} calls: {cdrs}"
    assert len({c["call_id"] for c in cdrs}) == calls, "one CDR per call"
    for cdr in cdrs:
        check_cdr(switch, cdr, result, expect)
    return cdrs


def check_cdr(switch: Switch, cdr: dict[str, Any], result: SippResult, expect: Expect) -> None:
    call_id = cdr["call_id"]
    # The code the caller saw, as SIPp logged it, is the code in the CDR.
    assert result.final_codes.get(call_id) == expect.code, (call_id, result.final_codes)
    assert cdr["sip_code"] == expect.code, cdr
    assert cdr["hangup_side"] == expect.hangup_side, cdr
    assert cdr["customer_id"] == switch.customer_ids[expect.customer], cdr
    # Each amount carries its own currency; routing keeps the two the same.
    sell_currency = "USD" if expect.customer == "yankee" else "EUR"
    assert cdr["sell_currency"] == sell_currency, cdr
    assert cdr["cost_currency"] == PROVIDERS[expect.attempts[-1][0]].currency, cdr
    assert cdr["customer"] == expect.customer, cdr

    attempts = cdr["attempts"]
    assert len(attempts) == len(expect.attempts), attempts
    for attempt, (provider, codes) in zip(attempts, expect.attempts, strict=True):
        assert attempt["provider_id"] == switch.provider_ids[provider], (attempt, provider)
        assert attempt["gateway_id"] == switch.gateway_ids[f"{provider}-gw"], attempt
        assert attempt["sip_code"] in codes, (attempt, provider, codes)
    last_provider = expect.attempts[-1][0]
    assert cdr["provider_id"] == switch.provider_ids[last_provider], cdr
    assert cdr["gateway_id"] == switch.gateway_ids[f"{last_provider}-gw"], cdr

    sell, cost = _decimal(cdr["sell_amount"]), _decimal(cdr["cost_amount"])
    if expect.code != 200:
        assert cdr["answered_at"] is None, cdr
        assert cdr["duration_ms"] == 0, cdr
        assert cdr["billed_s"] == 0, cdr
        assert sell == 0, cdr
        assert cost == 0, cdr
        return

    assert cdr["answered_at"] is not None, cdr
    duration_ms = cdr["duration_ms"]
    # The call is up from the 200 to the BYE: the SIPp pause plus loopback latency.
    assert expect.held_ms - 50 <= duration_ms <= expect.held_ms + 1500, cdr
    # 1-second increments: every started second is billed.
    billed_s = math.ceil(duration_ms / 1000)
    assert cdr["billed_s"] == billed_s, cdr
    cost_per_minute = PROVIDERS[last_provider].cost_per_minute
    expected_sell = (SELL_CONNECT_FEE + SELL_PER_MINUTE * billed_s / 60).quantize(CENT)
    expected_cost = (cost_per_minute * billed_s / 60).quantize(CENT)
    assert sell == expected_sell, cdr
    assert cost == expected_cost, cdr
    assert _decimal(cdr["margin"]) == expected_sell - expected_cost, cdr
    assert _decimal(cdr["sell_rate"]) == SELL_PER_MINUTE, cdr
    assert _decimal(cdr["cost_rate"]) == cost_per_minute, cdr
    assert cdr["callee"] == number(PROVIDERS[last_provider].prefix).removeprefix("00"), cdr


OK = frozenset({200})


def test_basic_call(switch: Switch) -> None:
    tag, result = switch.call("uac_basic", number("4410"), calls=3, pause_ms=1000)
    assert result.ok, result.errors
    check_cdrs(
        switch,
        tag,
        result,
        Expect(200, "caller", (("alpha", OK),), held_ms=1000),
        calls=3,
    )


def test_failover_after_503(switch: Switch) -> None:
    tag, result = switch.call("uac_basic", number("4420"), pause_ms=500)
    assert result.ok, result.errors
    check_cdrs(
        switch,
        tag,
        result,
        Expect(200, "caller", (("reject503", frozenset({503})), ("beta", OK)), held_ms=500),
    )


def test_busy_is_final(switch: Switch) -> None:
    tag, result = switch.call("uac_expect_code", number("4430"), keys={"expected": "486"})
    assert result.ok, result.errors
    check_cdrs(switch, tag, result, Expect(486, "callee", (("busy", frozenset({486})),)))


def test_setup_timeout_moves_to_next_gateway(switch: Switch) -> None:
    tag, result = switch.call("uac_basic", number("4440"), pause_ms=500)
    assert result.ok, result.errors
    (cdr,) = check_cdrs(
        switch,
        tag,
        result,
        Expect(200, "caller", (("silent", frozenset({408})), ("delta", OK)), held_ms=500),
    )
    setup = _time(cdr["answered_at"]) - _time(cdr["started_at"])
    assert setup.total_seconds() >= SETUP_TIMEOUT_S * 0.9, cdr


def test_cancel_before_answer(switch: Switch) -> None:
    tag, result = switch.call("uac_cancel", number("4450"), pause_ms=500)
    assert result.ok, result.errors
    check_cdrs(switch, tag, result, Expect(487, "caller", (("ringer", ANY_CANCELLED),)))


@pytest.mark.parametrize(
    ("scenario", "prefix", "pause_ms", "side", "provider", "held_ms"),
    [
        ("uac_basic", "4410", 700, "caller", "alpha", 700),
        ("uac_callee_hangup", "4460", 0, "callee", "hanger", HANGUP_AFTER_MS),
    ],
    ids=["caller-hangs-up", "callee-hangs-up"],
)
def test_bye_from_either_side(
    switch: Switch,
    scenario: str,
    prefix: str,
    pause_ms: int,
    side: str,
    provider: str,
    held_ms: int,
) -> None:
    tag, result = switch.call(scenario, number(prefix), pause_ms=pause_ms)
    assert result.ok, result.errors
    check_cdrs(switch, tag, result, Expect(200, side, ((provider, OK),), held_ms=held_ms))


def test_a_vanished_caller_is_ended_by_its_session_timer(switch: Switch) -> None:
    """RFC 4028: the caller asks for a 4 s session, refreshes nothing and is gone; the
    switch ends the call 4 - 4/3 s after the answer, on both legs, and bills that."""
    tag, result = switch.call(
        "uac_session_timer", number("4410"), keys={"interval": "4"}, timeout_s=30
    )
    assert result.ok, result.errors
    (cdr,) = switch.cdrs(tag, 1)
    assert result.final_codes.get(cdr["call_id"]) == 200
    assert (cdr["sip_code"], cdr["hangup_side"], cdr["q850_cause"]) == (200, "switch", 102), cdr
    assert 2600 <= cdr["duration_ms"] <= 3500, cdr
    assert cdr["billed_s"] == math.ceil(cdr["duration_ms"] / 1000), cdr


def test_digest_md5_customer(switch: Switch) -> None:
    tag, result = switch.call(
        "uac_auth", number("4410"), host=LOOPBACK, auth=ALICE, keys={"caller": ALICE[0]},
        pause_ms=500,
    )  # fmt: skip
    assert result.ok, result.errors
    (cdr,) = check_cdrs(
        switch, tag, result, Expect(200, "caller", (("alpha", OK),), "retail", held_ms=500)
    )
    assert cdr["account_id"] is not None, cdr
    assert cdr["caller"] == ALICE[0], cdr


def test_wrong_password_and_unknown_source_are_rejected_alike(switch: Switch) -> None:
    wrong = switch.call(
        "uac_auth_expect_code", number("4410"), host=LOOPBACK,
        auth=(ALICE[0], "not-the-password"), keys={"caller": ALICE[0], "expected": "403"},
    )  # fmt: skip
    stranger = switch.call(
        "uac_auth_expect_code", number("4410"), host=STRANGER_HOST,
        auth=("mallory", "guess"), keys={"caller": "mallory", "expected": "403"},
    )  # fmt: skip
    codes = []
    for tag, result in (wrong, stranger):
        assert result.stats is not None and result.stats.created == 1, result.errors
        (code,) = result.final_codes.values()
        codes.append(code)
        # Whatever the switch wrote down, no gateway was tried.
        for cdr in switch.cdrs(tag, 0, timeout_s=2):
            assert cdr["attempts"] == [], cdr
            assert _decimal(cdr["sell_amount"]) == 0, cdr
    # The same answer either way: a caller cannot tell which check failed.
    assert codes[0] == codes[1], codes
    assert codes[0] in {401, 403, 407}, codes
    # The switch's security log lines are stored for the dashboard, written by a thread
    # of their own (the call path never waits for the database).
    deadline = time.monotonic() + 15
    users: set[str] = set()
    while time.monotonic() < deadline and not {ALICE[0], "mallory"} <= users:
        events = security_events(switch.server, "auth failure")
        users = {e["user"] for e in events if e["address"] in {LOOPBACK, STRANGER_HOST}}
        time.sleep(0.1)
    assert {ALICE[0], "mallory"} <= users, users


def test_calls_are_routed_only_within_the_sell_currency(switch: Switch) -> None:
    # For 4470 "dollar" costs 0.06 and "epsilon" 0.24, but dollar's card is in USD: an
    # EUR customer's call goes to epsilon only, never to the cheaper dollar.
    tag, result = switch.call("uac_basic", number("4470"), pause_ms=500)
    assert result.ok, result.errors
    check_cdrs(switch, tag, result, Expect(200, "caller", (("epsilon", OK),), held_ms=500))

    # yankee sells in USD: dollar only, and every amount of its CDR is in dollars.
    tag, result = switch.call("uac_basic", number("4470"), host=USD_HOST, pause_ms=500)
    assert result.ok, result.errors
    (cdr,) = check_cdrs(
        switch, tag, result, Expect(200, "caller", (("dollar", OK),), "yankee", held_ms=500)
    )
    assert (cdr["sell_currency"], cdr["cost_currency"]) == ("USD", "USD"), cdr
    # Credit control settled the call in the sell card's dollars, and the ledger of a
    # customer paying in dollars took that charge as it is.
    assert Decimal(cdr["sell_amount"]) > 0
    (charge,) = call_charges(switch.server, tag)
    assert (Decimal(charge["amount"]), charge["currency"]) == (
        -Decimal(cdr["sell_amount"]),
        "USD",
    ), charge

    # Only providers costing EUR cover 4410: yankee's call is refused before any gateway.
    tag, result = switch.call(
        "uac_expect_code", number("4410"), host=USD_HOST, keys={"expected": "503"}
    )
    assert result.stats is not None and result.stats.created == 1, result.errors
    assert list(result.final_codes.values()) == [503], result.final_codes
    (refused,) = switch.cdrs(tag, 1)
    assert refused["customer"] == "yankee", refused
    assert refused["attempts"] == [] and refused["provider_id"] is None, refused
    assert refused["sell_currency"] == "USD" and refused["cost_currency"] == "", refused


def test_hundred_concurrent_calls(switch: Switch) -> None:
    # 100 calls started at 100 a second, each held 2 s: they all overlap.
    tag, result = switch.call(
        "uac_basic", number("4410"), calls=100, rate=100, limit=100, pause_ms=2000, timeout_s=60
    )
    assert result.ok, result.errors
    cdrs = check_cdrs(
        switch, tag, result, Expect(200, "caller", (("alpha", OK),), held_ms=2000), calls=100
    )
    starts = sorted(_time(c["started_at"]) for c in cdrs)
    ends = sorted(_time(c["ended_at"]) for c in cdrs)
    assert starts[-1] < ends[0], "the last call started before the first one ended"


def test_sigterm_ends_calls_and_flushes_every_cdr(switch: Switch, tmp_path: Path) -> None:
    # A second switch of its own, sharing the session's gateways, stopped mid-call.
    (port,) = free_udp_ports(1)
    server = TollguardServer(tmp_path / "data", sip_port=port)
    caller: Sipp | None = None
    try:
        server.init()
        server.load(build_plan({name: gw.local_port for name, gw in switch.gateways.items()}))
        server.start()
        (caller_port,) = free_udp_ports(1, host=TRUNK_HOST)
        caller = Sipp(
            "uac_basic", workdir=tmp_path, local_host=TRUNK_HOST, local_port=caller_port,
            remote=(LOOPBACK, port), service=number("4410"), calls=10, rate=20,
            pause_ms=30_000, recv_timeout_ms=10_000, call_id="%u-sigterm@%s",
        ).start()  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            stats = caller.result().stats
            if stats is not None and stats.created == 10:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # the last call answered and into its 30 s pause
        assert server.stop() == 0, server.log()[-2000:]
        cdrs = [c for c in server.cdrs() if "-sigterm@" in c["call_id"]]
    finally:
        server.stop()
        if caller is not None:
            caller.kill()
    assert len(cdrs) == 10, cdrs
    for cdr in cdrs:
        assert cdr["sip_code"] == 200, cdr
        assert cdr["hangup_side"] == "switch", cdr
        assert cdr["answered_at"] is not None, cdr
        assert 0 < cdr["duration_ms"] < 30_000, cdr
        assert cdr["billed_s"] == math.ceil(cdr["duration_ms"] / 1000), cdr


def _status_when(path: Path, ready: Callable[[dict[str, Any]], bool], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            seen = json.loads(path.read_text())
            if ready(seen):
                return seen
        time.sleep(0.1)
    raise AssertionError(f"switch status never matched; last seen {seen}")


def test_the_switch_publishes_its_live_state(switch: Switch) -> None:
    # What the dashboard reads: rewritten every second by the running switch.
    path = switch.server.data_dir / "run" / "switch-status.json"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            switch.call, "uac_basic", number("4410"), calls=5, rate=50, limit=5, pause_ms=4000
        )
        busy = _status_when(path, lambda status: status["active_calls"] >= 5, 10)
        _, result = running.result(timeout=60)
    assert result.ok, result.errors
    assert busy["pid"] == switch.server.pid
    idle = _status_when(
        path,
        lambda status: status["active_calls"] == 0 and status["updated_at"] > busy["updated_at"],
        10,
    )
    assert idle["calls_total"] >= busy["calls_total"] >= 5
