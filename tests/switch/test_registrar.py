"""The registrar on a running switch: digest, bindings, expiry, the path of each binding."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from tollguard.sip import parse_message
from tollguard.sip.digest import authorization
from tollguard.sip.headers import Headers
from tollguard.sip.message import Request, Response
from tollguard.sip.uri import parse_uri

from .conftest import PASSWORD, Harness, Peer
from .test_b2bua import Run, advance

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
        found[uri.lstrip("<")] = int(params)
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
