"""Unit tests of the switch's parts: authentication, CDR writer, plan loader, Q.850 map."""

from __future__ import annotations

import asyncio
import gc
import importlib
import itertools
import json
import logging
import operator
import random
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollguard.domain.cdr import Cdr, HangupSide
from tollguard.domain.routing import build_plan
from tollguard.sip import Request, make_response, parse_message
from tollguard.sip.digest import NonceManager, authorization
from tollguard.sip.errors import LocalProtocolError
from tollguard.switch import server, wire
from tollguard.switch.auth import Authenticated, Authenticator, Challenge, Rejected
from tollguard.switch.b2bua import B2bua
from tollguard.switch.cdr_writer import CdrWriter
from tollguard.switch.loader import PlanLoader
from tollguard.switch.q850 import q850_cause
from tollguard.switch.status import StatusPublisher, SwitchCounters
from tollguard.switch.timers import HORIZON_S, TimerWheel
from tollguard.switch.wire import IdFactory, uri_of

from .clock import ManualClock
from .conftest import PASSWORD, REALM, make_settings, plan_data

URI = "sip:442071234567@127.0.0.1"
NOW = 1000.0


def _auth(plan_ports: tuple[int, int] = (1, 2)) -> tuple[Authenticator, object]:
    # A mixed deployment: MD5 offered after SHA-256 (alice allows it, bob does not).
    authenticator = Authenticator(REALM, NonceManager(b"k" * 32, 300), ("SHA-256", "MD5"))
    return authenticator, build_plan(plan_data(plan_ports))


def _call(authenticator: Authenticator, plan: object, credentials: tuple[str, ...], **kw: object):  # type: ignore[no-untyped-def]
    args = {
        "method": "INVITE",
        "request_uri": URI,
        "from_user": "alice",
        "called": "442071234567",
        "credentials": credentials,
        "source": ("192.0.2.7", 5060),
        "transport": "udp",
        "now": NOW,
    }
    args.update(kw)
    return authenticator.authenticate(plan, **args)  # type: ignore[arg-type]


def _answer(challenge: Challenge, algorithm: str, user: str, password: str) -> str:
    value = next(v for v in challenge.values if f"algorithm={algorithm}," in v)
    return authorization(value, user, password, "INVITE", URI, "cn")


def test_acl_match_strips_the_tech_prefix() -> None:
    authenticator, plan = _auth()
    result = _call(authenticator, plan, (), source=("127.0.0.1", 5060), called="777442071234567")
    assert isinstance(result, Authenticated)
    assert result.number == "442071234567"
    assert result.account is None


@pytest.mark.parametrize(
    "from_user", ["alice", "bob", "nobody"], ids=["md5-allowed", "md5-refused", "unknown"]
)
def test_challenge_is_the_same_whoever_calls(from_user: str) -> None:
    # Offering fewer algorithms to some accounts would tell a scanner they exist.
    authenticator, plan = _auth()
    result = _call(authenticator, plan, (), from_user=from_user)
    assert isinstance(result, Challenge)
    offered = [v.split("algorithm=")[1].split(",")[0] for v in result.values]
    assert offered == ["SHA-256", "MD5"]


def test_challenge_order_follows_the_setting() -> None:
    _, plan = _auth()
    authenticator = Authenticator(REALM, NonceManager(b"k" * 32, 300), ("MD5", "SHA-256"))
    result = _call(authenticator, plan, ())
    assert isinstance(result, Challenge)
    assert [v.split("algorithm=")[1].split(",")[0] for v in result.values] == ["MD5", "SHA-256"]


def test_md5_answer_refused_for_an_account_without_md5() -> None:
    authenticator, plan = _auth()
    challenge = _call(authenticator, plan, ())
    assert isinstance(challenge, Challenge)
    result = _call(authenticator, plan, (_answer(challenge, "MD5", "bob", PASSWORD),))
    assert result == Rejected(403, "Forbidden")


def test_stale_nonce_gets_a_new_challenge() -> None:
    authenticator, plan = _auth()
    challenge = _call(authenticator, plan, ())
    assert isinstance(challenge, Challenge)
    creds = _answer(challenge, "SHA-256", "alice", PASSWORD)
    result = _call(authenticator, plan, (creds,), now=NOW + 301)
    assert isinstance(result, Challenge)
    assert all("stale=true" in v for v in result.values)


