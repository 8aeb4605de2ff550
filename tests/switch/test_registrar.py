"""The registrar on a running switch: digest, bindings, expiry, the path of each binding."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tollguard.domain.registration import Binding
from tollguard.sip import make_response, parse_message
from tollguard.sip.digest import authorization
from tollguard.sip.headers import Headers
from tollguard.sip.message import Request, Response
from tollguard.sip.uri import parse_uri
from tollguard.transport import Transports

from .conftest import PASSWORD, Harness, Peer
from .test_b2bua import Run, advance
from .test_parts import clocked_b2bua

_branches = itertools.count(1)


class Phone:
    """A phone registering ``user`` from one UDP peer, answering challenges as it goes."""

    def __init__(self, h: Harness, peer: Peer, user: str = "alice", password: str = PASSWORD):
        self.h = h
        self.peer = peer
        self.user = user
        self.password = password
        self.call_id = f"reg-{user}-{peer.port}@phone.example"
        self.cseq = 0
        self.challenge = ""
        self.nc = 0
        self.uri = f"sip:127.0.0.1:{h.switch[1]}"

    def build(
        self,
        contacts: tuple[str, ...] = (),
        expires: str | None = None,
        *,
        aor: str | None = None,
        credentials: bool = True,
    ) -> Request:
        self.cseq += 1
        aor = aor or self.user
        headers = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{self.peer.port};branch=z9hG4bKr{next(_branches)}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{aor}@127.0.0.1>;tag=f{self.peer.port}"),
            ("To", f"<sip:{aor}@127.0.0.1>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("User-Agent", "test-phone"),
        ]
        headers += [("Contact", contact) for contact in contacts]
        if expires is not None:
            headers.append(("Expires", expires))
        if credentials and self.challenge:
            self.nc += 1
            value = authorization(
                self.challenge, self.user, self.password, "REGISTER", self.uri, "cn", self.nc
            )
            headers.append(("Authorization", value))
        return Request("REGISTER", parse_uri(self.uri), Headers(headers))

    async def send(self, message: Request) -> Response:
        self.peer.send(message, self.h.switch)
        return await self.peer.response(method="REGISTER")

    async def register(
        self, contacts: tuple[str, ...] = (), expires: str | None = None, **kw: object
    ) -> Response:
        """Send a REGISTER; on a 401, take the challenge and send it again with credentials."""
        response = await self.send(self.build(contacts, expires, **kw))  # type: ignore[arg-type]
        if response.status == 401:
            self.challenge = next(
                v for v in response.headers.get_all("WWW-Authenticate") if "SHA-256" in v
            )
            self.nc = 0
            response = await self.send(self.build(contacts, expires, **kw))  # type: ignore[arg-type]
        return response


def _bound(response: Response) -> dict[str, int]:
    """Contact URI -> seconds left, as the 200 lists them."""
    found = {}
    for value in response.headers.get_all("Contact"):
        uri, _, params = value.partition(">;expires=")
        found[uri.lstrip("<")] = int(params.split(";")[0])
    return found


async def _peer(host: str = "127.0.0.1") -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=(host, 0))
    return peer


A = "sip:alice@192.168.1.20:5062"
B = "sip:alice@192.168.1.21:5062;transport=tcp"


def test_register_is_challenged_with_a_401(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        response = await phone.send(phone.build((f"<{A}>",)))
        assert response.status == 401
        values = response.headers.get_all("WWW-Authenticate")
        assert values[0].startswith("Digest ") and "algorithm=SHA-256" in values[0]
        assert response.headers.get("Proxy-Authenticate") is None
        assert response.to.tag

    run_scenario(scenario)


def test_bind_query_refresh_remove_one_and_remove_all(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        ok = await phone.register((f"<{A}>",), "600")
        assert ok.status == 200
        assert _bound(ok) == {A: 600}
        assert (ok.headers.get("Date") or "").endswith(" GMT")
        # A second contact, its own expiry in the Contact parameter.
        ok = await phone.register((f"<{B}>;expires=900",), "600")
        assert _bound(ok) == {A: 600, B: 900}
        # A query changes nothing and lists both.
        ok = await phone.register()
        assert _bound(ok) == {A: 600, B: 900}
        # A refresh of A with a shorter interval.
        ok = await phone.register((f"<{A}>",), "300")
        assert _bound(ok) == {A: 300, B: 900}
        # Remove B alone.
        ok = await phone.register((f"<{B}>;expires=0",))
        assert _bound(ok) == {A: 300}
        # '*' needs Expires: 0 ...
        refused = await phone.register(("*",), "60")
        assert (refused.status, refused.reason) == (400, "Bad Request - '*' needs Expires: 0")
        # ... and then removes everything.
        ok = await phone.register(("*",), "0")
        assert ok.status == 200
        assert _bound(ok) == {}

    run_scenario(scenario)


def _q_values(response: Response) -> dict[str, str]:
    """Contact URI -> its q parameter, as the 200 lists them."""
    found = {}
    for value in response.headers.get_all("Contact"):
        found[value[1 : value.index(">")]] = value.split(";q=")[1].split(";")[0]
    return found


def test_q_values_are_kept_listed_and_changed_by_a_refresh(run_scenario: Run) -> None:
    """RFC 3261 §10.2.1.2: each binding keeps its q (1 when the Contact has none); the
    200 lists it with the shortest spelling; a refresh may change it."""

    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        ok = await phone.register((f"<{A}>;q=0.500", f"<{B}>"), "600")
        assert _q_values(ok) == {A: "0.5", B: "1"}
        assert _q_values(await phone.register()) == {A: "0.5", B: "1"}
        ok = await phone.register((f"<{A}>;Q=1.0", f"<{B}>;q=0"), "600")
        assert _q_values(ok) == {A: "1", B: "0"}
        ok = await phone.register((f"<{B}>;q=0.025",), "600")
        assert _q_values(ok) == {A: "1", B: "0.025"}

    run_scenario(scenario)


@pytest.mark.parametrize("q", ["", "1.5", "2", "0.0001", "-0.5", ".5", "1.001", "1e-1", "one"])
def test_a_malformed_q_is_refused_and_binds_nothing(run_scenario: Run, q: str) -> None:
    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        contact = f"<{A}>;q" if not q else f"<{A}>;q={q}"
        refused = await phone.register((contact,), "600")
        assert (refused.status, refused.reason) == (
            400,
            "Bad Request - malformed q (0 to 1, at most three decimals)",
        )
        assert _bound(await phone.register()) == {}

    run_scenario(scenario)


def test_too_brief_gets_423_too_long_is_cut_and_bad_contacts_400(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        brief = await phone.register((f"<{A}>",), "30")
        assert (brief.status, brief.headers.get("Min-Expires")) == (423, "60")
        ok = await phone.register((f"<{A}>",), "86400")
        assert _bound(ok) == {A: 3600}
        ok = await phone.register((f"<{B}>",))  # no expiry asked: the default
        assert _bound(ok)[B] == 3600
        malformed = await phone.register((f"<{A}>",), "soon")
        assert (malformed.status, malformed.reason) == (400, "Bad Request - malformed Expires")
        not_sip = await phone.register(("<tel:+442071234567>",), "600")
        assert (not_sip.status, not_sip.reason) == (
            400,
            "Bad Request - Contact must be a sip: or sips: URI",
        )
        assert _bound(await phone.register()) == {A: 3600, B: 3600}

    run_scenario(scenario)


def test_expiry_removes_the_binding(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        assert _bound(await phone.register((f"<{A}>",), "60")) == {A: 60}
        assert _bound(await phone.register((f"<{B}>",), "120")) == {A: 60, B: 120}
        advance(h, 59)
        assert _bound(await phone.register()) == {A: 1, B: 61}
        advance(h, 2)  # A has expired; the sweep removed it
        assert _bound(await phone.register()) == {B: 59}
        advance(h, 60)
        assert _bound(await phone.register()) == {}

    run_scenario(scenario, clock=True)


def test_a_stale_cseq_changes_nothing(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        assert (await phone.register((f"<{A}>",), "600")).status == 200
        phone.cseq -= 2  # the next REGISTER repeats an older CSeq of this Call-ID
        stale = await phone.send(phone.build((f"<{A}>",), "0"))
        assert stale.status == 500
        phone.cseq += 2
        assert _bound(await phone.register()) == {A: 600}

    run_scenario(scenario)


def test_a_retransmission_gets_the_same_answer(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        await phone.register((f"<{A}>",), "600")
        again = phone.build((f"<{B}>",), "600")
        first = await phone.send(again)
        h.uac.raw.clear()
        second = await phone.send(again)  # its nonce count is used: answered from memory
        assert (first.status, second.status) == (200, 200)
        assert _bound(second) == {A: 600, B: 600}
        assert parse_message(h.uac.raw[-1]) == second

    run_scenario(scenario)


def test_failures_are_answered_alike_and_logged(
    run_scenario: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(h: Harness) -> None:
        wrong = await Phone(h, h.uac, password="not it").register((f"<{A}>",), "600")
        unknown = await Phone(h, h.uac, user="mallory").register((f"<{A}>",), "600")
        assert (wrong.status, wrong.reason) == (403, "Forbidden")
        assert (unknown.status, unknown.reason) == (403, "Forbidden")
        assert [n for n, _ in wrong.headers.items] == [n for n, _ in unknown.headers.items]
        # Right password, someone else's address-of-record.
        other = await Phone(h, h.uac).register((f"<{A}>",), "600", aor="bob")
        assert other.status == 403
        # Nothing was bound for anyone.
        assert _bound(await Phone(h, h.uac).register()) == {}

    with caplog.at_level(logging.WARNING, "tollguard.security"):
        run_scenario(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert any('user="alice" reason=bad-credentials' in line for line in lines), lines
    assert any('user="mallory" reason=unknown-user' in line for line in lines), lines
    assert any("register refused" in line and "reason=other-aor" in line for line in lines)


def test_a_guesser_is_banned_and_then_refused_like_a_wrong_password(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        guesser = await _peer("127.0.0.2")
        for attempt in range(5):
            response = await Phone(h, guesser, password=f"guess{attempt}").register(
                (f"<{A}>",), "600"
            )
            assert response.status == 403
        await asyncio.sleep(0.05)  # the fifth failure is counted once its 403 is out
        # Banned now: the right password gets the same 403 and binds nothing.
        late = await Phone(h, guesser).register((f"<{A}>",), "600")
        assert (late.status, late.reason) == (403, "Forbidden")
        assert _bound(await Phone(h, h.uac).register()) == {}
        assert guesser.transport is not None
        guesser.transport.close()

    run_scenario(scenario)


def test_a_binding_keeps_its_tcp_connection_open(run_scenario: Run) -> None:
    """The connection a REGISTER came over is pinned while the binding lasts, so that a
    call can come back over it; once the binding goes, idleness closes it again."""

    async def scenario(h: Harness) -> None:
        tcp_port = int(next(line for line in h.ready if line.startswith("tcp")).rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
        local_port = writer.get_extra_info("sockname")[1]
        state = {"cseq": 0, "nc": 0, "challenge": ""}

        async def register(expires: str) -> Response:
            while True:
                state["cseq"] = int(state["cseq"]) + 1
                lines = [
                    f"REGISTER sip:127.0.0.1:{tcp_port};transport=tcp SIP/2.0",
                    f"Via: SIP/2.0/TCP 127.0.0.1:{local_port};branch=z9hG4bKtcp{state['cseq']}",
                    "Max-Forwards: 70",
                    "From: <sip:alice@127.0.0.1>;tag=tcp",
                    "To: <sip:alice@127.0.0.1>",
                    "Call-ID: reg-tcp@phone.example",
                    f"CSeq: {state['cseq']} REGISTER",
                    f"Contact: <sip:alice@10.0.0.5:5060;transport=tcp>;expires={expires}",
                ]
                if state["challenge"]:
                    state["nc"] = int(state["nc"]) + 1
                    lines.append(
                        "Authorization: "
                        + authorization(
                            str(state["challenge"]),
                            "alice",
                            PASSWORD,
                            "REGISTER",
                            f"sip:127.0.0.1:{tcp_port};transport=tcp",
                            "cn",
                            int(state["nc"]),
                        )
                    )
                writer.write(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
                response = parse_message(head)
                assert isinstance(response, Response)
                if response.status != 401:
                    return response
                state["challenge"] = next(
                    v for v in response.headers.get_all("WWW-Authenticate") if "SHA-256" in v
                )
                state["nc"] = 0

        assert (await register("600")).status == 200
        # Well past the idle timeout (0.3 s), the bound connection is still open.
        await asyncio.sleep(1.0)
        assert not reader.at_eof()
        assert (await register("0")).status == 200
        # Unbound: idle again, and closed by the switch.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    run_scenario(
        scenario, sip={"listen": ("udp:127.0.0.1:0", "tcp:127.0.0.1:0"), "idle_timeout_s": 0.3}
    )


def test_a_udp_phone_is_pinged_at_the_address_it_registered_from(run_scenario: Run) -> None:
    """The contact says 192.168.1.20 (behind NAT); the OPTIONS goes where the REGISTER
    came from, which is how a call to the phone will travel too."""

    async def scenario(h: Harness) -> None:
        phone = Phone(h, h.uac)
        assert _bound(await phone.register((f"<{A}>",), "600")) == {A: 600}
        advance(h, 24.9)
        assert h.uac.nothing(lambda m: isinstance(m, Request) and m.method == "OPTIONS")
        advance(h, 0.1)  # sip.register_nat_ping_s (25 s)
        ping, _ = await h.uac.request("OPTIONS")
        assert str(ping.uri) == A
        assert ping.to.uri == ping.uri
        advance(h, 25)
        await h.uac.request("OPTIONS")  # again, while the binding lasts
        assert _bound(await phone.register(("*",), "0")) == {}
        advance(h, 50)
        await _processed_register(h, phone)
        assert h.uac.nothing(lambda m: isinstance(m, Request) and m.method == "OPTIONS")

    run_scenario(scenario, clock=True)


async def _processed_register(h: Harness, phone: Phone) -> None:
    """A query answered: everything the switch sent before it has arrived (one socket)."""
    assert (await phone.register()).status == 200


# -- RFC 5626 outbound ---------------------------------------------------------------------

INSTANCE = "<urn:uuid:00000000-0000-1000-8000-aabbccddeeff>"
TCP_LISTEN = {"listen": ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")}


class StreamPhone:
    """One TCP connection of a phone (one RFC 5626 flow), registering over it."""

    def __init__(self, h: Harness, user: str = "alice", call_id: str = "") -> None:
        self.port = int(next(line for line in h.ready if line.startswith("tcp")).rsplit(":", 1)[1])
        self.user = user
        self.aor = user  # the address-of-record in From and To
        self.call_id = call_id or f"flow-{next(_branches)}@phone.example"
        self.cseq = 0
        self.nc = 0
        self.challenge = ""
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.local_port = 0
        self.sent = b""

    async def open(self) -> StreamPhone:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.local_port = self.writer.get_extra_info("sockname")[1]
        return self

    def flow(self, reg_id: int, expires: int = 600, instance: str = INSTANCE) -> str:
        return (
            f"<sip:{self.user}@10.0.0.5:{5060 + reg_id};transport=tcp>;expires={expires}"
            f';+sip.instance="{instance}";reg-id={reg_id}'
        )

    async def send(self, method: str, lines: list[str]) -> Response:
        self.cseq += 1
        uri = f"sip:127.0.0.1:{self.port};transport=tcp"
        head = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/TCP 127.0.0.1:{self.local_port};branch=z9hG4bKs{next(_branches)}",
            "Max-Forwards: 70",
            f"From: <sip:{self.aor}@127.0.0.1>;tag=s{self.local_port}",
            f"To: <sip:{self.aor}@127.0.0.1>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            *lines,
        ]
        if self.challenge and method == "REGISTER":
            self.nc += 1
            value = authorization(
                self.challenge, self.user, PASSWORD, "REGISTER", uri, "cn", self.nc
            )
            head.append(f"Authorization: {value}")
        self.sent = ("\r\n".join(head) + "\r\nContent-Length: 0\r\n\r\n").encode()
        return await self.replay(self.sent)

    async def replay(self, data: bytes) -> Response:
        """Send ``data`` as it is over this connection; the response."""
        self.writer.write(data)
        await self.writer.drain()
        response = parse_message(await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5))
        assert isinstance(response, Response)
        return response

    async def register(self, *lines: str) -> Response:
        response = await self.send("REGISTER", list(lines))
        if response.status == 401:
            self.challenge = next(
                v for v in response.headers.get_all("WWW-Authenticate") if "SHA-256" in v
            )
            self.nc = 0
            response = await self.send("REGISTER", list(lines))
        return response

    def close(self) -> None:
        self.writer.close()


def _flows(response: Response) -> list[tuple[int, str]]:
    """(reg-id, instance) of each flow the 200 lists; reg-id 0 for a plain binding."""
    found = []
    for value in response.headers.get_all("Contact"):
        reg_id = re.search(r";reg-id=(\d+)", value)
        instance = re.search(r';\+sip\.instance="([^"]*)"', value)
        found.append((int(reg_id[1]) if reg_id else 0, instance[1] if instance else ""))
    return sorted(found)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds (something the switch does when a connection closes)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


def test_two_outbound_flows_and_a_closed_connection_takes_its_flow_away(
    run_scenario: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 5626: a phone registers one flow per connection (reg-id 1 and 2); the 200 says
    Require: outbound; when one connection closes, its flow goes and the other stays."""

    async def scenario(h: Harness) -> None:
        first, second = await StreamPhone(h).open(), await StreamPhone(h).open()
        ok = await first.register(f"Contact: {first.flow(1)}", "Supported: outbound, path")
        assert ok.status == 200
        assert ok.headers.get_all("Require") == ("outbound",)
        assert "outbound" in ok.headers.get_all("Supported")
        assert _flows(ok) == [(1, INSTANCE)]
        ok = await second.register(f"Contact: {second.flow(2)}", "Supported: outbound")
        assert _flows(ok) == [(1, INSTANCE), (2, INSTANCE)]
        first.close()

        async def one_flow_left() -> bool:
            return _flows(await second.register("Supported: outbound")) == [(2, INSTANCE)]

        await _until(one_flow_left)
        second.close()
        udp = Phone(h, h.uac)
        await _until(lambda: _answer_lists(udp, {}))

    with caplog.at_level(logging.INFO, "tollguard.switch.registrar"):
        run_scenario(scenario, sip=TCP_LISTEN)
    dropped = [r.getMessage() for r in caplog.records if "binding dropped" in r.getMessage()]
    assert len(dropped) == 2 and all("over tcp: connection closed" in m for m in dropped)


