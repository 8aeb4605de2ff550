"""Transport errors.

TransportError
 ├── ListenError          a listener that cannot be started (names the address)
 └── SendError            a message that cannot be sent (no listener for the transport)
"""

from __future__ import annotations


class TransportError(Exception):
    """Root of every error raised by :mod:`tollguard.transport`."""


class ListenError(TransportError):
    def __init__(self, listen: str, message: str) -> None:
        super().__init__(f"{listen}: {message}")
        self.listen = listen


class SendError(TransportError):
    def __init__(self, transport: str, message: str) -> None:
        super().__init__(f"{transport}: {message}")
        self.transport = transport
