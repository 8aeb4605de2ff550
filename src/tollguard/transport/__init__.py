"""SIP transports on asyncio: UDP, TCP and TLS listeners and connections (RFC 3261 §18)."""

from tollguard.transport.errors import ListenError, SendError, TransportError
from tollguard.transport.loop import loop_factory
from tollguard.transport.network import (
    MAX_CONNECTIONS,
    MAX_DATAGRAM,
    Address,
    ListenAddress,
    Listener,
    ReceiveCallback,
    StreamLimits,
    Transports,
    source_key,
)
from tollguard.transport.tls import client_context, server_context

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_DATAGRAM",
    "Address",
    "ListenAddress",
    "ListenError",
    "Listener",
    "ReceiveCallback",
    "SendError",
    "StreamLimits",
    "TransportError",
    "Transports",
    "client_context",
    "loop_factory",
    "server_context",
    "source_key",
]
