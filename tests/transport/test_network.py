"""UDP, TCP and TLS transports over real loopback sockets (no sleeps: events are awaited)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import math
import resource
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tollguard.sip import Response, parse_message
from tollguard.transport import (
    Listener,
    ListenError,
    SendError,
    StreamLimits,
    Transports,
    client_context,
    loop_factory,
    server_context,
    source_key,
)
from tollguard.transport.network import due

MESSAGE = (
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c1\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
)


@dataclass(frozen=True)
class Addr:
    transport: str
    host: str
    port: int


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, tuple[str, int], str, int]] = []
        self._event = asyncio.Event()

    def __call__(self, data: bytes, source: tuple[str, int], transport: str, conn: int) -> None:
        self.items.append((data, source, transport, conn))
        self._event.set()

    async def next(self, timeout: float = 3.0) -> tuple[bytes, tuple[str, int], str, int]:
        async with asyncio.timeout(timeout):
            while not self.items:
                self._event.clear()
                await self._event.wait()
        return self.items.pop(0)


def _run(main: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_udp_round_trip_reports_bound_port() -> None:
    async def main() -> None:
        server_inbox, client_inbox = Inbox(), Inbox()
        server, client = Transports(server_inbox), Transports(client_inbox)
        (listener,) = await server.start([Addr("udp", "127.0.0.1", 0)])
        (client_listener,) = await client.start([Addr("udp", "127.0.0.1", 0)])
        assert listener.port != 0
        assert str(listener) == f"udp:127.0.0.1:{listener.port}"
        client.send(MESSAGE, "udp", ("127.0.0.1", listener.port))
        data, source, transport, conn = await server_inbox.next()
        assert (data, transport, conn) == (MESSAGE, "udp", 0)
        assert source == ("127.0.0.1", client_listener.port)  # sent from the listening port
        server.send(b"SIP/2.0 200 OK\r\n" + b"x" * 20, "udp", source)
        reply, *_ = await client_inbox.next()
        assert reply.startswith(b"SIP/2.0 200 OK")
        await server.close()
        await client.close()

    _run(main)


def test_udp_socket_is_not_shared_by_default() -> None:
    async def main() -> None:
        server = Transports(Inbox())
        (listener,) = await server.start([Addr("udp", "127.0.0.1", 0)])
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(OSError):
            probe.bind(("127.0.0.1", listener.port))
        probe.close()
        await server.close()

    _run(main)


def test_udp_keepalives_and_oversized_noise_are_ignored() -> None:
    async def main() -> None:
        inbox = Inbox()
        server = Transports(inbox)
        (listener,) = await server.start([Addr("udp", "127.0.0.1", 0)])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(b"\r\n\r\n", ("127.0.0.1", listener.port))
        sock.sendto(MESSAGE, ("127.0.0.1", listener.port))
        data, *_ = await inbox.next()
        assert data == MESSAGE
        sock.close()
        await server.close()

    _run(main)


@pytest.mark.parametrize("transport", ["tcp", "tls"], ids=["tcp", "tls"])
def test_stream_framing_and_reply_on_the_same_connection(
    transport: str, certificate: tuple[Path, Path]
) -> None:
    async def main() -> None:
        cert, key = certificate
        server_inbox, client_inbox = Inbox(), Inbox()
        server = Transports(server_inbox, server_ssl=server_context(cert, key))
        client = Transports(client_inbox, client_ssl=client_context(cafile=cert))
        (listener,) = await server.start([Addr(transport, "127.0.0.1", 0)])
        destination = ("127.0.0.1", listener.port)
        # Two messages in one write, then one split in two: framing by Content-Length.
        client.send(MESSAGE + MESSAGE, transport, destination)
        client.send(MESSAGE, transport, destination)
        received = [await server_inbox.next() for _ in range(3)]
        assert [item[0] for item in received] == [MESSAGE] * 3
        connections = {item[3] for item in received}
        assert len(connections) == 1  # the client reused its connection
        _, source, name, conn = received[0]
        assert name == transport
        server.send(MESSAGE, transport, source, conn)
        reply, _, _, client_conn = await client_inbox.next()
        assert reply == MESSAGE
        assert client_conn != 0
        await client.close()
        await server.close()

    _run(main)


def test_bad_framing_closes_the_connection() -> None:
    async def main() -> None:
        inbox = Inbox()
        server = Transports(inbox)
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(3):
            assert await reader.read() == b""  # closed by the switch
        writer.close()
        assert inbox.items == []
        await server.close()

    _run(main)


def test_tls_client_rejects_an_unverified_certificate(certificate: tuple[Path, Path]) -> None:
    async def main() -> None:
        cert, key = certificate
        errors: list[tuple[str, tuple[str, int]]] = []
        done = asyncio.Event()

        def on_error(transport: str, address: tuple[str, int]) -> None:
            errors.append((transport, address))
            done.set()

        server = Transports(Inbox(), server_ssl=server_context(cert, key))
        client = Transports(Inbox(), client_ssl=client_context(), on_send_error=on_error)
        (listener,) = await server.start([Addr("tls", "127.0.0.1", 0)])
        client.send(MESSAGE, "tls", ("127.0.0.1", listener.port))
        async with asyncio.timeout(3):
            await done.wait()
        assert errors == [("tls", ("127.0.0.1", listener.port))]
        await client.close()
        await server.close()

    _run(main)


def test_tls_listener_needs_a_certificate_and_udp_send_needs_a_listener() -> None:
    async def main() -> None:
        transports = Transports(Inbox())
        with pytest.raises(ListenError, match=r"tls:127\.0\.0\.1:0"):
            await transports.start([Addr("tls", "127.0.0.1", 0)])
        with pytest.raises(SendError):
            transports.send(MESSAGE, "udp", ("127.0.0.1", 9))
        await transports.close()

    _run(main)


def test_client_context_without_verification() -> None:
    context = client_context(verify=False)
    assert context.verify_mode is ssl.CERT_NONE
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert Listener("tcp", "::1", 5).__str__() == "tcp:[::1]:5"


def test_connections_over_the_limit_are_refused() -> None:
    async def main() -> None:
        inbox = Inbox()
        server = Transports(inbox, limits=StreamLimits(max_connections=1))
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        _, first = await asyncio.open_connection("127.0.0.1", listener.port)
        first.write(MESSAGE)
        await inbox.next()  # the first connection is up and registered
        reader, second = await asyncio.open_connection("127.0.0.1", listener.port)
        async with asyncio.timeout(3):
            try:
                rest = await reader.read()
            except ConnectionResetError:  # aborted: RST rather than FIN
                rest = b""
        assert rest == b""
        for writer in (first, second):
            writer.close()
        await server.close()

    _run(main)


# -- limits -------------------------------------------------------------------------------

INVITE_HEAD = (
    b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKbig\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=a1\r\n"
    b"To: <sip:bob@127.0.0.1>\r\n"
    b"Call-ID: big-1@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
)


async def _until_closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (a reset ends it too)."""
    received = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk


