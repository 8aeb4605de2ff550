"""The embedded relay's packet engine: RTP and RTCP from one side of a call to the other.

The engine owns no policy: the switch process (:mod:`tollguard.media.relay`) binds each
call's sockets, hands them over (``SCM_RIGHTS`` on a Unix socket pair) and says where each
side's media is expected to come from. The engine then runs one ``epoll`` loop over every
socket, in its own process by default so that a busy media path cannot starve the
switch's signalling, nor signalling add latency to the media.

Per packet, on the socket of side X of a stream:

1. The source must be the address X's media is locked to. Until it is locked, the
   address that X's session description announced locks it at once; so does, behind NAT,
   the first packet from X's *signalling* IP address within the latching window (the
   announced address is then a private one). Anything else is dropped and counted:
   the lock, once taken, never moves to another address (a new session description from
   signalling sets a new expectation; a packet never does).
2. An RTP packet must look like RTP version 2; its sequence number feeds the loss count
   (RFC 3550 §6.4.1 and A.3, without the probation).
3. It leaves through the other side's socket towards the other side's locked (or
   announced) address, so each side sees the relay as its only peer.

The steady state (a port whose source is locked, on a stream without SRTP) runs in C
when :mod:`tollguard.media._fastpath` was built: one ``epoll_wait`` for many packets,
then per packet the same checks and counters as the Python path below, with no Python
object made. Every other packet (a source not locked yet, a stranger, SRTP) comes back
to this module, which decides on it as before; without the C module every packet takes
the Python path.

Counters live in shared memory (``counters``: one slot of :data:`SLOT_FIELDS` 64-bit
integers per session) so that the switch reads a call's totals at its end without a
round trip. The engine sends the switch one kind of message: ``dead`` when an answered
call that is not on hold received no RTP for its media timeout.
"""

from __future__ import annotations

import array
import base64
import contextlib
import json
import logging
import mmap
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

try:
    from tollguard.media import _fastpath
except ImportError:  # built without a C compiler: every packet takes the Python path
    _fastpath = None  # type: ignore[assignment]

__all__ = [
    "SLOT_FIELDS",
    "SLOT_SIZE",
    "Engine",
    "SrtpFactory",
    "control_message",
    "native_available",
    "read_control",
]

log = logging.getLogger(__name__)

# One session's counters in the shared array, in this order.
SLOT_FIELDS = (
    "caller_packets",
    "caller_bytes",
    "caller_lost",
    "callee_packets",
    "callee_bytes",
    "callee_lost",
    "dropped",
    "timed_out",
)
SLOT_SIZE = len(SLOT_FIELDS)
_CALLER, _CALLEE, _DROPPED, _TIMED_OUT = 0, 3, 6, 7
# A sequence number this far ahead is a gap (packets lost); further is a restart.
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_SWEEP_S = 0.5
_MAX_FDS = 253  # SCM_RIGHTS per message (Linux SCM_MAX_FD is 253)
_CONTROL_MAX = 65536

# A cipher suite name and a 30-byte master key and salt -> a protect/unprotect object.
type SrtpFactory = Callable[[str, bytes, bool], Any]


def native_available() -> bool:
    """Whether the C packet path was built for this interpreter."""
    return _fastpath is not None


def control_message(op: str, **fields: object) -> bytes:
    return json.dumps({"op": op, **fields}, separators=(",", ":")).encode()


