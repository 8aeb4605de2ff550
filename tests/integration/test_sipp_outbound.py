"""SIPp phones against a ``tollguard serve`` of this module's own: RFC 5626 flows over
TCP, bindings dropped when their connection closes, and phones that stop answering the
NAT pings losing their binding. Counts come from the switch's status document (what
``tollguard status`` and the dashboard show)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from tollguard.bench.calls import TollguardServer, sipp_digest_settings
from tollguard.bench.sippctl import LOOPBACK, Sipp, free_udp_ports

from .harness import Switch, rate
from .switches import SCENARIOS, card

pytestmark = pytest.mark.integration

FLOW_PHONE = ("flow1", "battery-staple-horse")
SILENT_PHONE = ("quiet1", "horse-staple-battery")
ANSWERING_PHONE = ("loud1", "staple-horse-battery")
INSTANCE = "00000000-0000-1000-8000-00a0c91e6bf6"
PING_S = 1
PING_FAILURES = 3


def phones_plan(_ports: Mapping[str, int]) -> dict[str, Any]:
    return {
        "rate_cards": [card("sell", "sell", [rate("44", Decimal("0.6000"))])],
        "providers": [],
        "customers": [
            {
                "name": "office",
                "sell_card": "sell",
                "credit": {"mode": "postpaid", "credit_limit": "1000"},
                "numbering": {"country_code": "44"},
                "accounts": [
                    {"username": user, "password": password, "allow_md5": True}
                    for user, password in (FLOW_PHONE, SILENT_PHONE, ANSWERING_PHONE)
                ],
            }
        ],
    }


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def phones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Switch, int]]:
    """The switch on UDP and TCP, pinging every second and giving up after three misses."""
    root = tmp_path_factory.mktemp("sipp-outbound")
    (udp_port,) = free_udp_ports(1)
    tcp_port = _free_tcp_port()
    sip = dict(sipp_digest_settings()["sip"])
    sip.update(
        listen=(f"udp:{LOOPBACK}:{udp_port}", f"tcp:{LOOPBACK}:{tcp_port}"),
        register_nat_ping_s=PING_S,
        register_nat_ping_failures=PING_FAILURES,
    )
    server = TollguardServer(root / "data", sip_port=udp_port, settings={"sip": sip})
    try:
        server.init()
        server.load(phones_plan({}))
        server.start()
        yield Switch(server=server, workdir=root / "phones", gateways={}), tcp_port
    finally:
        server.stop()


def _status(switch: Switch) -> dict[str, Any]:
    path = switch.server.data_dir / "run" / "switch-status.json"
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _until(what: str, check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not seen within {timeout_s} s: {what}")


def _logged(switch: Switch, text: str) -> Callable[[], bool]:
    return lambda: text in switch.server.log()


def _phone(switch: Switch, scenario: str, auth: tuple[str, str], name: str, **kw: Any) -> Sipp:
    (port,) = free_udp_ports(1)
    return Sipp(
        SCENARIOS / f"{scenario}.xml",
        workdir=switch.workdir,
        name=name,
        local_port=port,
        remote=(LOOPBACK, kw.pop("remote_port", switch.port)),
        service=auth[0],
        auth=auth,
        calls=1,
        **kw,
    )


def test_two_flows_over_tcp_and_each_goes_with_its_connection(
    phones: tuple[Switch, int],
) -> None:
    """One phone (one instance) registers flow 1 and flow 2, each over its own TCP
    connection; the 200 says Require: outbound (the scenario checks it). When the first
    SIPp exits its connection closes and flow 1 goes; the account stays registered
    through flow 2 until that connection closes too."""
    switch, tcp_port = phones
    keys = {"instance": INSTANCE}
    first = _phone(
        switch, "uac_register_flow", FLOW_PHONE, "flow-1", keys={**keys, "reg_id": "1"},
        pause_ms=10_000, remote_port=tcp_port, extra_args=("-t", "t1"),
    )  # fmt: skip
    second = _phone(
        switch, "uac_register_flow", FLOW_PHONE, "flow-2", keys={**keys, "reg_id": "2"},
        pause_ms=60_000, remote_port=tcp_port, extra_args=("-t", "t1"),
    )  # fmt: skip
    log = switch.server.log
    try:
        for reg_id, phone in ((1, first), (2, second)):
            phone.start()
            flow = f"over tcp (flow {reg_id} of <urn:uuid:{INSTANCE}>)"
            _until(f"flow {reg_id} registered", _logged(switch, flow))
        _until("two bindings of one account", lambda: _counts(switch) == (2, 1))
        done = first.wait(30)
        assert done.ok and done.successful == 1, done.errors
        _until("flow 1 dropped", lambda: "over tcp: connection closed" in log())
        _until("one binding left", lambda: _counts(switch) == (1, 1))
        dropped = [line for line in log().splitlines() if "binding dropped" in line]
        (line,) = dropped
        assert f"at sip:{FLOW_PHONE[0]}@{LOOPBACK}:{first.local_port};transport=tcp " in line
        second.stop()
        _until("no binding left", lambda: _counts(switch) == (0, 0))
    finally:
        first.kill()
        second.kill()


def _counts(switch: Switch) -> tuple[int, int]:
    status = _status(switch)
    return int(status["bindings"]), int(status["registered_accounts"])


def test_a_phone_that_stops_answering_pings_loses_its_binding(
    phones: tuple[Switch, int],
) -> None:
    """Two phones register over UDP and stay; the switch pings each every second. The
    one that answers (an out-of-call scenario returns 200 to each OPTIONS) keeps its
    binding; the one that drops the pings loses it after three unanswered in a row."""
    switch, _ = phones
    silent = _phone(switch, "uac_register_hold", SILENT_PHONE, "silent", pause_ms=60_000)
    answering = _phone(
        switch, "uac_register_hold", ANSWERING_PHONE, "answering", pause_ms=60_000,
        extra_args=("-oocsf", str(SCENARIOS / "uas_options.xml")),
    )  # fmt: skip
    silent.start()
    answering.start()
    try:
        log = switch.server.log
        for user in (SILENT_PHONE[0], ANSWERING_PHONE[0]):
            _until(f"{user} registered", _logged(switch, f"registered {user} at"))
        gone = f"at sip:{SILENT_PHONE[0]}@{LOOPBACK}:{silent.local_port} from"

        def dropped() -> list[str]:
            return [line for line in log().splitlines() if "binding dropped" in line]

        _until("the silent phone dropped", lambda: any(gone in line for line in dropped()))
        (line,) = [line for line in dropped() if gone in line]
        assert line.endswith(f"over udp: {PING_FAILURES} pings in a row unanswered")
        # The answering phone has been pinged as often, and is still there.
        time.sleep(PING_S * (PING_FAILURES + 1))
        assert not any(f"at sip:{ANSWERING_PHONE[0]}@" in line for line in dropped())
        assert _counts(switch) == (1, 1)
    finally:
        silent.kill()
        answering.kill()