def test_failures_are_identical_and_logged_for_fail2ban(caplog: pytest.LogCaptureFixture) -> None:
    authenticator, plan = _auth()
    challenge = _call(authenticator, plan, ())
    assert isinstance(challenge, Challenge)
    caplog.set_level(logging.WARNING, logger="tollguard.security")
    wrong = _call(authenticator, plan, (_answer(challenge, "MD5", "alice", "nope"),))
    unknown = _call(authenticator, plan, (_answer(challenge, "MD5", "eve\nx", PASSWORD),))
    garbage = _call(authenticator, plan, ("Basic Zm9v",))
    other_uri = _call(
        authenticator, plan, (_answer(challenge, "MD5", "alice", PASSWORD),), request_uri="sip:1@x"
    )
    assert wrong == unknown == garbage == other_uri == Rejected(403, "Forbidden")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert all(line.startswith("auth failure: ip=192.0.2.7 port=5060 ") for line in lines)
    assert all("\n" not in line for line in lines)


def _cdr(n: int) -> Cdr:
    now = datetime.now(UTC)
    return Cdr(
        call_id=f"c{n}",
        started_at=now,
        ended_at=now,
        answered_at=None,
        duration_ms=0,
        billed_s=0,
        customer_id=1,
        account_id=None,
        source_ip="127.0.0.1",
        source_port=5060,
        caller="a",
        callee_raw="1",
        callee="1",
        destination="",
        sip_code=486,
        sip_reason="Busy Here",
        q850_cause=17,
        hangup_side=HangupSide.CALLEE,
    )


