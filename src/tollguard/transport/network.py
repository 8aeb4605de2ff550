"""SIP over UDP, TCP and TLS on asyncio (RFC 3261 §18).

One :class:`Transports` object owns every listener and connection of the switch. It
hands each received message to one callback ``(data, source, transport, connection_id)``
and sends bytes with :meth:`Transports.send`. Datagrams go out of the listening socket
so that peers see our advertised port. Stream messages are framed with
:class:`tollguard.sip.StreamFramer` (Content-Length, RFC 3261 §18.3); a response goes
back on the connection its request came on (§18.2.2), and requests towards a peer reuse
an open connection to it or open a new one.

Everything here runs in protocol callbacks: no task per message, none per connection
except the one that opens an outgoing connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, cast

from tollguard.sip import RemoteProtocolError, StreamFramer
from tollguard.transport.errors import ListenError, SendError

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_DATAGRAM",
    "Address",
    "ListenAddress",
    "Listener",
    "ReceiveCallback",
    "Transports",
]

log = logging.getLogger(__name__)

Address = tuple[str, int]
ReceiveCallback = Callable[[bytes, Address, str, int], None]
ErrorCallback = Callable[[str, Address], None]

# RFC 3261 §18.1.1 lets a UDP message reach 65,535 bytes minus IP/UDP headers; anything
# claiming more is malformed, and tiny datagrams are keep-alives (RFC 5626 §3.5.1).
MAX_DATAGRAM = 65507
_MIN_MESSAGE = 16
# Open TCP/TLS connections, both directions; more are refused so that a flood of idle
# connections cannot exhaust file descriptors.
MAX_CONNECTIONS = 10_000


class ListenAddress(Protocol):
    """What a listener needs from :class:`tollguard.config.Listen`."""

    @property
    def transport(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Listener:
    """A started listener, with the port it really bound (port 0 picks one)."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


class _DatagramProtocol(asyncio.DatagramProtocol):
    __slots__ = ("_on_message", "transport")

    def __init__(self, on_message: ReceiveCallback) -> None:
        self._on_message = on_message
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interfaces without subclassing them.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if _MIN_MESSAGE <= len(data) <= MAX_DATAGRAM:
            # IPv4 and IPv6 socket addresses both start with (host, port).
            self._on_message(data, cast(Address, addr[:2]), "udp", 0)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the transaction timers handle the peer.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("udp error: %s", exc)


class _StreamProtocol(asyncio.Protocol):
    __slots__ = (
        "_framer",
        "_owner",
        "_pending",
        "closed",
        "connection_id",
        "peer",
        "transport",
        "transport_name",
    )

    def __init__(self, owner: Transports, transport_name: str, connection_id: int) -> None:
        self._owner = owner
        self.transport_name = transport_name
        self.connection_id = connection_id
        self._framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self._pending: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (str(peer[0]), int(peer[1]))
        if not self._owner._register(self):
            log.warning(
                "%s connection from %s:%s refused: connection limit reached",
                self.transport_name,
                *self.peer,
            )
            self.transport.abort()
            return
        for data in self._pending:
            self.transport.write(data)
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._framer.feed(data)
        except RemoteProtocolError as exc:
            # Without a parsed request there are no Via headers to answer on, so the
            # connection is closed: framing is lost for good (RFC 3261 §18.3).
            log.info("%s framing error from %s:%s: %s", self.transport_name, *self.peer, exc)
            self.close()
            return
        if self._framer.pings and self.transport is not None:
            # RFC 5626 §4.4.1: each CRLFCRLF ping gets a CRLF pong.
            self.transport.write(b"\r\n" * self._framer.take_pings())
        on_message = self._owner.on_message
        for message in messages:
            on_message(message, self.peer, self.transport_name, self.connection_id)

    def write(self, data: bytes) -> None:
        if self.closed:
            raise SendError(self.transport_name, f"connection to {self.peer} is closed")
        if self.transport is None:
            self._pending.append(data)
        else:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._owner._unregister(self)