async def _open(
    port: int, source: str = "127.0.0.1", context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1",
        port,
        local_addr=(source, 0),
        ssl=context,
        server_hostname="127.0.0.1" if context else None,
    )


async def _refused(port: int, source: str) -> bool:
    """Whether the server drops a new connection from ``source`` without a word."""
    try:
        reader, writer = await _open(port, source)
    except ConnectionResetError:
        return True
    try:
        return await _until_closed(reader) == b""
    finally:
        writer.close()


async def _answered(inbox: Inbox, port: int, source: str = "127.0.0.1") -> bool:
    """Whether a client from ``source`` gets a message through to the server."""
    try:
        _, writer = await _open(port, source)
    except OSError:
        return False
    try:
        writer.write(MESSAGE)
        data, peer, *_ = await inbox.next()
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
    return data == MESSAGE and peer[0] == source


@pytest.mark.parametrize("transport", ["tcp", "tls"], ids=["tcp", "tls"])
def test_oversized_header_line_gets_513_then_the_connection_closes(
    transport: str, certificate: tuple[Path, Path]
) -> None:
    # Issue 9, defect 6: a 1 MB header line got the connection reset and no answer.
    async def main() -> None:
        cert, key = certificate
        inbox = Inbox()
        # After answering, the switch reads and drops what the peer still sends for
        # message_timeout_s, then closes (over TCP it half-closes at once).
        limits = StreamLimits(message_timeout_s=0.5)
        server = Transports(inbox, server_ssl=server_context(cert, key), limits=limits)
        try:
            (listener,) = await server.start([Addr(transport, "127.0.0.1", 0)])
            context = client_context(cafile=cert) if transport == "tls" else None
            reader, writer = await _open(listener.port, context=context)
            writer.write(INVITE_HEAD + b"X-Filler: " + b"a" * 1_000_000 + b"\r\n\r\n")

            async def drain() -> None:
                with contextlib.suppress(OSError):
                    await writer.drain()

            sending = asyncio.create_task(drain())
            answer = await _until_closed(reader)
            await sending
            writer.close()
        finally:
            await server.close()
        assert answer.startswith(b"SIP/2.0 513 Message Too Large\r\n"), answer[:200]
        response = parse_message(answer)
        assert isinstance(response, Response)
        assert response.call_id == "big-1@127.0.0.1"
        assert str(response.cseq) == "1 INVITE"
        assert response.to.tag  # RFC 3261 §8.2.6.2
        assert inbox.items == []

    _run(main)


