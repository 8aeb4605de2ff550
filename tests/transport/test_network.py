"""UDP, TCP and TLS transports over real loopback sockets (no sleeps: events are awaited)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tollguard.transport import (
    Listener,
    ListenError,
    SendError,
    Transports,
    client_context,
    loop_factory,
    server_context,
)

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
        server = Transports(inbox, max_connections=1)
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
