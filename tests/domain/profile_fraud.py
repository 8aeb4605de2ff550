"""Micro-benchmark of the shield and fraud decisions a call costs (not collected by pytest).

    .venv/bin/python -m tests.domain.profile_fraud [--calls N]

Prints microseconds of CPU time per operation and for the whole of one call as the switch will make
it: the shield's pre-parse check for each of the customer's datagrams of a digest call
(INVITE, ACK, INVITE with credentials, ACK, BYE), the post-parse check of the three
requests, a transaction opened and closed for each, the authentication gate, then the
fraud engine's admission (customer and account limits, velocity, the shipped
destination list) and release, and the spend fed back. Destinations are cached after
their first classification; the uncached cost is printed apart.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from decimal import Decimal

from tollguard.domain.fraud import DEFAULT_DESTINATION_RULES, Admitted, CallAttempt, FraudEngine
from tollguard.domain.numbers import destination
from tollguard.domain.plan import (
    Account,
    CallLimits,
    Customer,
    FraudPlan,
    FraudPolicy,
    NumberRules,
    VelocityPolicy,
)
from tollguard.domain.shield import Shield, ShieldPolicy
from tollguard.state.memory import MemoryBans, MemoryCounters, MemorySuspensions

CUSTOMER = Customer(id=1, name="c", number_rules=NumberRules(country_code="44"))
ACCOUNT = Account(id=1, customer_id=1, username="bob", ha1_md5="", ha1_sha256="")


def _time(label: str, runs: int, op: Callable[[int], object]) -> float:
    # CPU time of this process: the machine is shared, and wall-clock time would count
    # the other processes' turns.
    start = time.process_time()
    for i in range(runs):
        op(i)
    per = (time.process_time() - start) / runs * 1e6
    print(f"{label:<58} {per:8.2f} µs")
    return per


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    calls = parser.parse_args().calls
    # Bans and blocks log a line each; the timing is of the decisions, not of stderr.
    logging.disable(logging.CRITICAL)

    counters = MemoryCounters()
    bans = MemoryBans()
    shield = Shield(
        ShieldPolicy(source_rate=1e9, source_burst=1e9), bans, counters, MemorySuspensions()
    )
    policy = FraudPolicy(
        limits=CallLimits(
            max_concurrent=10**9,
            calls_per_second=1e9,
            calls_per_hour=10**9,
            calls_per_day=10**9,
            spend_per_hour=Decimal(10**9),
            spend_per_day=Decimal(10**9),
            max_price_per_minute=Decimal(10),
        )
    )
    engine = FraudEngine(
        FraudPlan(
            defaults=DEFAULT_DESTINATION_RULES,
            customers={1: policy},
            accounts={
                1: FraudPolicy(
                    limits=policy.limits,
                    # Thresholds no call reaches: every velocity counter still runs.
                    velocity=VelocityPolicy(
                        destinations_min=10**9, new_countries=10**9, spend_min=Decimal(10**9)
                    ),
                )
            },
        ),
        counters,
        MemorySuspensions(),
    )
    # 10,000 banned addresses and 1,000 banned networks, as after an APIBAN import.
    from tollguard.domain.shield import BanReason, parse_network

    for i in range(10_000):
        shield.ban(parse_network(f"10.{i // 256}.{i % 256}.1"), BanReason.IMPORT, None, 0.0)
    for i in range(1_000):
        shield.ban(
            parse_network(f"172.{16 + i // 256}.{i % 256}.0/24"), BanReason.IMPORT, None, 0.0
        )
    sources = [f"192.0.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    numbers = [f"4420794{i:05d}" for i in range(1000)]
    for n in numbers:
        destination(n)
    now = 1_800_000_000.0

    print(f"{calls} operations each; 10,000 banned addresses and 1,000 banned networks")
    datagram = _time(
        "shield.datagram (known source)",
        calls,
        lambda i: shield.datagram(sources[i % 1000], 900, now + i * 1e-4),
    )
    _time("shield.datagram (banned source)", calls, lambda i: shield.datagram("10.0.5.1", 900, now))
    request = _time(
        "shield.request (user agent, header count)",
        calls,
        lambda i: shield.request(sources[i % 1000], "Linphone/5.2", 12, now),
    )

    def transaction(i: int) -> None:
        shield.open_transaction(sources[i % 1000])
        shield.close_transaction(sources[i % 1000])

    tx = _time("shield.open_transaction + close_transaction", calls, transaction)
    gate = _time(
        "shield.may_authenticate",
        calls,
        lambda i: shield.may_authenticate(sources[i % 1000], "bob", now),
    )

    def admission(i: int) -> None:
        t = now + i * 1e-3
        result = engine.admit(
            CallAttempt(
                CUSTOMER,
                ACCOUNT,
                sources[i % 1000],
                numbers[i % 1000],
                "442079460001",
                price_per_minute=Decimal("0.02"),
            ),
            t,
        )
        assert isinstance(result, Admitted), result
        engine.release(result)
        engine.record_spend(1, 1, Decimal("0.02"), t)

    admit = _time("fraud admit + release + record_spend (cached number)", calls, admission)
    uncached = _time(
        "destination() of a number not seen before",
        min(calls, 2000),
        lambda i: destination(f"4930{i:08d}"),
    )
    per_call = 5 * datagram + 3 * request + 3 * tx + gate + admit
    print(f"{'one digest call: shield + fraud, numbers cached':<58} {per_call:8.2f} µs")
    print(f"{'one digest call to a number never called before':<58} {per_call + uncached:8.2f} µs")


if __name__ == "__main__":
    main()
