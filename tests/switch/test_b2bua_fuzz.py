"""Random call flows through the B2BUA: whatever order the peers act in, no handler fails.

Each example plays a few calls in which the customer and the gateway act in a random
order (answers of every kind, CANCEL, ACK, BYE from either side, re-INVITEs, resends of
the last message) while time moves on a manual clock in random steps (retransmissions,
setup and ring timeouts, Timer B/F/H, a 2xx never acknowledged). The B2BUA runs on a
fake transport; no error may be logged by the switch (a message handler's failure, a
timer callback's), and a graceful stop must end every call with one CDR.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollguard.domain.cdr import Cdr
from tollguard.domain.routing import build_plan
from tollguard.switch.b2bua import B2bua
from tollguard.switch.cdr_writer import CdrWriter

from .clock import ManualClock
from .conftest import TECH_PREFIX, make_settings, plan_data
from .profile_calls import GATEWAY, SWITCH, gw_response, header, uac_in_dialog, uac_invite

CUSTOMER = ("127.0.0.1", 15080)
ACTIONS = (
    "gw100",
    "gw180",
    "gw183",
    "gw200",
    "gw486",
    "gw503",
    "gw487",
    "cancel",
    "ack",
    "bye",
    "gw_bye",
    "reinvite",
    "gw_reinvite",
    "gw_ok_last",
    "uac_ok_last",
    "resend",
    # Time passes: past T1 (resends), the setup timeout (1 s), then far enough for the
    # ring timeout (5 s) and 64*T1 (6.4 s) to fall due.
    "wait_t1",
    "wait_setup",
    "wait_long",
)
WAITS = {"wait_t1": 0.15, "wait_setup": 1.0, "wait_long": 7.0}
T1 = 0.1  # make_settings


class Collect:
    """Stands in for the CDR writer: keeps what the B2BUA submits."""

    def __init__(self) -> None:
        self.cdrs: list[Cdr] = []

    def submit(self, cdr: Cdr) -> None:
        self.cdrs.append(cdr)


class Flow:
    """Both peers of one call, acting on what the switch last sent them."""

    def __init__(self, b2bua: B2bua, clock: ManualClock, index: int) -> None:
        self.b2bua = b2bua
        self.clock = clock
        self.index = index
        self.number = f"{TECH_PREFIX}44207{index:07d}"
        self.cseq = 1
        self.to_customer: list[bytes] = []
        self.to_gateway: list[bytes] = []
        self.last: tuple[bytes, tuple[str, int]] | None = None
        self.last_at = 0.0

    def deliver(self, data: bytes, source: tuple[str, int]) -> None:
        self.last = (data, source)
        self.last_at = self.clock.now()
        self.b2bua.on_message(data, source, "udp", 0)

    def sent(self, data: bytes, address: tuple[str, int]) -> None:
        (self.to_gateway if address == GATEWAY else self.to_customer).append(data)

    def _last_to_gateway(self, start: bytes) -> bytes | None:
        return next((m for m in reversed(self.to_gateway) if m.startswith(start)), None)

    def _customer_to(self) -> bytes:
        for message in reversed(self.to_customer):
            if message.startswith(b"SIP/2.0 ") and b";tag=" in header(message, b"To"):
                return header(message, b"To")
        return f"To: <sip:{self.number}@{SWITCH[0]}:{SWITCH[1]}>".encode()

    def start(self) -> None:
        self.deliver(uac_invite(self.index, self.number, CUSTOMER, 1, ""), CUSTOMER)

    def act(self, action: str) -> None:
        invite = self._last_to_gateway(b"INVITE ")
        tag = f"gw{self.index}"
        if action.startswith("gw") and action[2:].isdigit():
            if invite is not None:
                status = {
                    "100": "100 Trying",
                    "180": "180 Ringing",
                    "183": "183 Session Progress",
                    "200": "200 OK",
                    "486": "486 Busy Here",
                    "503": "503 Service Unavailable",
                    "487": "487 Request Terminated",
                }[action[2:]]
                body = "v=0\r\n" if status.startswith(("183", "200")) else ""
                self.deliver(
                    gw_response(invite, status, "" if action == "gw100" else tag, body), GATEWAY
                )
        elif action == "cancel":
            self.deliver(uac_cancel(self.index, self.number), CUSTOMER)
        elif action in ("ack", "bye", "reinvite"):
            method = {"ack": "ACK", "bye": "BYE", "reinvite": "INVITE"}[action]
            if method != "ACK":
                self.cseq += 1
            to = self._customer_to()
            request = uac_in_dialog(method, self.index, self.number, CUSTOMER, self.cseq, to)
            self.deliver(request, CUSTOMER)
        elif action in ("gw_bye", "gw_reinvite") and invite is not None:
            method = "BYE" if action == "gw_bye" else "INVITE"
            self.deliver(gateway_request(invite, method, tag), GATEWAY)
        elif action in ("gw_ok_last", "uac_ok_last"):
            # 200 to whatever request the switch sent last (INVITE, BYE, CANCEL, even ACK).
            gateway = action == "gw_ok_last"
            sent = self.to_gateway if gateway else self.to_customer
            last = next((m for m in reversed(sent) if not m.startswith(b"SIP/2.0")), None)
            if last is not None:
                peer = GATEWAY if gateway else CUSTOMER
                self.deliver(gw_response(last, "200 OK", tag if gateway else "uac"), peer)
        elif action == "resend" and self.last is not None:
            # A peer resends only within its transaction's lifetime (Timer B/F,
            # 64*T1); later the same bytes would be a new request.
            if self.clock.now() - self.last_at < 64 * T1:
                data, source = self.last
                self.b2bua.on_message(data, source, "udp", 0)
        elif action in WAITS:
            self.clock.advance(WAITS[action])


def uac_cancel(index: int, number: str) -> bytes:
    """The CANCEL of a call's initial INVITE: same branch, CSeq 1 CANCEL, no body."""
    head = uac_invite(index, number, CUSTOMER, 1, "").split(b"\r\n\r\n", 1)[0]
    lines = [
        line
        for line in head.replace(b"INVITE ", b"CANCEL ", 1)
        .replace(b"CSeq: 1 INVITE", b"CSeq: 1 CANCEL")
        .split(b"\r\n")
        if not line.startswith((b"Content-", b"Contact:"))
    ]
    return b"\r\n".join([*lines, b"Content-Length: 0", b"", b""])


