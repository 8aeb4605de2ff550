"""A SIPp flood from one address while a customer calls from another, through serve.

The switch runs with the shield's shipped defaults (30 requests a second per address,
a burst of 150, a global cap of 2,000 a second). The legitimate caller is a **digest**
customer on 127.0.0.3: no customer IP list and no gateway covers that address, so
``shield.trust_acl`` does not allow-list it and it passes the same per-source checks as
the flooder. Each of its calls is INVITE, 407, ACK, INVITE with credentials, ACK, BYE:
five requests, so 5 calls a second stay under the per-source rate.

The flooder on 127.0.0.2 sends INVITEs as fast as SIPp is asked to, for a few seconds,
with an ordinary phone's User-Agent: the shield must stop it by its rate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.bench.calls import process_tree_cpu
from tollguard.bench.sippctl import LOOPBACK, Sipp, free_udp_ports

from .harness import ALICE, STRANGER_HOST, TRUNK_HOST, Switch, list_bans, number, rate
from .switches import SCENARIOS, card, own_switch, provider

pytestmark = pytest.mark.integration

CALLER_HOST = TRUNK_HOST  # 127.0.0.3, here on no IP list
FLOODER_HOST = STRANGER_HOST  # 127.0.0.2
LEGIT_CALLS = 100
LEGIT_RATE = 5.0
FLOOD_RATE = 5000
FLOOD_S = 4


def flood_plan(ports: Mapping[str, int]) -> dict[str, Any]:
    return {
        "rate_cards": [
            card("sell", "sell", [rate("44", Decimal("0.6000"))]),
            card("cost", "cost", [rate("44", Decimal("0.3000"))]),
        ],
        "providers": [provider("alpha", ports["alpha"], "cost")],
        "customers": [
            {
                "name": "retail",
                "sell_card": "sell",
                "credit": {"mode": "postpaid", "credit_limit": "1000000"},
                "numbering": {"country_code": "44"},
                "accounts": [{"username": ALICE[0], "password": ALICE[1], "allow_md5": True}],
            }
        ],
    }


@pytest.fixture(scope="module")
def flood_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switch]:
    root = tmp_path_factory.mktemp("shield-flood")
    with own_switch(root, {"alpha": "uas_answer"}, flood_plan) as switch:
        yield switch


def bans(switch: Switch) -> list[dict[str, Any]]:
    """The active bans, as ``tollguard bans list --json`` lists them."""
    return list_bans(switch.server)


def wait_for_ban(switch: Switch, address: str, timeout_s: float = 15) -> dict[str, Any]:
    """The ban of ``address`` once the switch's sync thread has stored it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ban in bans(switch):
            if ban["network"] in {address, f"{address}/32"}:
                return ban
        time.sleep(0.1)
    raise AssertionError(f"{address} never appeared in tollguard bans list: {bans(switch)}")


def test_a_flood_is_banned_and_legitimate_calls_go_on(
    flood_switch: Switch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    switch = flood_switch
    (legit_port,) = free_udp_ports(1, host=CALLER_HOST)
    (flood_port,) = free_udp_ports(1, host=FLOODER_HOST)
    legit = Sipp(
        "uac_auth", workdir=tmp_path, name="legit", local_host=CALLER_HOST,
        local_port=legit_port, remote=(LOOPBACK, switch.port), service=number("4410"),
        auth=ALICE, keys={"caller": ALICE[0]}, calls=LEGIT_CALLS, rate=LEGIT_RATE,
        pause_ms=500, recv_timeout_ms=10_000,
    )  # fmt: skip
    flood = Sipp(
        SCENARIOS / "uac_flood.xml", workdir=tmp_path, name="flood", local_host=FLOODER_HOST,
        local_port=flood_port, remote=(LOOPBACK, switch.port), service=number("4410"),
        calls=FLOOD_RATE * FLOOD_S, rate=FLOOD_RATE, limit=FLOOD_RATE * FLOOD_S,
        log_codes=False,
    )  # fmt: skip
    try:
        legit.start()
        time.sleep(2)  # the customer is calling when the flood starts
        cpu_before = process_tree_cpu(switch.server.pid)
        flood.start()
        flooded = flood.wait(FLOOD_S * 5 + 30)
        cpu = process_tree_cpu(switch.server.pid).since(cpu_before)
        called = legit.wait(LEGIT_CALLS / LEGIT_RATE + 60)
    finally:
        legit.kill()
        flood.kill()

    assert flooded.stats is not None, flooded.errors
    assert called.stats is not None, called.errors
    sent, elapsed = flooded.stats.created, max(flooded.stats.elapsed_s, 1e-3)
    with capsys.disabled():
        print(
            f"\nshield flood: {sent} INVITEs from {FLOODER_HOST} in {elapsed:.2f} s "
            f"({sent / elapsed:.0f}/s), {flooded.stats.dead_call_msgs} answers to it; "
            f"switch CPU during the flood {cpu.total:.2f} s "
            f"(user {cpu.user:.2f}, system {cpu.system:.2f}, "
            f"{100 * cpu.total / elapsed:.0f}% of one core); legitimate calls "
            f"{called.stats.successful}/{LEGIT_CALLS} from {CALLER_HOST}"
        )
    # Thousands of requests a second really were sent.
    assert sent == FLOOD_RATE * FLOOD_S, flooded.errors
    assert sent / elapsed >= 1000, (sent, elapsed)
    # The customer hardly noticed.
    assert called.stats.created == LEGIT_CALLS, called.errors
    assert called.stats.successful >= 0.99 * LEGIT_CALLS, called.errors

    ban = wait_for_ban(switch, FLOODER_HOST)
    assert ban["reason"] == "flood", ban
    assert ban["mode"] == "drop", ban
    assert not [b for b in bans(switch) if b["network"].startswith(CALLER_HOST)]
    # The log says why, in the line fail2ban reads.
    log = switch.server.log()
    assert f"sip flood: ip={FLOODER_HOST}" in log, log[-3000:]