async def _answer_lists(phone: Phone, bound: dict[str, int]) -> bool:
    return _bound(await phone.register()) == bound


def test_a_flow_registered_again_over_a_new_connection_replaces_the_old(
    run_scenario: Run,
) -> None:
    """The same instance and reg-id from a new connection (the phone reconnected): one
    binding, over the new connection; the old connection is let go (idleness closes it)
    and its close takes nothing away."""

    async def scenario(h: Harness) -> None:
        old = await StreamPhone(h).open()
        assert _flows(await old.register(f"Contact: {old.flow(1)}")) == [(1, INSTANCE)]
        new = await StreamPhone(h).open()
        ok = await new.register(f"Contact: {new.flow(1)}")
        assert _flows(ok) == [(1, INSTANCE)]
        # No longer pinned: the switch closes the old connection once it is idle.
        assert await asyncio.wait_for(old.reader.read(), 5) == b""
        old.close()
        await asyncio.sleep(0.1)
        assert _flows(await new.register()) == [(1, INSTANCE)]
        new.close()

    run_scenario(scenario, sip={**TCP_LISTEN, "idle_timeout_s": 0.3})


def test_outbound_needs_the_switch_to_be_the_first_hop(run_scenario: Run) -> None:
    """Through another proxy (two Vias, and the switch takes no Path) a flow cannot be
    reached: 439 for a phone that supports outbound, else its reg-id is ignored."""

    async def scenario(h: Harness) -> None:
        phone = await StreamPhone(h).open()
        proxy_via = "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1"
        lines = (f"Contact: {phone.flow(1)}", proxy_via)
        refused = await phone.register(*lines, "Supported: outbound")
        assert (refused.status, refused.reason) == (439, "First Hop Lacks Outbound Support")
        plain = await phone.register(*lines)
        assert plain.status == 200
        assert plain.headers.get("Require") is None
        assert _flows(plain) == [(0, INSTANCE)]
        phone.close()

    run_scenario(scenario, sip=TCP_LISTEN)