def gateway_request(invite: bytes, method: str, tag: str) -> bytes:
    """An in-dialog request from the gateway of the call ``invite`` started."""
    to = header(invite, b"To").split(b":", 1)[1].strip()
    origin = header(invite, b"From").split(b":", 1)[1].strip()
    call_id = header(invite, b"Call-ID")
    return (
        f"{method} sip:switch@{SWITCH[0]}:{SWITCH[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {GATEWAY[0]}:{GATEWAY[1]};branch=z9hG4bK{method}{tag}\r\n"
        f"From: {to.decode()};tag={tag}\r\nTo: {origin.decode()}\r\n{call_id.decode()}\r\n"
        f"CSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


FLOWS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FLOWS
@given(st.lists(st.lists(st.sampled_from(ACTIONS), max_size=12), min_size=1, max_size=3))
def test_random_call_flows_never_break_the_handler(
    tmp_path_factory: pytest.TempPathFactory, plays: list[list[str]]
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.ERROR)
    logger = logging.getLogger("tollguard.switch")
    logger.addHandler(keep)
    try:
        cdrs, handler_errors = _play(tmp_path_factory.mktemp("flows"), plays)
    finally:
        logger.removeHandler(keep)
    assert not records, [r.getMessage() for r in records]
    assert handler_errors == 0
    # Every call reached routing (an ACL customer, a known number): one CDR each.
    assert sorted(cdr.call_id for cdr in cdrs) == sorted(
        f"{index}-1@{CUSTOMER[0]}" for index in range(len(plays))
    )


def _play(tmp_path: Path, plays: list[list[str]]) -> tuple[list[Cdr], int]:
    data = plan_data((GATEWAY[1], GATEWAY[1] + 1))
    plan = build_plan(data)
    collect = Collect()
    clock = ManualClock()
    b2bua = B2bua(
        make_settings(tmp_path),
        lambda: plan,
        cast(CdrWriter, collect),
        nonce_secret=b"k" * 32,
        scheduler=clock,
        wall_clock=clock.wall,
    )
    flows = [Flow(b2bua, clock, index) for index in range(len(plays))]
    # Calls are played one after the other: what the switch sends goes to the call in play.
    playing = [flows[0]]

    def send(data: bytes, transport: str, address: tuple[str, int], connection: int) -> None:
        playing[0].sent(data, address)

    b2bua.bind(send, {"udp": SWITCH[1]}, SWITCH[0])
    for flow, actions in zip(flows, plays, strict=True):
        playing[0] = flow
        flow.start()
        for action in actions:
            flow.act(action)
    b2bua.drain()
    assert b2bua.active_calls == 0
    clock.advance(60.0)  # every retransmission given up, every ended call forgotten
    assert clock.pending() == 0
    b2bua.close()
    return collect.cdrs, b2bua.handler_errors