def test_oversized_message_without_readable_headers_is_not_answered() -> None:
    async def main() -> None:
        server = Transports(Inbox())
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        reader, writer = await _open(listener.port)
        # No Via: nowhere to send an answer (RFC 3261 §18.2.2).
        writer.write(b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nX: " + b"a" * 100_000)
        assert await _until_closed(reader) == b""
        writer.close()
        await server.close()

    _run(main)


def test_conflicting_content_length_is_answered_400() -> None:
    async def main() -> None:
        server = Transports(Inbox())
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        reader, writer = await _open(listener.port)
        writer.write(INVITE_HEAD + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nbody")
        answer = await _until_closed(reader)
        assert answer.startswith(b"SIP/2.0 400 Bad Request - conflicting Content-Length")
        writer.close()
        await server.close()

    _run(main)


FLOOD = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
held, failed = [], 0
for _ in range(count):
    sock = socket.socket()
    sock.bind(("127.0.0.9", 0))
    sock.settimeout(10)
    try:
        sock.connect(("127.0.0.1", port))
    except OSError:
        failed += 1
    held.append(sock)
print(len(held) - failed, flush=True)
sys.stdin.read()
"""


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def test_ten_thousand_idle_connections_from_one_source_do_not_lock_out_another() -> None:
    # Issue 9, defect 2, with the default limits: 10,000 idle connections from
    # 127.0.0.9 made a client on 127.0.0.1 fail with "connection limit reached".
    # The flood runs in a child process so that its sockets do not count against
    # this process's descriptors; this one holds at most the per-source cap of them.
    defaults = StreamLimits()
    assert defaults.max_connections_per_source * 10 <= defaults.max_connections
    _raise_fd_limit(12_000)

    async def main() -> None:
        inbox = Inbox()
        server = Transports(inbox)
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        flood = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            FLOOD,
            str(listener.port),
            "10000",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert flood.stdout is not None and flood.stdin is not None
        try:
            async with asyncio.timeout(120):
                connected = int(await flood.stdout.readline())
            assert connected == 10_000  # the kernel completed every handshake
            # Everything the flood opened has been accepted (or refused) by now:
            # the legitimate client queues behind it.
            assert await _answered(inbox, listener.port, "127.0.0.1")
            assert server.connections_from("127.0.0.9") == defaults.max_connections_per_source
            assert server.inbound_connections <= defaults.max_connections_per_source + 1
        finally:
            flood.stdin.close()
            await flood.wait()
        await server.close()

    _run(main)


async def _eventually(predicate: Callable[[], bool]) -> None:
    """Wait for the server to catch up with what the peers did (a close, an accept)."""
    async with asyncio.timeout(3):
        while not predicate():
            await asyncio.sleep(0.01)


async def _hold(inbox: Inbox, port: int, source: str) -> asyncio.StreamWriter:
    """A connection from ``source`` that the server has accepted and heard from."""
    _, writer = await _open(port, source)
    writer.write(MESSAGE)
    await inbox.next()
    return writer


def test_per_source_and_global_limits(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        inbox = Inbox()
        limits = StreamLimits(max_connections=6, max_connections_per_source=3)
        server = Transports(inbox, limits=limits)
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        port = listener.port
        held = [await _hold(inbox, port, "127.0.0.9") for _ in range(3)]
        assert server.connections_from("127.0.0.9") == 3
        # The fourth from 127.0.0.9 is refused; 127.0.0.1 still gets in.
        assert not await _answered(inbox, port, "127.0.0.9")
        assert await _answered(inbox, port, "127.0.0.1")
        await _eventually(lambda: server.inbound_connections == 3)
        # Two more sources fill the global limit of 6 ...
        held += [await _hold(inbox, port, "127.0.0.10") for _ in range(3)]
        assert server.inbound_connections == 6
        assert not await _answered(inbox, port, "127.0.0.11")
        # ... and a closed connection frees its slot.
        held[0].close()
        await _eventually(lambda: server.inbound_connections == 5)
        assert await _answered(inbox, port, "127.0.0.11")
        for writer in held:
            writer.close()
        await server.close()

    caplog.set_level("WARNING", logger="tollguard.security")
    _run(main)
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert any(
        line.startswith("connection refused: ip=127.0.0.9 ")
        and line.endswith("transport=tcp reason=per-source-limit")
        for line in lines
    )
    assert any(line.endswith("reason=connection-limit") for line in lines)


def test_tls_connections_count_from_before_their_handshake(
    certificate: tuple[Path, Path],
) -> None:
    async def main() -> None:
        cert, key = certificate
        limits = StreamLimits(max_connections_per_source=2)
        inbox = Inbox()
        server = Transports(inbox, server_ssl=server_context(cert, key), limits=limits)
        try:
            (listener,) = await server.start([Addr("tls", "127.0.0.1", 0)])
            # Two TCP connections that never say ClientHello hold 127.0.0.9's slots.
            silent = [await _open(listener.port, "127.0.0.9") for _ in range(2)]
            await _eventually(lambda: server.connections_from("127.0.0.9") == 2)
            assert await _refused(listener.port, "127.0.0.9")  # before any handshake
            # Another source completes its handshake and is heard.
            context = client_context(cafile=cert)
            _, tls_writer = await _open(listener.port, "127.0.0.1", context)
            tls_writer.write(MESSAGE)
            data, *_ = await inbox.next()
            assert data == MESSAGE
            for _, silent_writer in silent:
                silent_writer.close()
            tls_writer.close()
        finally:
            await server.close()

    _run(main)


def test_outgoing_connections_have_their_own_budget() -> None:
    async def main() -> None:
        gateway_inbox = Inbox()
        gateways = Transports(gateway_inbox)
        (gw1, gw2) = await gateways.start(
            [Addr("tcp", "127.0.0.1", 0), Addr("tcp", "127.0.0.1", 0)]
        )
        errors: list[tuple[str, tuple[str, int]]] = []
        limits = StreamLimits(max_connections=1, max_outgoing_connections=1)
        inbox = Inbox()
        switch = Transports(inbox, limits=limits, on_send_error=lambda t, a: errors.append((t, a)))
        (listener,) = await switch.start([Addr("tcp", "127.0.0.1", 0)])
        # The incoming limit is reached...
        assert await _answered(inbox, listener.port)
        _, customer = await _open(listener.port)
        assert switch.inbound_connections == 1
        # ... yet a gateway can still be reached.
        switch.send(MESSAGE, "tcp", ("127.0.0.1", gw1.port))
        assert (await gateway_inbox.next())[0] == MESSAGE
        assert switch.outgoing_connections == 1
        # A second gateway would exceed the outgoing budget: refused, and reported.
        with pytest.raises(SendError, match="outgoing connection limit"):
            switch.send(MESSAGE, "tcp", ("127.0.0.1", gw2.port))
        await _eventually(lambda: bool(errors))
        assert errors == [("tcp", ("127.0.0.1", gw2.port))]
        customer.close()
        await switch.close()
        await gateways.close()

    _run(main)


FAST = 0.05


@pytest.mark.parametrize(
    ("limits", "first", "then", "reason"),
    [
        (StreamLimits(first_message_timeout_s=FAST), b"", b"", "no-message"),
        # Keep-alives are not a message.
        (StreamLimits(first_message_timeout_s=FAST), b"\r\n\r\n", b"", "no-message"),
        (StreamLimits(message_timeout_s=FAST), MESSAGE, MESSAGE[:30], "message-incomplete"),
        (StreamLimits(message_timeout_s=FAST), b"", MESSAGE[:30], "message-incomplete"),
        (StreamLimits(idle_timeout_s=FAST), MESSAGE, b"", None),
    ],
    ids=["silent", "only-pings", "slow-second-message", "slow-first-message", "idle"],
)
def test_connections_are_closed_on_timeouts(
    limits: StreamLimits,
    first: bytes,
    then: bytes,
    reason: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        inbox = Inbox()
        server = Transports(inbox, limits=limits)
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        reader, writer = await _open(listener.port)
        writer.write(first)
        writer.write(then)
        rest = await _until_closed(reader)
        assert rest.strip(b"\r\n") == b""  # pongs at most
        writer.close()
        await _eventually(lambda: server.inbound_connections == 0)
        await server.close()

    caplog.set_level("DEBUG")
    _run(main)
    security = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    if reason is None:
        assert security == []
    else:
        assert any(line.endswith(f"transport=tcp reason={reason}") for line in security)


def test_tls_handshake_timeout(certificate: tuple[Path, Path]) -> None:
    async def main() -> None:
        cert, key = certificate
        limits = StreamLimits(tls_handshake_timeout_s=FAST)
        server = Transports(Inbox(), server_ssl=server_context(cert, key), limits=limits)
        try:
            (listener,) = await server.start([Addr("tls", "127.0.0.1", 0)])
            reader, writer = await _open(listener.port)  # TCP only: no ClientHello
            writer.write(b"\x16\x03\x01")  # the first bytes of one, and no more
            assert await _until_closed(reader) == b""
            writer.close()
            await _eventually(lambda: server.inbound_connections == 0)
        finally:
            await server.close()

    _run(main)


def test_a_pinned_connection_outlives_the_idle_timeout() -> None:
    # RFC 5626/5923: a connection that carries a dialog or registration stays up.
    async def main() -> None:
        inbox = Inbox()
        server = Transports(inbox, limits=StreamLimits(idle_timeout_s=FAST))
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        kept_reader, kept = await _open(listener.port)
        idle_reader, idle = await _open(listener.port)
        kept.write(MESSAGE)
        *_, kept_id = await inbox.next()
        server.pin(kept_id)
        server.pin(kept_id)  # two dialogs on it
        idle.write(MESSAGE)
        await inbox.next()
        # Both went idle at the same time; only the unpinned one is closed...
        assert await _until_closed(idle_reader) == b""
        assert server.pinned(kept_id)
        # ... and the pinned one still carries messages both ways.
        kept.write(MESSAGE)
        data, source, _, conn = await inbox.next()
        assert (data, conn) == (MESSAGE, kept_id)
        server.send(MESSAGE, "tcp", source, kept_id)
        async with asyncio.timeout(3):
            assert await kept_reader.readexactly(len(MESSAGE)) == MESSAGE
        # Once its dialogs are gone, idleness counts again.
        server.unpin(kept_id)
        assert server.pinned(kept_id)
        server.unpin(kept_id)
        assert not server.pinned(kept_id)
        assert await _until_closed(kept_reader) == b""
        for writer in (kept, idle):
            writer.close()
        await server.close()

    _run(main)


def test_close_listeners_hear_of_every_closed_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The registrar drops a flow's bindings when its connection closes: each listener
    is told the connection's id, a failing listener is logged and does not stop the
    others or the bookkeeping; CRLFCRLF keep-alives get their CRLF (RFC 5626 §4.4.1)."""

    async def main() -> None:
        inbox = Inbox()
        server = Transports(inbox)
        closed: list[int] = []

        def broken(connection: int) -> None:
            raise RuntimeError("listener bug")

        server.on_close(broken)
        server.on_close(closed.append)
        (listener,) = await server.start([Addr("tcp", "127.0.0.1", 0)])
        reader, writer = await _open(listener.port)
        writer.write(MESSAGE)
        *_, connection = await inbox.next()
        assert server.is_open(connection)
        writer.write(b"\r\n\r\n")
        async with asyncio.timeout(3):
            assert await reader.readexactly(2) == b"\r\n"
        writer.close()
        await _eventually(lambda: closed == [connection])
        assert not server.is_open(connection)
        assert server.inbound_connections == 0
        await server.close()

    with caplog.at_level(logging.ERROR, "tollguard.transport.network"):
        _run(main)
    assert "close listener failed for connection" in caplog.text


def test_pinning_an_unknown_connection_does_nothing() -> None:
    transports = Transports(Inbox())
    transports.pin(42)
    transports.unpin(42)
    assert not transports.pinned(42)


LIMITS = StreamLimits(
    first_message_timeout_s=10, message_timeout_s=5, idle_timeout_s=100, tls_handshake_timeout_s=1
)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"now": 1, "first_message": True}, (None, 10)),
        ({"now": 10, "first_message": True}, ("no message", 10)),
        ({"now": 50, "first_message": False}, (None, 100)),
        ({"now": 50, "first_message": False, "pinned": True}, (None, math.inf)),
        ({"now": 100, "first_message": False}, ("idle", 100)),
        ({"now": 60, "first_message": False, "last_activity": 60}, (None, 160)),
        ({"now": 60, "first_message": False, "message_started": 58}, (None, 63)),
        ({"now": 63, "first_message": False, "message_started": 58}, ("message incomplete", 63)),
        (
            {"now": 63, "first_message": False, "message_started": 58, "pinned": True},
            ("message incomplete", 63),
        ),
        ({"now": 7, "first_message": True, "message_started": 6}, (None, 10)),
    ],
    ids=[
        "awaiting-first",
        "first-late",
        "open",
        "pinned",
        "idle",
        "activity-moves-idle",
        "message-under-way",
        "message-late",
        "pinned-message-late",
        "earliest-wins",
    ],
)
def test_due(state: dict[str, object], expected: tuple[str | None, float]) -> None:
    arguments: dict[str, object] = {
        "opened_at": 0.0,
        "message_started": None,
        "last_activity": 0.0,
        "pinned": False,
        **state,
    }
    assert due(LIMITS, **arguments) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
    ids=["ipv4", "ipv6", "ipv6-same-64", "ipv4-mapped", "scoped"],
)
def test_source_key(host: str, key: str) -> None:
    assert source_key(host) == key


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="idle_timeout_s must be positive"):
        StreamLimits(idle_timeout_s=0)
    with pytest.raises(ValueError, match="max_connections_per_source must be at least 1"):
        StreamLimits(max_connections_per_source=0)