def test_require_outbound_is_honoured_on_register_only(run_scenario: Run) -> None:
    async def scenario(h: Harness) -> None:
        phone = await StreamPhone(h).open()
        ok = await phone.register(f"Contact: {phone.flow(1)}", "Require: outbound")
        assert (ok.status, ok.headers.get("Require")) == (200, "outbound")
        options = await phone.send("OPTIONS", ["Require: outbound"])
        assert (options.status, options.headers.get("Unsupported")) == (420, "outbound")
        phone.close()

    run_scenario(scenario, sip=TCP_LISTEN)


@pytest.mark.parametrize(
    ("parameter", "reason"),
    [
        (";reg-id=0", "Bad Request - malformed reg-id"),
        (";reg-id=one", "Bad Request - malformed reg-id"),
        (";reg-id=2147483648", "Bad Request - malformed reg-id"),
        (';+sip.instance="<urn:x>\\"; evil"', "Bad Request - malformed +sip.instance"),
    ],
    ids=["zero", "word", "too-big", "instance-quote"],
)
def test_malformed_flows_are_refused(run_scenario: Run, parameter: str, reason: str) -> None:
    async def scenario(h: Harness) -> None:
        phone = await StreamPhone(h).open()
        contact = f'<sip:alice@10.0.0.5:5060>;+sip.instance="{INSTANCE}"'
        if "instance" in parameter:
            contact = f"<sip:alice@10.0.0.5:5060>{parameter};reg-id=1"
        else:
            contact += parameter
        refused = await phone.register(f"Contact: {contact}")
        assert (refused.status, refused.reason) == (400, reason)
        assert _flows(await phone.register()) == []
        phone.close()

    run_scenario(scenario, sip=TCP_LISTEN)


