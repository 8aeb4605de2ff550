"""SIP over UDP, TCP and TLS on asyncio (RFC 3261 §18).

One :class:`Transports` object owns every listener and connection of the switch. It
hands each received message to one callback ``(data, source, transport, connection_id)``
and sends bytes with :meth:`Transports.send`. Datagrams go out of the listening socket
so that peers see our advertised port. Stream messages are framed with
:class:`tollguard.sip.StreamFramer` (Content-Length, RFC 3261 §18.3); a response goes
back on the connection its request came on (§18.2.2), and requests towards a peer reuse
an open connection to it or open a new one.

Connections are bounded (:class:`StreamLimits`): in number (all incoming ones, those
from one source, the outgoing ones on a budget of their own) and in time (the TLS
handshake, the first message, each message once begun, and idleness). A connection
that carries a live dialog or registration is *pinned* by the switch
(:meth:`Transports.pin`) and is then never closed for idleness, as RFC 5626 and
RFC 5923 expect of a flow in use. A request too large to frame is answered with 513
where its headers could be read, then the connection is closed.

Everything here runs in protocol callbacks and one timer per connection: no task per
message, none per connection except the ones that open an outgoing connection or run a
TLS handshake.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import secrets
import socket
import ssl
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol, cast

from tollguard.sip import RemoteProtocolError, StreamFramer, error_response
from tollguard.transport.errors import ListenError, SendError

if TYPE_CHECKING:
    from tollguard.config import SipSettings

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_DATAGRAM",
    "Address",
    "ListenAddress",
    "Listener",
    "ReceiveCallback",
    "StreamLimits",
    "Transports",
    "source_key",
]

log = logging.getLogger(__name__)
security_log = logging.getLogger("tollguard.security")

Address = tuple[str, int]
ReceiveCallback = Callable[[bytes, Address, str, int], None]
ErrorCallback = Callable[[str, Address], None]

# RFC 3261 §18.1.1 lets a UDP message reach 65,535 bytes minus IP/UDP headers; anything
# claiming more is malformed, and tiny datagrams are keep-alives (RFC 5626 §3.5.1).
MAX_DATAGRAM = 65507
_MIN_MESSAGE = 16
# Incoming TCP/TLS connections; more are refused so that a flood of idle connections
# cannot exhaust file descriptors.
MAX_CONNECTIONS = 10_000
# Pending connections the kernel queues for a stream listener (capped by somaxconn):
# asyncio's default of 100 drops SYNs under a burst of legitimate connections.
_BACKLOG = 1024
_ACCEPTS_PER_WAKEUP = 64
# SO_LINGER on, zero seconds: close() sends a reset.
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """How many TCP/TLS connections may be open, and for how long (seconds)."""

    # A TLS client must complete its handshake within this time.
    tls_handshake_timeout_s: float = 10.0
    # An incoming connection must deliver a complete first message within this time
    # (after its TLS handshake); CRLF keep-alives do not count.
    first_message_timeout_s: float = 10.0
    # A message, once its first byte has arrived, must be complete within this time.
    message_timeout_s: float = 10.0
    # A connection with no traffic for this long is closed, unless it is pinned (it
    # carries a live dialog or registration). Keep-alives count as traffic.
    idle_timeout_s: float = 180.0
    # Incoming connections, from everyone.
    max_connections: int = MAX_CONNECTIONS
    # Incoming connections from one source: an IPv4 address, or an IPv6 /64.
    max_connections_per_source: int = 100
    # Outgoing connections (to gateways, or back to a peer whose connection closed).
    max_outgoing_connections: int = 1_000

    def __post_init__(self) -> None:
        for name in (
            "tls_handshake_timeout_s",
            "first_message_timeout_s",
            "message_timeout_s",
            "idle_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_connections", "max_connections_per_source", "max_outgoing_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @classmethod
    def from_settings(cls, sip: SipSettings) -> StreamLimits:
        return cls(
            tls_handshake_timeout_s=sip.tls_handshake_timeout_s,
            first_message_timeout_s=sip.first_message_timeout_s,
            message_timeout_s=sip.message_timeout_s,
            idle_timeout_s=sip.idle_timeout_s,
            max_connections=sip.max_connections,
            max_connections_per_source=sip.max_connections_per_source,
            max_outgoing_connections=sip.max_outgoing_connections,
        )


def source_key(host: str) -> str:
    """What the per-source limit counts by: an IPv4 address, or the /64 of an IPv6 one.

    One IPv6 host commonly holds a whole /64, so counting single addresses would let it
    open connections without end. An IPv4-mapped IPv6 address counts as its IPv4 one.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _log_refusal(peer: Address, transport: str, reason: str) -> None:
    security_log.warning(
        "connection refused: ip=%s port=%d transport=%s reason=%s",
        peer[0],
        peer[1],
        transport,
        reason,
    )


