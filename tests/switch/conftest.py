"""Loopback peers, a sample plan and a running switch for the B2BUA tests.

The customer (UAC) and the provider gateways (UAS) are tiny UDP endpoints that build
their messages with :mod:`tollguard.sip`; the switch runs in the test's event loop with
an in-memory plan source and a list-collecting CDR sink. Nothing sleeps: tests await
the next matching message (or a CDR) with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tollguard.config import CdrSettings, MediaSettings, Settings, SipSettings
from tollguard.domain.cdr import Cdr
from tollguard.domain.plan import (
    Account,
    AclEntry,
    Customer,
    Gateway,
    NumberRules,
    PlanData,
    Provider,
    Rate,
    RateCard,
)
from tollguard.sip import parse_message
from tollguard.sip.digest import ha1
from tollguard.sip.headers import Headers
from tollguard.sip.message import Request, Response, make_response
from tollguard.sip.uri import parse_uri
from tollguard.switch.server import LiveStores, run_switch

from .clock import ManualClock

REALM = "tollguard"
PASSWORD = "correct horse"
TECH_PREFIX = "777"
TIMEOUT = 10.0
STARTUP_TIMEOUT = 30.0

_ids = itertools.count(1)


class Peer(asyncio.DatagramProtocol):
    """A UDP SIP endpoint on 127.0.0.1 that queues what it receives, parsed."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.inbox: list[tuple[Request | Response, tuple[str, int]]] = []
        self.raw: list[bytes] = []
        self._arrived = asyncio.Event()
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.raw.append(data)
        self.inbox.append((parse_message(data), (str(addr[0]), int(addr[1]))))
        self._arrived.set()

    def send(self, message: Request | Response | bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        data = message if isinstance(message, bytes) else message.to_bytes()
        self.transport.sendto(data, addr)

    async def expect(
        self,
        predicate: Callable[[Request | Response], bool],
        timeout: float = TIMEOUT,
    ) -> tuple[Request | Response, tuple[str, int]]:
        """The first queued message matching ``predicate`` (removed from the queue)."""
        async with asyncio.timeout(timeout):
            while True:
                for index, (message, addr) in enumerate(self.inbox):
                    if predicate(message):
                        del self.inbox[index]
                        return message, addr
                self._arrived.clear()
                await self._arrived.wait()

    async def request(
        self, method: str, timeout: float = TIMEOUT
    ) -> tuple[Request, tuple[str, int]]:
        message, addr = await self.expect(
            lambda m: isinstance(m, Request) and m.method == method, timeout
        )
        assert isinstance(message, Request)
        return message, addr

    async def response(
        self, status: int | None = None, method: str = "INVITE", timeout: float = TIMEOUT
    ) -> Response:
        message, _ = await self.expect(
            lambda m: (
                isinstance(m, Response)
                and m.cseq.method == method
                and (status is None or m.status == status)
                and (status is not None or m.status >= 200)
            ),
            timeout,
        )
        assert isinstance(message, Response)
        return message

    def nothing(self, predicate: Callable[[Request | Response], bool]) -> bool:
        return not any(predicate(m) for m, _ in self.inbox)


def request(
    method: str,
    uri: str,
    *,
    local_port: int,
    call_id: str,
    from_tag: str,
    cseq: int = 1,
    to: str | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    branch: str | None = None,
) -> Request:
    """A request from a test peer at 127.0.0.1:``local_port``."""
    headers = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch or f'z9hG4bKt{next(_ids)}'}"),
        ("Max-Forwards", "70"),
        ("From", f'"Alice" <sip:alice@127.0.0.1:{local_port}>;tag={from_tag}'),
        ("To", to or f"<{uri}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Contact", f"<sip:alice@127.0.0.1:{local_port}>"),
        ("User-Agent", "test-uac"),
        *extra,
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return Request(method, parse_uri(uri), Headers(headers), body)