class FlakySink:
    def __init__(self, failures: int) -> None:
        self.batches: list[list[Cdr]] = []
        self.failures = failures
        self.event = threading.Event()

    def write_batch(self, cdrs: list[Cdr]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        self.batches.append(list(cdrs))
        self.event.set()


def test_cdr_writer_batches_and_flushes_on_close() -> None:
    sink = FlakySink(0)
    writer = CdrWriter(sink, batch_size=3, flush_interval_s=60)
    for n in range(7):
        writer.submit(_cdr(n))
    assert sink.event.wait(3)
    writer.close()
    assert [len(b) for b in sink.batches][:2] == [3, 3]
    assert [c.call_id for b in sink.batches for c in b] == [f"c{n}" for n in range(7)]
    assert writer.written == 7


def test_cdr_writer_keeps_cdrs_when_the_sink_fails(caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakySink(2)
    writer = CdrWriter(sink, batch_size=10, flush_interval_s=60)
    writer.submit(_cdr(1))
    writer.submit(_cdr(2))
    writer.close()
    assert [c.call_id for b in sink.batches for c in b] == ["c1", "c2"]
    assert "will retry" in caplog.text


class CountingSource:
    def __init__(self) -> None:
        self.version = 1
        self.fail = False

    def current_version(self) -> int:
        return self.version

    def load(self):  # type: ignore[no-untyped-def]
        if self.fail:
            raise RuntimeError("database gone")
        return plan_data((1, 2), version=self.version)


def test_loader_swaps_on_version_change_and_survives_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        source = CountingSource()
        loader = PlanLoader(source)
        await loader.load()
        first = loader.plan
        assert await loader.poll_once() is False
        source.version = 2
        assert await loader.poll_once() is True
        assert loader.plan is not first
        assert loader.version == 2
        source.version, source.fail = 3, True
        assert await loader.poll_once() is False
        assert loader.version == 2
        stop = asyncio.Event()
        stop.set()
        await loader.run(stop)

    asyncio.run(main())
    assert "keeping version 2" in caplog.text


@pytest.mark.parametrize(
    ("status", "cause"),
    [(200, 16), (404, 1), (486, 17), (487, 16), (503, 41), (502, 38), (599, 41), (499, 31)],
    ids=["ok", "not-found", "busy", "cancelled", "unavailable", "bad-gateway", "5xx", "4xx"],
)
def test_q850_mapping(status: int, cause: int) -> None:
    assert q850_cause(status) == cause


@given(st.integers(min_value=200, max_value=699))
def test_every_final_code_maps_to_a_valid_cause(status: int) -> None:
    cause = q850_cause(status)
    assert 1 <= cause <= 127
    if 200 <= status < 300:
        assert cause == 16


@pytest.mark.parametrize(
    ("value", "uri"),
    [
        (
            '"Bob" <sip:bob@192.0.2.1:5060;transport=tcp>;expires=60',
            "sip:bob@192.0.2.1:5060;transport=tcp",
        ),
        ("sip:bob@192.0.2.1;lr", "sip:bob@192.0.2.1"),
        ("<sip:edge.example;lr>", "sip:edge.example;lr"),
    ],
    ids=["name-addr", "addr-spec", "route"],
)
def test_uri_of(value: str, uri: str) -> None:
    assert uri_of(value) == uri


def test_ids_are_unique_and_branches_carry_the_magic_cookie() -> None:
    ids = IdFactory()
    branches = {ids.branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(b.startswith("z9hG4bK") and b.startswith(ids.branch_prefix) for b in branches)
    # Loop detection (RFC 3261 §16.3 item 4) tells this process's branches from another's.
    other = IdFactory()
    assert not other.branch().startswith(ids.branch_prefix)


IDS = 2000


@pytest.mark.parametrize("kind", ["tag", "call_id", "branch"])
def test_ids_are_random_and_count_nothing(kind: str) -> None:
    # RFC 3261 §19.3: tags need at least 32 random bits, Call-IDs must be unique; and
    # a counter would tell every peer how many calls the switch carries.
    ids = IdFactory()
    make = getattr(ids, kind)
    prefix = ids.branch_prefix if kind == "branch" else ""
    values = [make() for _ in range(IDS)]
    assert len(set(values)) == IDS
    randoms = [value.removeprefix(prefix) for value in values]
    width = len(randoms[0])
    assert width * 4 >= 64
    assert all(len(r) == width and int(r, 16) >= 0 for r in randoms)
    numbers = [int(r, 16) for r in randoms]
    # Consecutive ids rise about as often as they fall (a counter always rises).
    rises = sum(b > a for a, b in itertools.pairwise(numbers))
    assert 0.4 < rises / (IDS - 1) < 0.6
    # Every bit is set in about half the ids: within 6 standard deviations of IDS/2
    # (sd = sqrt(IDS)/2 = 22.4), so a random generator fails this about once in 10**7.
    for bit in range(width * 4):
        ones = sum(number >> bit & 1 for number in numbers)
        assert abs(ones - IDS / 2) < 6 * 22.4, f"bit {bit} set in {ones} of {IDS}"
    # Nothing shared between two processes' ids but the branch cookie.
    assert not set(randoms) & {IdFactory().tag() for _ in range(100)}


def test_a_forked_child_does_not_reuse_drawn_ids() -> None:
    ids = IdFactory()
    drawn = {ids.tag()}
    wire._after_fork()  # what os.register_at_fork runs in a child
    assert ids._pool == []
    assert ids.tag() not in drawn


@pytest.mark.parametrize("package", ["tollguard.switch", "tollguard.transport"])
def test_public_names_are_exported(package: str) -> None:
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_timer_wheel_fires_in_order_and_honours_cancel() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop, tick=0.005)
        fired: list[str] = []
        done = asyncio.Event()
        start = loop.time()
        # Every delay counts from one instant, however long a busy machine pauses the
        # test between two lines.
        wheel._time = lambda: start
        wheel.call_later(0.03, fired.append, "late")
        wheel.call_later(0.01, fired.append, "early")
        wheel.call_later(0.02, fired.append, "cancelled").cancel()
        wheel.call_later(0.04, done.set)
        far = wheel.call_later(HORIZON_S + 1, fired.append, "far")
        wheel._time = loop.time
        assert len(wheel) == 4
        far.cancel()  # beyond the horizon: out of its long bucket at once
        assert len(wheel) == 3
        async with asyncio.timeout(2):
            await done.wait()
        assert fired == ["early", "late"]
        assert loop.time() - start >= 0.04
        assert len(wheel) == 0
        wheel.close()

    asyncio.run(main())


def test_long_timers_fire_in_their_bucket_and_leave_it_when_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop)
        monkeypatch.setattr("tollguard.switch.timers.HORIZON_S", 0.01)
        fired: list[str] = []
        done = asyncio.Event()
        start = loop.time()
        wheel._time = lambda: start  # every delay from one instant
        wheel.call_later(0.25, fired.append, "second")
        wheel.call_later(0.15, fired.append, "first")
        for index in range(1000):  # a thousand calls that ended before their limits
            wheel.call_later(0.2, fired.append, f"cancelled-{index}").cancel()
        wheel.call_later(0.3, done.set)
        wheel._time = loop.time
        assert len(wheel) == 3
        async with asyncio.timeout(2):
            await done.wait()
        assert fired == ["first", "second"]
        assert loop.time() - start >= 0.3
        assert len(wheel) == 0
        wheel.close()

    asyncio.run(main())


def test_timer_wheel_survives_a_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        wheel = TimerWheel(asyncio.get_running_loop(), tick=0.005)
        done = asyncio.Event()
        wheel.call_later(0.01, operator.truediv, 1, 0)
        wheel.call_later(0.01, done.set)
        async with asyncio.timeout(2):
            await done.wait()

    asyncio.run(main())
    assert "timer callback" in caplog.text


INVITE = (
    b"INVITE sip:777442071234567@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n"
    b"From: <sip:alice@127.0.0.1:5061>;tag=a1\r\nTo: <sip:777442071234567@127.0.0.1>\r\n"
    b"Call-ID: fuzz-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5061>\r\n"
    b"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"
)


def test_mutated_messages_never_escape_the_receive_boundary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever arrives, on_message answers, drops or handles it: it never raises."""

    async def main() -> None:
        sent: list[bytes] = []
        writer = CdrWriter(ListSinkStub(), batch_size=100, flush_interval_s=60)
        b2bua = B2bua(
            make_settings(tmp_path),
            lambda: build_plan(plan_data((40001, 40002))),
            writer,
            nonce_secret=b"s" * 32,
        )
        b2bua.bind(lambda data, *_: sent.append(data), {"udp": 5060})
        rng = random.Random(4475)
        for n in range(3000):
            invite = INVITE.replace(b"fuzz-1", f"fuzz-{n}".encode())
            if n % 2:
                # Mutate the gateway's answer to a real call instead of the INVITE.
                b2bua.on_message(invite, ("127.0.0.1", 5061), "udp", 0)
                forwarded = parse_message(sent[-1])
                assert isinstance(forwarded, Request)
                response = make_response(forwarded, rng.choice([180, 200, 486, 503]), to_tag="g")
                invite = response.to_bytes()
            data = bytearray(invite)
            for _ in range(rng.randint(1, 6)):
                position = rng.randrange(len(data))
                choice = rng.random()
                if choice < 0.4:
                    data[position] = rng.randrange(256)
                elif choice < 0.7:
                    del data[position : position + rng.randint(1, 20)]
                else:
                    data[position:position] = rng.choice(
                        [b"\r\n", b":", b";", b"<", b">", b",", b" ", b"\x00", b"tag="]
                    )
            b2bua.on_message(bytes(data), ("127.0.0.1", 5061), "udp", 0)
        b2bua.drain()
        b2bua.close()
        writer.close()
        assert sent  # most mutations still produce an answer of some kind

    caplog.set_level(logging.ERROR)
    asyncio.run(main())
    # Nothing reached the last-resort handler in on_message.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("fault", "counted", "level", "text"),
    [
        (KeyError("routing"), 1, logging.ERROR, "bug: handling a message of call fault-1"),
        (AttributeError("no such thing"), 1, logging.ERROR, "bug: handling a message"),
        (LocalProtocolError("unusable header"), 0, logging.INFO, "not handled: unusable"),
    ],
    ids=["key-error", "attribute-error", "protocol-error"],
)
def test_errors_past_the_receive_boundary_are_told_apart(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    fault: Exception,
    counted: int,
    level: int,
    text: str,
) -> None:
    """A bug in call handling is logged with the Call-ID and counted; a peer's bad header
    that only shows past parsing is the peer's fault, logged and not counted."""
    b2bua, _ = clocked_b2bua(tmp_path)
    b2bua.bind(lambda *_: None, {"udp": 5060})

    def broken(*args: object) -> None:
        raise fault

    monkeypatch.setattr(b2bua._attempts, "next", broken)
    with caplog.at_level(logging.INFO, "tollguard.switch"):
        b2bua.on_message(INVITE.replace(b"fuzz-1", b"fault-1"), ("127.0.0.1", 5061), "udp", 0)
    assert b2bua.handler_errors == counted
    (record,) = [r for r in caplog.records if r.name == "tollguard.switch.b2bua"]
    assert record.levelno == level
    assert text in record.getMessage()
    assert record.call_id == "fault-1"  # type: ignore[attr-defined]


class ListQueue:
    def __init__(self) -> None:
        self.cdrs: list[Cdr] = []

    def submit(self, cdr: Cdr) -> None:
        self.cdrs.append(cdr)


def clocked_b2bua(tmp_path: Path) -> tuple[B2bua, ManualClock]:
    """A B2BUA on plan_data's plan, its timers and wall time on a manual clock, its CDRs
    kept in a list; not yet bound."""
    clock = ManualClock()
    b2bua = B2bua(
        make_settings(tmp_path),
        lambda: build_plan(plan_data((40001, 40002))),
        ListQueue(),
        nonce_secret=b"s" * 32,
        scheduler=clock,
        wall_clock=clock.wall,
    )
    return b2bua, clock


class ListSinkStub:
    def __init__(self) -> None:
        self.cdrs: list[Cdr] = []

    def write_batch(self, cdrs: list[Cdr]) -> None:
        self.cdrs.extend(cdrs)


def test_settling_the_heap_hides_what_was_loaded_from_the_collector() -> None:
    threshold = gc.get_threshold()
    loaded = [{"prefix": str(n)} for n in range(1000)]
    try:
        server._settle_heap()
        assert gc.get_freeze_count() >= len(loaded)
        # Frozen objects are no longer walked by any collection.
        assert not any(item is loaded[0] for item in gc.get_objects())
        assert gc.get_threshold() == (server._GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_the_status_document_carries_counters_and_the_rate(tmp_path: Path) -> None:
    counters = iter([SwitchCounters(3, 100), SwitchCounters(1, 150, 2, 7, 5)])
    clock = iter([1000.0, 1010.0, 1012.0])  # start, first and second document
    publisher = StatusPublisher(
        tmp_path / "run" / "switch-status.json",
        lambda: next(counters),
        clock=lambda: next(clock),
    )
    publisher.publish()
    first = json.loads(publisher.path.read_text())
    assert first["active_calls"] == 3
    assert first["calls_total"] == 100
    assert first["calls_per_second"] == 0.0  # no earlier document to compare with
    assert first["started_at"] == 1000.0
    assert first["updated_at"] == 1010.0
    publisher.publish()
    second = json.loads(publisher.path.read_text())
    assert second["calls_per_second"] == 25.0  # 50 calls in 2 s
    assert (first["handler_errors"], second["handler_errors"]) == (0, 2)
    assert (first["bindings"], first["registered_accounts"]) == (0, 0)
    assert (second["bindings"], second["registered_accounts"]) == (7, 5)
    assert [p.name for p in publisher.path.parent.iterdir()] == ["switch-status.json"]
    publisher.remove()
    assert not publisher.path.exists()


def test_the_status_is_rewritten_until_stop_then_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        calls = [0]

        def counters() -> SwitchCounters:
            calls[0] += 1
            return SwitchCounters(0, calls[0])

        publisher = StatusPublisher(tmp_path / "status.json", counters, interval_s=0.01)
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        while calls[0] < 3:
            await asyncio.sleep(0.01)
        assert json.loads(publisher.path.read_text())["calls_total"] >= 2
        stop.set()
        await task
        assert not publisher.path.exists()

    asyncio.run(scenario())


def test_a_status_that_cannot_be_written_does_not_stop_the_switch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file where the directory should be")

    async def scenario() -> None:
        publisher = StatusPublisher(
            blocker / "status.json", lambda: SwitchCounters(0, 0), interval_s=0.01
        )
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        await asyncio.sleep(0.05)
        assert not task.done()
        stop.set()
        await task

    with caplog.at_level(logging.WARNING, "tollguard.switch.status"):
        asyncio.run(scenario())
    assert "cannot write the switch status" in caplog.text