def test_another_account_cannot_take_over_a_flow(run_scenario: Run) -> None:
    """bob registers alice's instance and reg-id (he read them off the wire) over his
    own connection: alice's flow stays hers, on her connection; closing bob's connection
    takes only his binding away."""

    async def scenario(h: Harness) -> None:
        alice = await StreamPhone(h).open()
        assert _flows(await alice.register(f"Contact: {alice.flow(1)}")) == [(1, INSTANCE)]
        bob = await StreamPhone(h, user="bob").open()
        ok = await bob.register(f"Contact: {bob.flow(1)}")
        assert _flows(ok) == [(1, INSTANCE)]  # his own binding, nothing of alice's
        # bob cannot bind alice's address-of-record with his own password either.
        bob.aor = "alice"
        theft = await bob.register(f"Contact: {bob.flow(1)}")
        assert theft.status == 403
        bob.close()
        await asyncio.sleep(0.2)
        mine = await alice.register()
        assert mine.headers.get_all("Contact") == (
            f"<sip:alice@10.0.0.5:5061;transport=tcp>;expires={_bound(mine)[_uri(mine)]};q=1"
            f';+sip.instance="{INSTANCE}";reg-id=1',
        )
        alice.close()

    run_scenario(scenario, sip=TCP_LISTEN)


