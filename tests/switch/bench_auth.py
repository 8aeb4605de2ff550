"""Micro-benchmark of digest authentication and id generation (run by hand, not collected).

    .venv/bin/python -m tests.switch.bench_auth [--answers N] [--repeat R]

Prints microseconds per call of ``Authenticator.authenticate`` for a challenge (no
credentials), a right answer (each on its own fresh nonce, as SIPp's ``uac_auth``
sends them), a wrong password and an unknown user; and nanoseconds per Call-ID, tag
and branch of ``IdFactory``. Times are the thread's CPU time (a shared machine
stretches wall-clock time), each figure the best of R runs. Answers are computed
before the clock starts.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence

from tests.switch.conftest import PASSWORD, REALM, plan_data
from tollguard.domain.routing import Plan, build_plan
from tollguard.sip.digest import NonceManager, authorization
from tollguard.switch.auth import Authenticated, Authenticator, Challenge, Rejected
from tollguard.switch.wire import IdFactory

URI = "sip:442071234567@127.0.0.1"
SOURCE = ("192.0.2.7", 5060)


def _authenticate(
    authenticator: Authenticator, plan: Plan, credentials: tuple[str, ...], now: float
) -> object:
    return authenticator.authenticate(
        plan,
        method="INVITE",
        request_uri=URI,
        from_user="alice",
        called="442071234567",
        credentials=credentials,
        source=SOURCE,
        transport="udp",
        now=now,
    )


def _answers(
    authenticator: Authenticator, plan: Plan, count: int, user: str, password: str
) -> list[tuple[str, ...]]:
    answers = []
    for index in range(count):
        challenge = _authenticate(authenticator, plan, (), 1000.0)
        assert isinstance(challenge, Challenge)
        value = authorization(challenge.values[0], user, password, "INVITE", URI, f"c{index}")
        answers.append((value,))
    return answers


def _best_us(run: Callable[[], int], repeat: int) -> float:
    """Best microseconds per item over ``repeat`` runs of ``run`` (returns items done)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time_ns()
        items = run()
        best = min(best, (time.thread_time_ns() - start) / items / 1000)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    # Refusals are logged in the switch too, but the log's cost is not the auth's.
    logging.getLogger("tollguard.security").setLevel(logging.CRITICAL)
    plan = build_plan(plan_data((1, 2)))
    count = args.answers

    def run_with(user: str, password: str, expected: type) -> Callable[[], int]:
        def run() -> int:
            authenticator = Authenticator(REALM, NonceManager(b"k" * 32, 300), ("SHA-256",))
            answers = _answers(authenticator, plan, count, user, password)
            start = time.thread_time_ns()
            for answer in answers:
                result = _authenticate(authenticator, plan, answer, 1001.0)
            elapsed = time.thread_time_ns() - start
            assert isinstance(result, expected), result
            run.elapsed = elapsed  # type: ignore[attr-defined]
            return count

        return run

    def timed(run: Callable[[], int]) -> float:
        best = float("inf")
        for _ in range(args.repeat):
            items = run()
            best = min(best, run.elapsed / items / 1000)  # type: ignore[attr-defined]
        return best

    authenticator = Authenticator(REALM, NonceManager(b"k" * 32, 300), ("SHA-256",))

    def challenges() -> int:
        for _ in range(count):
            _authenticate(authenticator, plan, (), 1000.0)
        return count

    print(f"challenge (407)        {_best_us(challenges, args.repeat):7.2f} us")
    print(f"right answer           {timed(run_with('alice', PASSWORD, Authenticated)):7.2f} us")
    print(f"wrong password (403)   {timed(run_with('alice', 'wrong', Rejected)):7.2f} us")
    print(f"unknown user (403)     {timed(run_with('mallory', PASSWORD, Rejected)):7.2f} us")
    ids = IdFactory()
    for name in ("call_id", "tag", "branch"):
        make = getattr(ids, name)

        def many(make: Callable[[], str] = make) -> int:
            for _ in range(100_000):
                make()
            return 100_000

        print(f"IdFactory.{name:<12} {_best_us(many, args.repeat) * 1000:7.0f} ns")


if __name__ == "__main__":
    main()