class Transports:
    """Every SIP listener and connection of one switch process."""

    def __init__(
        self,
        on_message: ReceiveCallback,
        *,
        reuse_port: bool = False,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        on_send_error: ErrorCallback | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.on_message = on_message
        self._reuse_port = reuse_port
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._on_send_error = on_send_error
        self._max_connections = max_connections
        self._datagram: dict[int, _DatagramProtocol] = {}  # by address family
        self._servers: list[asyncio.Server] = []
        self._ids = itertools.count(1)
        self._connections: dict[int, _StreamProtocol] = {}
        self._by_peer: dict[tuple[str, Address], _StreamProtocol] = {}
        self.listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, addresses: Iterable[ListenAddress]) -> list[Listener]:
        """Start a listener per address; returns them with their bound ports."""
        loop = asyncio.get_running_loop()
        started: list[Listener] = []
        for address in addresses:
            name = f"{address.transport}:{address.host}:{address.port}"
            try:
                started.append(await self._start_one(loop, address))
            except (OSError, ValueError) as exc:
                raise ListenError(name, str(exc)) from exc
        self.listeners.extend(started)
        return started

    async def _start_one(self, loop: asyncio.AbstractEventLoop, address: ListenAddress) -> Listener:
        transport = address.transport
        if transport == "udp":
            family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if self._reuse_port:
                # Explicit opt-in only: a shared port lets another process take traffic.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.bind((address.host, address.port))
            sock.setblocking(False)
            _, protocol = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self.on_message), sock=sock
            )
            self._datagram.setdefault(family, protocol)
            port = sock.getsockname()[1]
            return Listener("udp", address.host, int(port))
        if transport in ("tcp", "tls"):
            context: ssl.SSLContext | None = None
            if transport == "tls":
                if self._server_ssl is None:
                    raise ValueError("no TLS certificate configured")
                context = self._server_ssl
            server = await loop.create_server(
                lambda: _StreamProtocol(self, transport, next(self._ids)),
                address.host,
                address.port,
                ssl=context,
                reuse_address=True,
            )
            self._servers.append(server)
            port = server.sockets[0].getsockname()[1]
            return Listener(transport, address.host, int(port))
        raise ValueError(f"unsupported transport {transport!r}")

    def local_port(self, transport: str) -> int:
        """The bound port of the first listener for ``transport`` (0 when none)."""
        for listener in self.listeners:
            if listener.transport == transport:
                return listener.port
        return 0

    def send(
        self, data: bytes, transport: str, destination: Address, connection_id: int = 0
    ) -> None:
        """Send one message; on streams, reuse ``connection_id`` or a connection to the peer."""
        if transport == "udp":
            family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
            protocol = self._datagram.get(family)
            if protocol is None or protocol.transport is None:
                raise SendError("udp", "no UDP listener for this address family")
            protocol.transport.sendto(data, destination)
            return
        stream = self._connections.get(connection_id) if connection_id else None
        if stream is None or stream.closed:
            stream = self._by_peer.get((transport, destination))
        if stream is None or stream.closed:
            stream = self._connect(transport, destination)
        stream.write(data)

    def _connect(self, transport: str, destination: Address) -> _StreamProtocol:
        if transport not in ("tcp", "tls"):
            raise SendError(transport, "unsupported transport")
        context = None
        if transport == "tls":
            context = self._client_ssl or ssl.create_default_context()
        protocol = _StreamProtocol(self, transport, next(self._ids))
        # Registered now so that messages sent while connecting share this connection.
        self._by_peer[(transport, destination)] = protocol
        loop = asyncio.get_running_loop()

        async def connect() -> None:
            try:
                await loop.create_connection(
                    lambda: protocol,
                    destination[0],
                    destination[1],
                    ssl=context,
                    server_hostname=destination[0] if context else None,
                )
            except (OSError, ssl.SSLError) as exc:
                log.info("%s connect to %s:%s failed: %s", transport, *destination, exc)
                protocol.closed = True
                if self._by_peer.get((transport, destination)) is protocol:
                    del self._by_peer[(transport, destination)]
                if self._on_send_error is not None:
                    self._on_send_error(transport, destination)

        task = loop.create_task(connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return protocol

    def _register(self, protocol: _StreamProtocol) -> bool:
        if len(self._connections) >= self._max_connections:
            return False
        self._connections[protocol.connection_id] = protocol
        self._by_peer.setdefault((protocol.transport_name, protocol.peer), protocol)
        return True

    def _unregister(self, protocol: _StreamProtocol) -> None:
        self._connections.pop(protocol.connection_id, None)
        key = (protocol.transport_name, protocol.peer)
        if self._by_peer.get(key) is protocol:
            del self._by_peer[key]

    async def close(self) -> None:
        """Close every listener and connection."""
        for server in self._servers:
            server.close()
        for protocol in list(self._connections.values()):
            protocol.close()
        for datagram in self._datagram.values():
            if datagram.transport is not None:
                datagram.transport.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._datagram.clear()