def _uri(response: Response) -> str:
    (value,) = response.headers.get_all("Contact")
    return value[1 : value.index(">")]


def test_a_binding_is_reached_only_over_its_own_connection(tmp_path: Path) -> None:
    """``Registrar.contacts`` (what a call to the account uses) never offers a binding
    whose connection has closed, even before the close is processed, so a stranger who
    connects later from the same address and port is never sent the account's calls."""
    b2bua, clock = clocked_b2bua(tmp_path)
    transports = Transports(lambda *_: None)
    b2bua.bind(lambda *_: None, {"udp": 5060}, connections=transports)
    registrar = b2bua.registrar
    wall = clock.wall()

    def binding(contact: str, transport: str, connection: int) -> Binding:
        return Binding(
            7, contact, wall + 600, "c", 1, ("198.51.100.7", 40000), transport, connection
        )

    over_udp = binding("sip:alice@10.0.0.5:5060", "udp", 0)
    over_tcp = binding("sip:alice@10.0.0.5:5062;transport=tcp", "tcp", 41)
    registrar.bindings.put(7, (over_udp, over_tcp))
    # Connection 41 is not open (the transports never had it): not offered.
    assert registrar.contacts(7) == (over_udp,)
    assert registrar.registered() == (2, 1)


def test_a_phone_that_stops_answering_pings_loses_its_binding(
    run_scenario: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """alice's phone never answers the OPTIONS pings: after the third unanswered one
    (sip.register_nat_ping_failures) its binding goes, logged. bob's answers each ping,
    with a 405 as some phones do (any final answer shows the phone is there), and keeps
    his; so does bob's second phone, which answers only now and then."""

    async def scenario(h: Harness) -> None:
        bob_peer = await _peer()
        alice, bob = Phone(h, h.uac), Phone(h, bob_peer, user="bob")
        assert _bound(await alice.register((f"<{A}>",), "600")) == {A: 600}
        bob_contact = "sip:bob@192.168.1.30:5062"
        assert _bound(await bob.register((f"<{bob_contact}>",), "600")) == {bob_contact: 600}
        for round_ in range(4):
            advance(h, 25)  # sip.register_nat_ping_s
            if round_ < 3:
                await h.uac.request("OPTIONS")  # pinged, and silent
            ping, addr = await bob_peer.request("OPTIONS")
            assert ping.call_id and str(ping.uri) == bob_contact
            if round_ != 1:  # bob misses one: the count starts again at his next answer
                bob_peer.send(make_response(ping, 405, to_tag="b"), addr)
            assert (await bob.register()).status == 200  # the answer is in
        # The fourth round found alice's third ping unanswered: gone, and not pinged.
        assert _bound(await alice.register()) == {}
        assert h.uac.nothing(lambda m: isinstance(m, Request) and m.method == "OPTIONS")
        assert _bound(await bob.register()) == {bob_contact: 500}
        assert bob_peer.transport is not None
        bob_peer.transport.close()

    with caplog.at_level(logging.INFO, "tollguard.switch.registrar"):
        run_scenario(scenario, clock=True)
    dropped = [r.getMessage() for r in caplog.records if "binding dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert dropped[0].startswith(f"binding dropped: account 1 at {A} from 127.0.0.1:")
    assert dropped[0].endswith("over udp: 3 pings in a row unanswered")


def test_a_forged_answer_to_a_ping_keeps_nobody_alive(run_scenario: Run) -> None:
    """An answer from another address than the phone's, or with a guessed Call-ID, does
    not count: a stranger cannot keep a vanished phone's binding (and its calls) alive."""

    async def scenario(h: Harness) -> None:
        stranger = await _peer("127.0.0.9")
        alice = Phone(h, h.uac)
        assert _bound(await alice.register((f"<{A}>",), "600")) == {A: 600}
        for _ in range(3):
            advance(h, 25)
            ping, _ = await h.uac.request("OPTIONS")
            stranger.send(make_response(ping, 200, to_tag="x"), h.switch)
            guessed = make_response(ping, 200, to_tag="y").to_bytes()
            h.uac.send(guessed.replace(ping.call_id.encode(), b"guessed-call-id"), h.switch)
            await _processed_register(h, alice)
        advance(h, 25)
        assert _bound(await alice.register()) == {}
        assert stranger.transport is not None
        stranger.transport.close()

    run_scenario(scenario, clock=True)


class StunPeer(Peer):
    """A UDP phone that also keeps the STUN answers it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.stun: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data[:1] in (b"\x00", b"\x01"):
            self.stun.append(data)
            return
        super().datagram_received(data, addr)


STUN_REQUEST = bytes.fromhex("000100002112a442b7e7a701bc34d686fa87dfae")


def test_stun_keep_alives_are_answered_for_registered_phones_only(run_scenario: Run) -> None:
    """RFC 5626 §4.4.2: a phone registered over UDP sends STUN Binding requests to the
    SIP port and learns its public address; a stranger's get no answer (the port is no
    reflector), nor do the phone's once its binding is gone."""

    async def scenario(h: Harness) -> None:
        loop = asyncio.get_running_loop()
        _, phone_peer = await loop.create_datagram_endpoint(StunPeer, local_addr=("127.0.0.1", 0))
        _, stranger = await loop.create_datagram_endpoint(StunPeer, local_addr=("127.0.0.9", 0))
        phone = Phone(h, phone_peer)
        stranger.send(STUN_REQUEST, h.switch)
        phone_peer.send(STUN_REQUEST, h.switch)  # not registered yet
        assert _bound(await phone.register((f"<{A}>",), "600")) == {A: 600}
        assert phone_peer.stun == []
        phone_peer.send(STUN_REQUEST, h.switch)
        await _processed_register(h, phone)
        (answer,) = phone_peer.stun
        assert answer[:2] == b"\x01\x01" and answer[8:20] == STUN_REQUEST[8:20]
        port = phone_peer.port ^ 0x2112
        # XOR-MAPPED-ADDRESS: IPv4, the phone's port and 127.0.0.1, each XOR the cookie.
        assert answer[-8:] == bytes([0, 1]) + port.to_bytes(2) + bytes.fromhex("5e12a443")
        assert _bound(await phone.register(("*",), "0")) == {}
        phone_peer.send(STUN_REQUEST, h.switch)
        await _processed_register(h, phone)
        assert (len(phone_peer.stun), stranger.stun) == (1, [])
        for peer in (phone_peer, stranger):
            assert peer.transport is not None
            peer.transport.close()

    run_scenario(scenario)


def test_a_replayed_register_moves_no_flow(run_scenario: Run) -> None:
    """A REGISTER captured off the wire (credentials and all) and replayed over the
    attacker's own connection: its nonce count is used, so it is only challenged again;
    alice's flow stays on her connection, and closing the attacker's takes nothing."""

    async def scenario(h: Harness) -> None:
        alice = await StreamPhone(h).open()
        assert _flows(await alice.register(f"Contact: {alice.flow(1)}")) == [(1, INSTANCE)]
        captured = alice.sent
        attacker = await StreamPhone(h).open()
        replayed = await attacker.replay(captured)
        assert replayed.status == 401
        attacker.close()
        await asyncio.sleep(0.2)
        assert _flows(await alice.register()) == [(1, INSTANCE)]
        alice.close()

    run_scenario(scenario, sip=TCP_LISTEN)