class _Phase(Enum):
    OPEN = "open"
    LINGERING = "lingering"  # answered and half-closed: input is discarded


def due(
    limits: StreamLimits,
    *,
    now: float,
    opened_at: float,
    first_message: bool,
    message_started: float | None,
    last_activity: float,
    pinned: bool,
) -> tuple[str | None, float]:
    """``(why the connection must close now, or None; when to look again)``.

    Pure: the connection's clock readings in, the decision out. ``opened_at`` is when
    the connection became usable (after any TLS handshake); ``first_message`` whether
    a first complete message is still awaited; ``message_started`` when the message
    being received began. ``math.inf`` means nothing to wait for.
    """
    deadlines: list[tuple[float, str]] = []
    if first_message:
        deadlines.append((opened_at + limits.first_message_timeout_s, "no message"))
    if message_started is not None:
        deadlines.append((message_started + limits.message_timeout_s, "message incomplete"))
    if not pinned:
        deadlines.append((last_activity + limits.idle_timeout_s, "idle"))
    if not deadlines:
        return None, math.inf
    when, reason = min(deadlines)
    if when <= now:
        return reason, now
    return None, when


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
        "_first_message",
        "_framer",
        "_last_activity",
        "_message_started",
        "_opened_at",
        "_owner",
        "_pending",
        "_phase",
        "_timer",
        "closed",
        "connection_id",
        "inbound",
        "key",
        "peer",
        "pins",
        "registered",
        "source",
        "transport",
        "transport_name",
    )

    def __init__(
        self, owner: Transports, transport_name: str, connection_id: int, *, inbound: bool
    ) -> None:
        self._owner = owner
        self.transport_name = transport_name
        self.connection_id = connection_id
        self.inbound = inbound
        self._framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        # Where the connection is found for sending: (transport, peer) for incoming
        # ones, (transport, destination) for outgoing ones.
        self.key: tuple[str, Address] = (transport_name, ("", 0))
        self.source = ""
        self._pending: list[bytes] = []
        self.closed = False
        self.registered = False
        self.pins = 0
        self._phase = _Phase.OPEN
        self._timer: asyncio.TimerHandle | None = None
        self._opened_at = 0.0
        self._last_activity = 0.0
        # Incoming connections owe a first message; we speak first on outgoing ones.
        self._first_message = inbound
        self._message_started: float | None = None

    # -- life cycle ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.closed:
            # Closed (Transports.close) while it was being opened.
            cast(asyncio.Transport, transport).abort()
            return
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = (str(peer[0]), int(peer[1]))
        owner = self._owner
        if not self.inbound:
            owner._connected(self)
        elif not self.registered:
            # TLS connections were admitted when accepted, before their handshake.
            refusal = owner._admit(self)
            if refusal is not None:
                _log_refusal(self.peer, self.transport_name, refusal)
                self.transport.abort()
                return
        self._ready()

    def _ready(self) -> None:
        """The connection carries SIP from now on: start its clock."""
        assert self.transport is not None
        self._phase = _Phase.OPEN
        now = self._owner.now()
        self._opened_at = self._last_activity = now
        for data in self._pending:
            self.transport.write(data)
        self._pending.clear()
        self._schedule(now)

    def handshake_failed(self, exc: BaseException) -> None:
        security_log.warning(
            "connection closed: ip=%s port=%d transport=tls reason=handshake (%s)",
            self.peer[0],
            self.peer[1],
            str(exc) or type(exc).__name__,
        )
        self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._owner._unregister(self)

    # -- receiving -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._phase is not _Phase.OPEN:
            return  # lingering: what follows an answered error is discarded
        framer = self._framer
        was_empty = framer.buffered == 0
        try:
            messages = framer.feed(data)
        except RemoteProtocolError as exc:
            self._framing_failed(exc)
            return
        now = self._owner.now()
        self._last_activity = now
        if framer.pings and self.transport is not None:
            # RFC 5626 §4.4.1: each CRLFCRLF ping gets a CRLF pong.
            self.transport.write(b"\r\n" * framer.take_pings())
        if messages:
            self._first_message = False
        if framer.buffered == 0:
            self._message_started = None
        elif messages or was_empty or self._message_started is None:
            # A message has begun: it must be complete in time (a slow sender
            # holding the connection open byte by byte is cut off).
            self._message_started = now
            self._schedule(now)
        on_message = self._owner.on_message
        for message in messages:
            on_message(message, self.peer, self.transport_name, self.connection_id)

    def _framing_failed(self, exc: RemoteProtocolError) -> None:
        # Framing is lost for good (RFC 3261 §18.3). A request whose headers could be
        # read is answered first (513 for one too large, RFC 3261 §21.5.14).
        security_log.warning(
            "framing error: ip=%s port=%d transport=%s status=%d reason=%s",
            self.peer[0],
            self.peer[1],
            self.transport_name,
            exc.status_code,
            exc.message,
        )
        response = error_response(exc, to_tag=secrets.token_hex(8))
        if response is None or self.transport is None:
            self.close()
            return
        self.transport.write(response.to_bytes())
        self._linger()

    def _linger(self) -> None:
        """Half-close after an answer and discard input for a while, then close.

        Closing a socket with unread input makes the kernel send a reset, which can
        destroy the answer before the peer reads it; so the peer gets a FIN after the
        answer (on TCP) and its remaining bytes are read and dropped.
        """
        assert self.transport is not None
        self._phase = _Phase.LINGERING
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._owner.loop.call_later(self._owner.limits.message_timeout_s, self.close)

    def eof_received(self) -> bool | None:
        # The peer is done sending: close our side too (None closes the transport).
        return None

    # -- timers --------------------------------------------------------------------------

    def _schedule(self, now: float) -> None:
        """Arm the timer for the earliest deadline, unless one at least as early is armed."""
        if self._phase is not _Phase.OPEN or self.closed:
            return
        reason, when = due(
            self._owner.limits,
            now=now,
            opened_at=self._opened_at,
            first_message=self._first_message,
            message_started=self._message_started,
            last_activity=self._last_activity,
            pinned=self.pins > 0,
        )
        if reason is not None:
            self._expire(reason)
            return
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
            self._timer = None
        if when != math.inf:
            self._timer = self._owner.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._schedule(self._owner.now())

    def _expire(self, reason: str) -> None:
        if reason == "idle":
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s connection %s:%s closed: idle", self.transport_name, *self.peer)
        else:
            # A connection that never says anything, or says it one byte at a time,
            # is how a few hosts hold many connections open.
            security_log.warning(
                "connection closed: ip=%s port=%d transport=%s reason=%s",
                self.peer[0],
                self.peer[1],
                self.transport_name,
                reason.replace(" ", "-"),
            )
        self.close()

    def repin(self) -> None:
        """The pin count changed: idleness may count again."""
        if not self.closed and self._phase is _Phase.OPEN:
            self._schedule(self._owner.now())

    # -- sending -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed or self._phase is _Phase.LINGERING:
            raise SendError(self.transport_name, f"connection to {self.peer} is closed")
        if self.transport is None:
            self._pending.append(data)
        else:
            self._last_activity = self._owner.now()
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        elif not self.closed:
            self.connection_lost(None)


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
        limits: StreamLimits | None = None,
    ) -> None:
        self.on_message = on_message
        self._reuse_port = reuse_port
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._on_send_error = on_send_error
        self.limits = limits or StreamLimits()
        self._datagram: dict[int, _DatagramProtocol] = {}  # by address family
        self._servers: list[asyncio.Server] = []
        self._ids = itertools.count(1)
        self._connections: dict[int, _StreamProtocol] = {}
        self._by_peer: dict[tuple[str, Address], _StreamProtocol] = {}
        self._inbound = 0
        self._outgoing = 0
        self._per_source: dict[str, int] = {}
        self.listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._tls_sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Told the id of each TCP/TLS connection that closes (a flow ends with it).
        self._close_listeners: list[Callable[[int], None]] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    async def start(self, addresses: Iterable[ListenAddress]) -> list[Listener]:
        """Start a listener per address; returns them with their bound ports."""
        loop = asyncio.get_running_loop()
        self._loop = loop
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
        if transport == "tls":
            if self._server_ssl is None:
                raise ValueError("no TLS certificate configured")
            family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
            listening = socket.create_server(
                (address.host, address.port), family=family, backlog=_BACKLOG
            )
            listening.setblocking(False)
            loop.add_reader(listening.fileno(), self._accept_tls, listening)
            self._tls_sockets.append(listening)
            port = listening.getsockname()[1]
            return Listener(transport, address.host, int(port))
        if transport == "tcp":
            server = await loop.create_server(
                lambda: _StreamProtocol(self, transport, next(self._ids), inbound=True),
                address.host,
                address.port,
                reuse_address=True,
                backlog=_BACKLOG,
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

    # -- connections in use --------------------------------------------------------------

    def pin(self, connection_id: int) -> None:
        """Keep ``connection_id`` open however idle it gets, until :meth:`unpin`.

        The switch pins the connection a dialog or a registration lives on (RFC 5626
        §4.2, RFC 5923 §6: the flow must stay up while it is in use), once per dialog
        or registration. Pins are counted; a closed or unknown connection is ignored.
        """
        stream = self._connections.get(connection_id)
        if stream is not None:
            stream.pins += 1

    def unpin(self, connection_id: int) -> None:
        """Release one :meth:`pin`; idleness counts again once none is left."""
        stream = self._connections.get(connection_id)
        if stream is not None and stream.pins > 0:
            stream.pins -= 1
            if stream.pins == 0:
                stream.repin()

    def pinned(self, connection_id: int) -> bool:
        stream = self._connections.get(connection_id)
        return stream is not None and stream.pins > 0

    def is_open(self, connection_id: int) -> bool:
        """Whether the TCP/TLS connection ``connection_id`` is up (ids are never reused)."""
        stream = self._connections.get(connection_id)
        return stream is not None and not stream.closed

    def on_close(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(connection_id)`` whenever a TCP/TLS connection closes, for
        whatever reason (the peer, idleness, a limit, shutdown)."""
        self._close_listeners.append(listener)

    @property
    def inbound_connections(self) -> int:
        return self._inbound

    @property
    def outgoing_connections(self) -> int:
        return self._outgoing

    def connections_from(self, host: str) -> int:
        """Incoming connections counted against ``host``'s per-source limit."""
        return self._per_source.get(source_key(host), 0)

    # -- sending -------------------------------------------------------------------------

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
        loop = self.loop
        if self._outgoing >= self.limits.max_outgoing_connections:
            log.warning(
                "%s connect to %s:%s refused: outgoing connection limit reached",
                transport,
                *destination,
            )
            if self._on_send_error is not None:
                loop.call_soon(self._on_send_error, transport, destination)
            raise SendError(transport, "outgoing connection limit reached")
        context = None
        if transport == "tls":
            context = self._client_ssl or ssl.create_default_context()
        protocol = _StreamProtocol(self, transport, next(self._ids), inbound=False)
        # Registered now so that messages sent while connecting share this connection,
        # and counted now so that connections being opened count against the budget.
        protocol.key = (transport, destination)
        self._by_peer[protocol.key] = protocol
        self._outgoing += 1
        protocol.registered = True

        async def connect() -> None:
            try:
                await loop.create_connection(
                    lambda: protocol,
                    destination[0],
                    destination[1],
                    ssl=context,
                    server_hostname=destination[0] if context else None,
                    ssl_handshake_timeout=(
                        self.limits.tls_handshake_timeout_s if context else None
                    ),
                )
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                log.info("%s connect to %s:%s failed: %s", transport, *destination, exc)
                protocol.connection_lost(None)
                if self._on_send_error is not None:
                    self._on_send_error(transport, destination)

        self._track(loop.create_task(connect()))
        return protocol

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- admission and bookkeeping -------------------------------------------------------

    def _admit(self, protocol: _StreamProtocol) -> str | None:
        """Count an incoming connection in, or say why it is refused."""
        limits = self.limits
        if self._inbound >= limits.max_connections:
            return "connection-limit"
        source = source_key(protocol.peer[0])
        if self._per_source.get(source, 0) >= limits.max_connections_per_source:
            return "per-source-limit"
        protocol.source = source
        protocol.registered = True
        self._inbound += 1
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._connections[protocol.connection_id] = protocol
        protocol.key = (protocol.transport_name, protocol.peer)
        self._by_peer.setdefault(protocol.key, protocol)
        return None

    def _connected(self, protocol: _StreamProtocol) -> None:
        """An outgoing connection is up (it was counted when it was started)."""
        self._connections[protocol.connection_id] = protocol

    def _accept_tls(self, listening: socket.socket) -> None:
        """Accept pending TLS connections: admit each, then run its handshake.

        TLS connections are accepted here rather than by ``create_server`` so that the
        limits apply from the first moment, the handshake included: a client that
        never sends its ClientHello holds a slot of its source like any other.
        """
        loop = self.loop
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of file descriptors or buffers: stop accepting for a moment, as
                # asyncio's own servers do, instead of spinning on the error.
                log.warning("tls accept failed: %s; pausing accepts for 1 s", exc)
                loop.remove_reader(listening.fileno())
                loop.call_later(1.0, self._resume_accepts, listening)
                return
            protocol = _StreamProtocol(self, "tls", next(self._ids), inbound=True)
            protocol.peer = (str(address[0]), int(address[1]))
            refusal = self._admit(protocol)
            if refusal is not None:
                _log_refusal(protocol.peer, "tls", refusal)
                # Reset rather than a graceful close: nothing was said on it.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                conn.close()
                continue
            conn.setblocking(False)
            self._track(loop.create_task(self._tls_handshake(protocol, conn)))

    def _resume_accepts(self, listening: socket.socket) -> None:
        if listening.fileno() >= 0:
            self.loop.add_reader(listening.fileno(), self._accept_tls, listening)

    async def _tls_handshake(self, protocol: _StreamProtocol, conn: socket.socket) -> None:
        assert self._server_ssl is not None
        try:
            await self.loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self._server_ssl,
                ssl_handshake_timeout=self.limits.tls_handshake_timeout_s,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            # The transport made for the socket has closed it.
            protocol.handshake_failed(exc)
        except asyncio.CancelledError:
            protocol.connection_lost(None)
            raise

    def _unregister(self, protocol: _StreamProtocol) -> None:
        known = self._connections.pop(protocol.connection_id, None) is not None
        if known:
            for listener in self._close_listeners:
                try:
                    listener(protocol.connection_id)
                except Exception:
                    # A listener's bug must not leave the connection half counted.
                    log.exception("close listener failed for connection %d", protocol.connection_id)
        if self._by_peer.get(protocol.key) is protocol:
            del self._by_peer[protocol.key]
        if not protocol.registered:
            return
        protocol.registered = False
        if protocol.inbound:
            self._inbound -= 1
            count = self._per_source.get(protocol.source, 0) - 1
            if count > 0:
                self._per_source[protocol.source] = count
            else:
                self._per_source.pop(protocol.source, None)
        else:
            self._outgoing -= 1

    async def close(self) -> None:
        """Close every listener and connection."""
        for server in self._servers:
            server.close()
        for listening in self._tls_sockets:
            if listening.fileno() >= 0:
                self.loop.remove_reader(listening.fileno())
            listening.close()
        self._tls_sockets.clear()
        for protocol in list(self._connections.values()):
            protocol.close()
        for task in list(self._tasks):
            task.cancel()
        for datagram in self._datagram.values():
            if datagram.transport is not None:
                datagram.transport.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._datagram.clear()