SDP_OFFER = (
    b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
SDP_ANSWER = SDP_OFFER.replace(b"alice", b"gw").replace(b"40000", b"40002")


@dataclass
class Dialog:
    """The customer side of one call, as the UAC sees it."""

    uac: Peer
    switch: tuple[str, int]
    call_id: str
    from_tag: str
    uri: str
    invite: Request
    to: str = ""
    cseq: int = 1

    def in_dialog(self, method: str, **kwargs: object) -> Request:
        self.cseq += 1
        return request(
            method,
            self.uri,
            local_port=self.uac.port,
            call_id=self.call_id,
            from_tag=self.from_tag,
            cseq=self.cseq,
            to=self.to,
            **kwargs,  # type: ignore[arg-type]
        )

    def ack(self, response: Response) -> None:
        self.to = response.headers.get("To") or ""
        ack = request(
            "ACK",
            self.uri,
            local_port=self.uac.port,
            call_id=self.call_id,
            from_tag=self.from_tag,
            cseq=self.invite.cseq.seq,
            to=self.to,
        )
        self.uac.send(ack, self.switch)

    def cancel(self, extra: tuple[tuple[str, str], ...] = ()) -> None:
        cancel = request(
            "CANCEL",
            self.uri,
            local_port=self.uac.port,
            call_id=self.call_id,
            from_tag=self.from_tag,
            cseq=self.invite.cseq.seq,
            branch=self.invite.vias[0].branch,
            extra=extra,
        )
        self.uac.send(cancel, self.switch)


def answer(gw: Peer, invite: Request, addr: tuple[str, int], status: int, **kw: object) -> str:
    """Send ``status`` for ``invite`` from a gateway; returns the To tag used."""
    tag = f"gw{next(_ids)}"
    headers: list[tuple[str, str]] = [("Contact", f"<sip:gw@127.0.0.1:{gw.port}>")]
    headers += [("Server", "test-gw")]
    headers += list(kw.pop("headers", ()))  # type: ignore[call-overload]
    body = kw.pop("body", b"")
    assert isinstance(body, bytes)
    if body:
        headers.append(("Content-Type", "application/sdp"))
    response = make_response(invite, status, to_tag=tag, headers=headers, body=body)
    gw.send(response, addr)
    return tag


class MemorySource:
    """An in-memory :class:`PlanSource` whose data tests can replace."""

    def __init__(self, data: PlanData, loop: asyncio.AbstractEventLoop) -> None:
        self._data = data
        self.loads = 0
        self.version_calls = 0
        self.lock = threading.Lock()
        self._loop = loop
        self._polled = asyncio.Event()
        self._loaded: PlanData | None = None

    def current_version(self) -> int:
        with self.lock:
            self.version_calls += 1
            self._loop.call_soon_threadsafe(self._polled.set)
            return self._data.version

    async def swap(self, data: PlanData, timeout: float = 5.0) -> None:
        """Publish ``data`` and return once the switch runs on it.

        The loader polls, loads, swaps, then polls again: the first poll after the
        load proves the swap happened.
        """
        self.replace(data)
        async with asyncio.timeout(timeout):
            while True:
                self._polled.clear()
                await self._polled.wait()
                with self.lock:
                    if self._loaded is data:
                        return

    def load(self) -> PlanData:
        with self.lock:
            self.loads += 1
            self._loaded = self._data
            return self._data

    def replace(self, data: PlanData) -> None:
        with self.lock:
            self._data = data


class ListSink:
    """A :class:`CdrSink` collecting CDRs; tests await them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.cdrs: list[Cdr] = []
        self._loop = loop
        self._event = asyncio.Event()

    def write_batch(self, cdrs: list[Cdr]) -> None:
        self.cdrs.extend(cdrs)
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, count: int = 1, timeout: float = TIMEOUT) -> list[Cdr]:
        async with asyncio.timeout(timeout):
            while len(self.cdrs) < count:
                self._event.clear()
                await self._event.wait()
        return self.cdrs


def plan_data(gw_ports: tuple[int, int], version: int = 1, **customer: object) -> PlanData:
    sell = RateCard(
        1,
        "retail",
        rates=(
            Rate("44", "United Kingdom", Decimal("0.0200"), initial_increment=1, next_increment=1),
        ),
    )
    cost1 = RateCard(
        2,
        "carrier-a",
        rates=(Rate("44", "UK", Decimal("0.0050"), initial_increment=1, next_increment=1),),
    )
    cost2 = RateCard(
        3,
        "carrier-b",
        rates=(Rate("44", "UK", Decimal("0.0080"), initial_increment=1, next_increment=1),),
    )
    cust = Customer(
        1,
        "acme",
        sell_card_id=1,
        number_rules=NumberRules(country_code="44"),
    )
    cust = replace(cust, **customer)  # type: ignore[arg-type]
    return PlanData(
        version=version,
        customers=(cust,),
        accounts=(
            Account(
                1,
                1,
                "alice",
                ha1("alice", REALM, PASSWORD, "MD5"),
                ha1("alice", REALM, PASSWORD, "SHA-256"),
                allow_md5=True,
            ),
            Account(
                2,
                1,
                "bob",
                ha1("bob", REALM, PASSWORD, "MD5"),
                ha1("bob", REALM, PASSWORD, "SHA-256"),
                allow_md5=False,
            ),
        ),
        acl=(AclEntry(1, 1, ipaddress.ip_network("127.0.0.1/32"), tech_prefix=TECH_PREFIX),),
        providers=(
            Provider(1, "carrier-a", cost_card_id=2),
            Provider(2, "carrier-b", cost_card_id=3),
        ),
        gateways=(
            Gateway(1, 1, "gw-a", "127.0.0.1", gw_ports[0]),
            Gateway(2, 2, "gw-b", "127.0.0.1", gw_ports[1]),
        ),
        rate_cards=(sell, cost1, cost2),
    )


def write_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 as ``cert.pem``/``key.pem`` in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tollguard.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "cert.pem"


@dataclass
class Harness:
    uac: Peer
    gw1: Peer
    gw2: Peer
    switch: tuple[str, int]
    source: MemorySource
    sink: ListSink
    stop: asyncio.Event
    task: asyncio.Task[None]
    ready: list[str] = field(default_factory=list)
    # Set when the scenario runs on a manual clock: timers fire only when it moves.
    clock: ManualClock | None = None

    def invite(
        self,
        number: str = f"{TECH_PREFIX}442071234567",
        extra: tuple[tuple[str, str], ...] = (),
        call_id: str | None = None,
    ) -> Dialog:
        call_id = call_id or f"call-{next(_ids)}@customer.example"
        uri = f"sip:{number}@127.0.0.1:{self.switch[1]}"
        invite = request(
            "INVITE",
            uri,
            local_port=self.uac.port,
            call_id=call_id,
            from_tag=f"a{next(_ids)}",
            extra=extra,
            body=SDP_OFFER,
        )
        self.uac.send(invite, self.switch)
        return Dialog(self.uac, self.switch, call_id, invite.from_.tag or "", uri, invite)

    async def connected(
        self, dialog: Dialog | None = None
    ) -> tuple[Dialog, Request, tuple[str, int]]:
        """A call answered by gateway 1 and acknowledged on both legs."""
        dialog = dialog or self.invite()
        invite, addr = await self.gw1.request("INVITE")
        answer(self.gw1, invite, addr, 180)
        await self.uac.response(180)
        answer(self.gw1, invite, addr, 200, body=SDP_ANSWER)
        ok = await self.uac.response(200)
        dialog.ack(ok)
        await self.gw1.request("ACK")
        return dialog, invite, addr


async def _endpoint() -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    return peer


def media_settings(**media: object) -> MediaSettings:
    """The embedded relay on loopback, its engine in a thread, ports from a free range."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        low = 20000 + probe.getsockname()[1] % 40000 // 2 * 2
    base = MediaSettings(
        relay_host="127.0.0.1", relay_process=False, port_min=low, port_max=low + 99
    )
    return replace(base, **media)  # type: ignore[arg-type]


def make_settings(
    tmp_path: Path, media: dict[str, object] | None = None, **sip: object
) -> Settings:
    # A mixed deployment: MD5 offered after SHA-256, for alice only (bob is SHA-256 only).
    base = SipSettings(
        listen=("udp:127.0.0.1:0",),
        advertised_host="127.0.0.1",
        digest_algorithms=("SHA-256", "MD5"),
        gateway_setup_timeout_s=1.0,
        gateway_ring_timeout_s=5.0,
        t1=0.1,
        t2=0.4,
    )
    return Settings(
        data_dir=tmp_path,
        sip=replace(base, **sip),  # type: ignore[arg-type]
        cdr=CdrSettings(batch_size=1, flush_interval_s=0.05),
        media=media_settings(**(media or {})),
    )


Scenario = Callable[["Harness"], Awaitable[None]]


@contextlib.asynccontextmanager
async def running_switch(
    tmp_path: Path,
    sip: dict[str, object],
    customer: dict[str, object],
    clock: ManualClock | None = None,
    *,
    billing: dict[str, object] | None = None,
    live_stores: LiveStores | None = None,
    media: dict[str, object] | None = None,
) -> AsyncIterator[Harness]:
    uac, gw1, gw2 = await _endpoint(), await _endpoint(), await _endpoint()
    source = MemorySource(plan_data((gw1.port, gw2.port), **customer), asyncio.get_running_loop())
    sink = ListSink(asyncio.get_running_loop())
    stop = asyncio.Event()
    ready = asyncio.Event()
    lines: list[str] = []

    def on_ready(items: list[str]) -> None:
        lines.extend(items)
        ready.set()

    settings = make_settings(tmp_path, media, **sip)
    if billing:
        settings = replace(settings, billing=replace(settings.billing, **billing))  # type: ignore[arg-type]
    task = asyncio.create_task(
        run_switch(
            settings,
            source,
            sink,
            on_ready=on_ready,
            stop=stop,
            settle_heap=False,
            scheduler=clock,
            wall_clock=clock.wall if clock is not None else time.time,
            live_stores=live_stores,
        )
    )
    waiter = asyncio.create_task(ready.wait())
    try:
        # A generous bound: starting the switch (and the relay's engine) on a shared,
        # busy machine can take seconds; no test measures it.
        async with asyncio.timeout(STARTUP_TIMEOUT):
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        stop.set()
        task.cancel()
        for peer in (uac, gw1, gw2):
            if peer.transport is not None:
                peer.transport.close()  # no socket left for a later test to trip over
        raise
    waiter.cancel()
    if task.done():
        task.result()
    port = int(lines[0].rsplit(":", 1)[1])
    h = Harness(uac, gw1, gw2, ("127.0.0.1", port), source, sink, stop, task, lines, clock)
    try:
        yield h
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task
        for peer in (uac, gw1, gw2):
            assert peer.transport is not None
            peer.transport.close()


@pytest.fixture
def run_scenario(tmp_path: Path) -> Callable[..., None]:
    """Run ``scenario(harness)`` against a fresh switch in a new event loop."""

    def run(
        scenario: Scenario,
        *,
        sip: dict[str, object] | None = None,
        customer: dict[str, object] | None = None,
        clock: bool = False,
        billing: dict[str, object] | None = None,
        live_stores: LiveStores | None = None,
        media: dict[str, object] | None = None,
    ) -> None:
        manual = ManualClock() if clock else None

        async def main() -> None:
            async with running_switch(
                tmp_path,
                sip or {},
                customer or {},
                manual,
                billing=billing,
                live_stores=live_stores,
                media=media,
            ) as harness:
                await scenario(harness)

        asyncio.run(main())

    return run