def read_control(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """One control message and the descriptors sent with it; (None, []) at end of stream."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _CONTROL_MAX, _MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    message: dict[str, Any] = json.loads(data)
    return message, fds


class _Port:
    """One socket of one side of a stream: who may send to it, where its peer is."""

    __slots__ = (
        "counter",
        "dest",
        "expected",
        "fast",
        "fd",
        "locked",
        "nat_ip",
        "other",
        "recvfrom",
        "rtp",
        "sendto",
        "seq",
        "session",
        "sock",
        "srtp_in",
        "srtp_out",
        "window_until",
    )

    def __init__(self, sock: socket.socket, session: _Session, rtp: bool, counter: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        # Bound once: the packet path calls them for every packet.
        self.recvfrom = sock.recvfrom
        self.sendto = sock.sendto
        self.session = session
        self.rtp = rtp
        self.counter = counter  # index of the packets counter of this direction
        self.other: _Port = self
        # The address this side's session description announced, the signalling IP a
        # NAT latch may come from and until when, the address locked in, and where
        # packets for this side go (the locked address, else the announced one).
        self.expected: tuple[str, int] | None = None
        self.nat_ip: str | None = None
        self.window_until = 0.0
        self.locked: tuple[Any, ...] | None = None
        self.dest: tuple[Any, ...] | None = None
        self.seq = -1
        self.srtp_in: Any = None  # unprotects what this side sends
        self.srtp_out: Any = None  # protects what goes to this side
        # Whether the C path moves this port's packets (and the packets to it).
        self.fast = False

    def expect(self, address: tuple[str, int] | None, nat_ip: str | None, until: float) -> None:
        """A new session description from this side: a new expectation, a new lock."""
        self.expected = address
        self.nat_ip = nat_ip
        self.window_until = until
        self.locked = None
        if address is not None and nat_ip is None and ":" not in address[0]:
            # Announced address and signalling address agree: locked from the start (an
            # IPv6 source carries flow info and scope: it locks on its first packet).
            self.locked = address
        self.dest = address
        self.seq = -1

    def admit(self, address: tuple[Any, ...], now: float) -> bool:
        """Whether a packet from ``address`` (not the locked one) may lock this port."""
        if self.locked is not None:
            return False
        expected = self.expected
        host, port = address[0], address[1]
        if expected is not None and host == expected[0] and port == expected[1]:
            pass
        elif self.nat_ip is None or host != self.nat_ip or now >= self.window_until:
            return False
        self.locked = address
        self.dest = address
        return True

    def sequence_jump(self, seq: int, counters: memoryview) -> None:
        """RFC 3550 A.1, simplified: count gaps as lost, late packets back."""
        last = self.seq
        self.seq = seq
        if last < 0:
            return
        delta = (seq - last) & 0xFFFF
        lost = self.counter + 2
        if delta == 0:
            self.seq = last  # a duplicate
        elif delta < _MAX_DROPOUT:
            counters[lost] += delta - 1
        elif delta > 0x10000 - _MAX_MISORDER:
            self.seq = last  # late: it was counted as lost when the gap opened
            if counters[lost] > 0:
                counters[lost] -= 1
        # Anything else: the sender restarted its sequence; follow it.


class _Session:
    __slots__ = ("answered", "base", "held", "last_rx", "ports", "reported", "slot", "timeout")

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.base = slot * SLOT_SIZE
        self.ports: list[_Port] = []
        self.last_rx = 0.0
        self.answered = False
        self.held = False
        self.timeout = 0.0
        self.reported = False


class Engine:
    """The epoll loop; :meth:`run` serves until the control socket closes or ``stop``."""

    def __init__(
        self,
        control: socket.socket,
        counters: memoryview,
        srtp: SrtpFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        native: bool = True,
    ) -> None:
        """``native=False`` keeps every packet on the Python path even when the C path
        was built (``media.relay_native``)."""
        self._control = control
        self._counters = counters
        self._srtp = srtp
        self._clock = clock
        self._sessions: dict[int, _Session] = {}
        self._ports: dict[int, _Port] = {}
        self._epoll = select.epoll()
        self._epoll.register(control.fileno(), select.EPOLLIN)
        self._running = True
        self._native: _fastpath.Forwarder | None = None
        if native and _fastpath is not None:
            self._native = _fastpath.Forwarder(counters, len(counters) // SLOT_SIZE, clock)

    @property
    def native(self) -> bool:
        """Whether the C path moves the steady state's packets."""
        return self._native is not None

    # -- control -----------------------------------------------------------------------

    def _on_control(self) -> None:
        """Apply every control message waiting, before any packet of the same poll."""
        while self._running:
            try:
                message, fds = read_control(self._control)
            except (BlockingIOError, InterruptedError):
                return
            if message is None:
                self._running = False
                return
            self._apply_logged(message, fds)

    def _apply_logged(self, message: dict[str, Any], fds: list[int]) -> None:
        try:
            self._apply(message, fds)
        except Exception:
            # A malformed command is a bug of the switch process: say so, keep relaying.
            log.exception("media engine: bad control message %s", message.get("op"))
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _apply(self, message: dict[str, Any], fds: list[int]) -> None:
        op = message["op"]
        sid = int(message["sid"]) if "sid" in message else -1
        if op == "open":
            self._open(sid, int(message["slot"]), fds)
        elif op == "peer":
            self._peer(sid, message)
        elif op == "srtp":
            self._keys(sid, message)
        elif op == "answered":
            session = self._sessions[sid]
            session.answered = True
            session.timeout = float(message["timeout"])
            session.last_rx = max(session.last_rx, self._clock())
        elif op == "hold":
            session = self._sessions[sid]
            session.held = bool(message["held"])
            session.last_rx = self._clock()
        elif op == "close":
            self._close(sid)
        elif op == "ping":
            self._control.send(control_message("pong", n=message.get("n")))
        elif op == "stop":
            self._running = False
        else:
            raise ValueError(f"unknown operation {op!r}")

    def _open(self, sid: int, slot: int, fds: list[int]) -> None:
        """Four sockets per stream: caller RTP, caller RTCP, callee RTP, callee RTCP."""
        if sid in self._sessions:
            session = self._sessions[sid]
        else:
            session = _Session(slot)
            self._counters[session.base : session.base + SLOT_SIZE] = array.array(
                "q", bytes(8 * SLOT_SIZE)
            )
            session.last_rx = self._clock()
            self._sessions[sid] = session
            if self._native is not None:
                self._native.clear(slot)
        for index in range(0, len(fds), 4):
            socks = [socket.socket(fileno=fd) for fd in fds[index : index + 4]]
            for sock in socks:
                sock.setblocking(False)
            a_rtp = _Port(socks[0], session, True, session.base + _CALLER)
            a_rtcp = _Port(socks[1], session, False, session.base + _CALLER)
            b_rtp = _Port(socks[2], session, True, session.base + _CALLEE)
            b_rtcp = _Port(socks[3], session, False, session.base + _CALLEE)
            a_rtp.other, b_rtp.other = b_rtp, a_rtp
            a_rtcp.other, b_rtcp.other = b_rtcp, a_rtcp
            for port in (a_rtp, a_rtcp, b_rtp, b_rtcp):
                session.ports.append(port)
                self._ports[port.fd] = port
                if self._native is not None:
                    self._native.add(port.fd, port.other.fd, port.rtp, port.counter, slot)
                self._epoll.register(port.fd, select.EPOLLIN)

    def _peer(self, sid: int, message: dict[str, Any]) -> None:
        session = self._sessions[sid]
        side = 0 if message["side"] == "caller" else 2
        nat_ip = message.get("nat_ip")
        until = self._clock() + float(message.get("window", 0))
        for index, stream in enumerate(message["streams"]):
            rtp = session.ports[index * 4 + side]
            rtcp = session.ports[index * 4 + side + 1]
            if stream is None:
                rtp.expect(None, None, 0.0)
                rtcp.expect(None, None, 0.0)
            else:
                host, rtp_port, rtcp_host, rtcp_port = stream
                rtp.expect((host, int(rtp_port)), nat_ip, until)
                rtcp.expect((rtcp_host, int(rtcp_port)), nat_ip, until)
            self._sync(rtp)
            self._sync(rtcp)

    def _keys(self, sid: int, message: dict[str, Any]) -> None:
        if self._srtp is None:
            raise RuntimeError("SRTP keys given to an engine without SRTP")
        session = self._sessions[sid]
        side = 0 if message["side"] == "caller" else 2
        index = int(message["stream"]) * 4 + side
        suite = str(message["suite"])
        inbound = base64.b64decode(message["inbound"])
        outbound = base64.b64decode(message["outbound"])
        for port in session.ports[index : index + 2]:
            port.srtp_in = self._srtp(suite, inbound, False)
            port.srtp_out = self._srtp(suite, outbound, True)
            self._sync(port)

    def _sync(self, port: _Port) -> None:
        """Tell the C path what the port now expects; SRTP, and a host name in a
        session description, keep the port on the Python path."""
        native = self._native
        if native is None:
            return
        fast = port.srtp_in is None and port.srtp_out is None
        try:
            native.peer(port.fd, port.locked, port.dest)
        except ValueError:
            native.peer(port.fd, None, None)
            fast = False
        port.fast = fast
        native.set_slow(port.fd, not fast)

    def _close(self, sid: int) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        for port in session.ports:
            self._ports.pop(port.fd, None)
            if self._native is not None:
                self._native.remove(port.fd)
            with contextlib.suppress(OSError):
                self._epoll.unregister(port.fd)
            port.sock.close()

    def _sweep(self, now: float) -> None:
        counters = self._counters
        native = self._native
        for sid, session in self._sessions.items():
            if (
                session.answered
                and not session.held
                and not session.reported
                and session.timeout > 0
                and now - session.last_rx >= session.timeout
                and (native is None or now - native.last_rx(session.slot) >= session.timeout)
            ):
                session.reported = True
                counters[session.base + _TIMED_OUT] = 1
                with contextlib.suppress(OSError):
                    self._control.send(control_message("dead", sid=sid))

    # -- the packet path -----------------------------------------------------------------

    def run(self) -> None:
        """Relay until the switch closes the control socket or says ``stop``."""
        try:
            if self._native is not None:
                self._serve_native(self._native)
            else:
                self._serve()
        finally:
            for sid in list(self._sessions):
                self._close(sid)
            self._epoll.close()
            if self._native is not None:
                self._native.close()

    def _serve_native(self, native: _fastpath.Forwarder) -> None:
        """The C path relays the steady state; what it hands back is decided here."""
        control_fd = self._control.fileno()
        epoll_fd = self._epoll.fileno()
        ports = self._ports
        poll = native.poll
        clock = self._clock
        timeout_ms = int(_SWEEP_S * 1000)
        next_sweep = clock() + _SWEEP_S
        while self._running:
            handed = poll(epoll_fd, control_fd, timeout_ms)
            now = clock()
            if handed is None:
                # Commands first: a packet may follow the description it depends on (the
                # C path read nothing; the next poll reports the packets again).
                self._on_control()
            else:
                for fd, data, source in handed:
                    port = ports.get(fd)
                    if port is not None:
                        self._packet(port, data, source, now)
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + _SWEEP_S

    def _serve(self) -> None:
        """Every packet on the Python path."""
        control_fd = self._control.fileno()
        ports = self._ports
        poll = self._epoll.poll
        clock = self._clock
        packet = self._packet
        next_sweep = clock() + _SWEEP_S
        while self._running:
            events = poll(_SWEEP_S)
            now = clock()
            for fd, _mask in events:
                # Commands first: a packet may follow the description it depends on.
                if fd == control_fd:
                    self._on_control()
                    break
            for fd, _mask in events:
                port = ports.get(fd)
                if port is None:
                    continue
                try:
                    data, source = port.recvfrom(2048)
                except OSError:
                    # Nothing to read after all, or an ICMP error from an earlier send.
                    continue
                packet(port, data, source, now)
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + _SWEEP_S

    def _packet(self, port: _Port, data: bytes, source: tuple[Any, ...], now: float) -> None:
        """One packet received on ``port`` from ``source`` (steps 1 to 3 above)."""
        counters = self._counters
        native = self._native
        if source != port.locked:
            if not port.admit(source, now):
                counters[port.session.base + _DROPPED] += 1
                return
            if native is not None:
                native.lock(port.fd, source)
        other = port.other
        if native is not None and port.fast and other.fast:
            native.relay(port.fd, data, now)
            return
        if port.rtp:
            size = len(data)
            if size < 12 or data[0] & 0xC0 != 0x80:
                counters[port.session.base + _DROPPED] += 1
                return
            if port.srtp_in is not None:
                try:
                    data = port.srtp_in.unprotect(data)
                except Exception:
                    counters[port.session.base + _DROPPED] += 1
                    return
            seq = data[2] << 8 | data[3]
            if seq != (port.seq + 1) & 0xFFFF:
                port.sequence_jump(seq, counters)
            else:
                port.seq = seq
            index = port.counter
            counters[index] += 1
            counters[index + 1] += size
            port.session.last_rx = now
        elif port.srtp_in is not None:
            try:
                data = port.srtp_in.unprotect_rtcp(data)
            except Exception:
                counters[port.session.base + _DROPPED] += 1
                return
        dest = other.dest
        if dest is None:
            return  # the other side has not said where its media goes yet
        if other.srtp_out is not None:
            data = other.srtp_out.protect(data) if port.rtp else other.srtp_out.protect_rtcp(data)
        try:  # noqa: SIM105 (suppress() costs a call per packet)
            other.sendto(data, dest)
        except OSError:
            pass  # a full buffer or an unreachable peer: the packet is lost


def _srtp_factory() -> SrtpFactory | None:
    try:
        from tollguard.media import srtp
    except ImportError:  # pragma: no cover - the SRTP library is a dependency
        return None
    return srtp.session


def main(argv: list[str]) -> int:
    """``python -m tollguard.media.rtp CONTROL_FD COUNTERS_FD SLOTS [--python]``: the
    engine process (``--python``: every packet on the Python path)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    native = "--python" not in argv
    control_fd, counters_fd, slots = (int(arg) for arg in argv if arg != "--python")
    control = socket.socket(fileno=control_fd)
    control.setblocking(False)
    size = slots * SLOT_SIZE * 8
    with mmap.mmap(counters_fd, size) as shared:
        counters = memoryview(shared).cast("q")
        try:
            Engine(control, counters, _srtp_factory(), native=native).run()
        finally:
            counters.release()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
