"""The embedded RTP relay backend: each call's media anchored on ports of the switch.

This half runs in the switch process and holds the policy; the packet loop
(:mod:`tollguard.media.rtp`) runs in its own process (or a thread, ``relay_process =
false``). At the offer, the relay binds two port pairs per RTP stream from the
configured range (:class:`PortPool`): one the customer sends to, one the gateway
sends to, RTP on an even port and RTCP on the next. The sockets go to the engine over a
Unix socket pair; the offer leaves towards the gateways pointing at the gateway-side
ports, the answer towards the customer pointing at the customer-side ports
(:func:`tollguard.media.anchor.anchor`).

Each side's media is locked to the address its session description announced. When
that address is not the side's signalling address (the peer is behind NAT), the first
packet from the signalling IP address within ``latch_window_s`` may lock it instead; a
lock never moves to another source. A customer that offers SDES-SRTP over TLS gets SRTP
on its leg, terminated here (:mod:`tollguard.media.srtp`); the gateway leg carries RTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import json
import logging
import mmap
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tollguard.config import MediaSettings
from tollguard.media import srtp
from tollguard.media.anchor import (
    Announced,
    RelayPorts,
    anchor,
    announced,
    is_ip,
    on_hold,
    relayable,
)
from tollguard.media.backend import MediaCounters, MediaRefused, Party, is_sdp
from tollguard.media.rtp import SLOT_SIZE, Engine, control_message, native_available
from tollguard.sip.errors import SipError
from tollguard.sip.sdp import Attribute, SessionDescription, parse_sdp

__all__ = ["EmbeddedRelay", "PortPool"]

log = logging.getLogger(__name__)

_WILDCARD = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (compared against, not bound)
_SECURE = {"RTP/SAVP": "RTP/AVP", "RTP/SAVPF": "RTP/AVPF"}
_PLAIN = {plain: secure for secure, plain in _SECURE.items()}
_ENGINE_STOP_S = 5.0
# Streams relayed per call; further media lines are rejected (port 0), so that one
# description cannot take the whole port range.
MAX_STREAMS = 8


class PortPool:
    """RTP/RTCP port pairs from ``[low, high]``: RTP on an even port, RTCP on the next.

    Ports are handed out in turn through the range, so a port just given back is the
    last to be used again (a late packet of an ended call does not reach a new one).
    A pair whose ports another process holds is skipped.
    """

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self._low = low + (low % 2)
        self._high = high - 1  # the last RTP port that leaves room for its RTCP port
        self._next = self._low
        self._busy: set[int] = set()
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET

    @property
    def capacity(self) -> int:
        return max(0, (self._high - self._low) // 2 + 1)

    @property
    def in_use(self) -> int:
        return len(self._busy)

    def take(self) -> tuple[int, socket.socket, socket.socket]:
        """A free pair: its RTP port and the two bound sockets; raises MediaRefused."""
        for _ in range(self.capacity):
            port = self._next
            self._next = port + 2 if port + 2 <= self._high else self._low
            if port in self._busy:
                continue
            rtp = socket.socket(self._family, socket.SOCK_DGRAM)
            rtcp = socket.socket(self._family, socket.SOCK_DGRAM)
            try:
                rtp.bind((self.host, port))
                rtcp.bind((self.host, port + 1))
            except OSError as exc:
                rtp.close()
                rtcp.close()
                if exc.errno != errno.EADDRINUSE:
                    raise MediaRefused(
                        503, "Service Unavailable", f"cannot bind media port {port}: {exc}"
                    ) from exc
                continue
            self._busy.add(port)
            return port, rtp, rtcp
        raise MediaRefused(503, "Service Unavailable", "no free media ports")

    def give_back(self, port: int) -> None:
        self._busy.discard(port)


@dataclass(slots=True)
class _SrtpLeg:
    """SRTP on the customer's side of one stream: its key, and the relay's key to it."""

    theirs: srtp.Crypto
    ours: srtp.Crypto


@dataclass(slots=True)
class _Call:
    sid: int
    slot: int
    caller: Party
    # Per media line of the offer: the customer-side and gateway-side ports, or None.
    streams: list[tuple[RelayPorts, RelayPorts] | None] = field(default_factory=list)
    srtp: dict[int, _SrtpLeg] = field(default_factory=dict)
    protocols: list[str] = field(default_factory=list)  # the customer's, per line
    callee: Party | None = None
    caller_held: bool = False
    callee_held: bool = False
    held: bool = False


class EmbeddedRelay:
    """The ``relay`` media backend (see the module docstring)."""

    name = "relay"

    def __init__(
        self, settings: MediaSettings, advertised_host: str = "", listen_host: str = ""
    ) -> None:
        """``listen_host`` is where SIP listens: the relay binds there unless
        ``relay_host`` says otherwise; ``advertised_host`` is the SIP advertised host."""
        self._settings = settings
        bind = settings.relay_host or listen_host or "127.0.0.1"
        self.host = settings.relay_advertised_host or (
            advertised_host if bind in _WILDCARD else bind
        )
        if not self.host:
            self.host = "127.0.0.1"
        self.pool = PortPool(bind, settings.port_min, settings.port_max)
        self.slots = max(1, self.pool.capacity // 2)
        self.on_timeout: Callable[[str], None] = lambda session: None
        self._calls: dict[str, _Call] = {}
        self._by_sid: dict[int, str] = {}
        self._free_slots = list(range(self.slots - 1, -1, -1))
        self._next_sid = 1
        self._control: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._shared: mmap.mmap | None = None
        self._counters: memoryview | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pings = 0

    @property
    def native(self) -> bool:
        """Whether the engine moves the steady state's packets in C (``relay_native``
        and the C module built)."""
        return self._settings.relay_native and native_available()

    @property
    def engine_pid(self) -> int | None:
        """The engine process's id (None when it runs in a thread or not at all)."""
        return self._process.pid if self._process is not None else None

    def advertise(self, host: str) -> None:
        """The switch's advertised address, when none was configured for the relay."""
        if not self._settings.relay_advertised_host and self.pool.host in _WILDCARD:
            self.host = host

    # -- the engine ------------------------------------------------------------------------

    def start(
        self, *, process: bool | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        """Start the packet engine; from a running event loop, also hear its reports.

        ``process`` overrides ``relay_process``; ``clock`` replaces the monotonic clock of
        an engine run in a thread (tests move it to reach a media timeout).
        """
        if self._control is not None:
            return
        in_process = self._settings.relay_process if process is None else process
        size = self.slots * SLOT_SIZE * 8
        memfd = os.memfd_create("tollguard-media-counters")
        try:
            os.ftruncate(memfd, size)
            self._shared = mmap.mmap(memfd, size)
            self._counters = memoryview(self._shared).cast("q")
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            if in_process:
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tollguard.media.rtp",
                        str(theirs.fileno()),
                        str(memfd),
                        str(self.slots),
                        *([] if self._settings.relay_native else ["--python"]),
                    ],
                    pass_fds=(theirs.fileno(), memfd),
                    stdin=subprocess.DEVNULL,
                )
                theirs.close()
            else:
                theirs.setblocking(False)
                engine = Engine(
                    theirs,
                    self._counters,
                    _srtp_factory(),
                    clock=clock or time.monotonic,
                    native=self._settings.relay_native,
                )
                self._thread = threading.Thread(
                    target=_run_and_close, args=(engine, theirs), name="media-relay", daemon=True
                )
                self._thread.start()
        finally:
            os.close(memfd)
        self._control = ours
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if self._loop is not None:
            self._loop.add_reader(ours.fileno(), self.poll)
        log.info(
            "media relay: ports %d-%d on %s, advertised as %s, engine in a %s, packets in %s",
            self._settings.port_min,
            self._settings.port_max,
            self.pool.host,
            self.host,
            "process" if in_process else "thread",
            "C" if self.native else "Python",
        )

    def close(self) -> None:
        """Stop the engine: every call's sockets are closed."""
        control = self._control
        if control is None:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(control.fileno())
        with contextlib.suppress(OSError):
            control.send(control_message("stop"))
        if self._process is not None:
            try:
                self._process.wait(_ENGINE_STOP_S)
            except subprocess.TimeoutExpired:
                log.warning("media engine did not stop; killing it")
                self._process.kill()
                self._process.wait()
        if self._thread is not None:
            self._thread.join(_ENGINE_STOP_S)
        control.close()
        self._control = None
        if self._counters is not None:
            self._counters.release()
            self._counters = None
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        for session in list(self._calls):
            self._release(session)

    def ping(self, timeout_s: float = 5.0) -> bool:
        """Whether the engine answers within ``timeout_s``: every command sent before
        has then been applied (reports read meanwhile are handled as by :meth:`poll`)."""
        control = self._control
        if control is None:
            return False
        self._pings += 1
        self._send("ping", n=self._pings)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([control], [], [], deadline - time.monotonic())
            if ready and self.poll() == self._pings:
                return True
        return False

    def poll(self) -> int:
        """Read the engine's reports (media timeouts) and tell the switch.

        Returns the number of the last ``pong`` read (0 when none was).
        """
        control = self._control
        pong = 0
        if control is None:
            return pong
        while True:
            try:
                data = control.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return pong
            except OSError:
                log.exception("media engine control socket failed")
                return pong
            if not data:
                log.error("media engine exited; relayed calls lose their media")
                if self._loop is not None:
                    self._loop.remove_reader(control.fileno())
                return pong
            message = _json(data)
            number = message.get("n")
            if message.get("op") == "pong" and isinstance(number, int):
                pong = number
            sid = message.get("sid")
            if message.get("op") == "dead" and isinstance(sid, int):
                session = self._by_sid.get(sid)
                if session is not None:
                    log.info("call %s: no RTP for %s s", session, self._settings.timeout_s)
                    self.on_timeout(session)

    def _send(self, op: str, fds: list[int] | None = None, **fields: object) -> None:
        if self._control is None:
            raise MediaRefused(503, "Service Unavailable", "the media relay is not running")
        data = control_message(op, **fields)
        try:
            if fds:
                socket.send_fds(self._control, [data], fds)
            else:
                self._control.send(data)
        except OSError as exc:
            raise MediaRefused(
                503, "Service Unavailable", f"the media relay's engine is gone: {exc}"
            ) from exc

    def _lost(self, session: str, exc: MediaRefused) -> None:
        """The engine cannot follow a call any more: the call is ended, not left mute."""
        log.error("call %s: %s; ending the call", session, exc.detail)
        if self._loop is not None:
            self._loop.call_soon(self.on_timeout, session)

    # -- the backend -----------------------------------------------------------------------

    def offer(self, session: str, body: bytes, content_type: str | None, caller: Party) -> bytes:
        if not is_sdp(content_type):
            raise MediaRefused(415, "Unsupported Media Type", f"not SDP: {content_type}")
        try:
            sdp = parse_sdp(body)
        except SipError as exc:
            raise MediaRefused(488, "Not Acceptable Here", f"unusable SDP: {exc}") from exc
        if session in self._calls:
            self._release(session)  # a repeated offer (never for one call, but be sure)
        srtp_legs = self._customer_srtp(sdp, caller)
        if not self._free_slots:
            raise MediaRefused(503, "Service Unavailable", "no free media sessions")
        call = _Call(self._next_sid, self._free_slots.pop(), caller)
        self._next_sid += 1
        self._calls[session] = call
        self._by_sid[call.sid] = session
        try:
            self._open(call, sdp)
        except BaseException:
            self._release(session)
            raise
        call.srtp = srtp_legs
        call.protocols = [media.proto for media in sdp.media]
        for index, leg in srtp_legs.items():
            self._send_keys(call, index, leg)
        self._expect(call, "caller", sdp, caller)
        call.caller_held = on_hold(sdp)
        self._update_hold(call)
        return self._towards_callee(call, sdp)

    def answer(self, session: str, body: bytes, content_type: str | None, callee: Party) -> bytes:
        call = self._calls.get(session)
        sdp = _parse(session, body, content_type, call)
        if call is None or sdp is None:
            return body
        call.callee = callee
        try:
            self._expect(call, "callee", sdp, callee)
            call.callee_held = on_hold(sdp)
            self._update_hold(call)
        except MediaRefused as exc:
            self._lost(session, exc)
        return self._towards_caller(call, sdp, answering=True)

    def answered(self, session: str) -> None:
        if session in self._calls:
            try:
                self._send(
                    "answered", sid=self._calls[session].sid, timeout=self._settings.timeout_s
                )
            except MediaRefused as exc:
                self._lost(session, exc)

    def reoffer(
        self, session: str, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes:
        call = self._calls.get(session)
        sdp = _parse(session, body, content_type, call)
        if call is None or sdp is None:
            return body
        try:
            if from_customer:
                self._customer_rekey(call, sdp)
                self._expect(call, "caller", sdp, call.caller)
                call.caller_held = on_hold(sdp)
            else:
                self._expect(call, "callee", sdp, call.callee or call.caller)
                call.callee_held = on_hold(sdp)
            self._update_hold(call)
        except MediaRefused as exc:
            self._lost(session, exc)
        if from_customer:
            return self._towards_callee(call, sdp)
        return self._towards_caller(call, sdp, answering=False)

    def end(self, session: str) -> MediaCounters:
        call = self._calls.get(session)
        if call is None:
            return MediaCounters(self.name)
        counters = self.counters(session)
        self._release(session)
        return counters

    def counters(self, session: str) -> MediaCounters:
        """The live counters of a call (zeros for a call the relay does not carry)."""
        call = self._calls.get(session)
        shared = self._counters
        if call is None or shared is None:
            return MediaCounters(self.name)
        base = call.slot * SLOT_SIZE
        values = shared[base : base + SLOT_SIZE].tolist()
        return MediaCounters(
            self.name,
            caller_packets=values[0],
            caller_bytes=values[1],
            caller_lost=values[2],
            callee_packets=values[3],
            callee_bytes=values[4],
            callee_lost=values[5],
            dropped=values[6],
            timed_out=bool(values[7]),
        )

    def relay_ports(self, session: str) -> list[tuple[int, int] | None]:
        """Per media line, the (customer-side, gateway-side) RTP ports of a call."""
        call = self._calls.get(session)
        if call is None:
            return []
        return [(pair[0].rtp, pair[1].rtp) if pair else None for pair in call.streams]

    @property
    def calls(self) -> int:
        return len(self._calls)

    # -- helpers --------------------------------------------------------------------------

    def _open(self, call: _Call, sdp: SessionDescription) -> None:
        fds: list[int] = []
        sockets: list[socket.socket] = []
        try:
            for media in sdp.media:
                relayed = sum(pair is not None for pair in call.streams)
                if not relayable(media) or relayed >= MAX_STREAMS:
                    call.streams.append(None)
                    continue
                a_port, a_rtp, a_rtcp = self.pool.take()
                sockets += (a_rtp, a_rtcp)
                call.streams.append((RelayPorts(a_port), RelayPorts(0)))
                b_port, b_rtp, b_rtcp = self.pool.take()
                sockets += (b_rtp, b_rtcp)
                call.streams[-1] = (RelayPorts(a_port), RelayPorts(b_port))
            fds = [sock.fileno() for sock in sockets]
            self._send("open", fds, sid=call.sid, slot=call.slot)
        finally:
            for sock in sockets:
                sock.close()

    def _expect(self, call: _Call, side: str, sdp: SessionDescription, party: Party) -> None:
        where = announced(sdp)
        streams: list[list[object] | None] = []
        natted = False
        for index, pair in enumerate(call.streams):
            item = where[index] if index < len(where) else None
            if pair is None or item is None:
                streams.append(None)
                continue
            streams.append([item.host, item.rtp_port, item.rtcp_host, item.rtcp_port])
            natted = natted or not _same_host(item, party.host)
        nat_ip = party.host if natted and is_ip(party.host) else None
        self._send(
            "peer",
            sid=call.sid,
            side=side,
            streams=streams,
            nat_ip=nat_ip,
            window=self._settings.latch_window_s,
        )

    def _update_hold(self, call: _Call) -> None:
        held = call.caller_held or call.callee_held
        if held != call.held:
            call.held = held
            self._send("hold", sid=call.sid, held=held)

    def _towards_callee(self, call: _Call, sdp: SessionDescription) -> bytes:
        ports = _ports(call, sdp, callee_side=True)
        # SRTP ends at the relay: the gateway leg is offered plain RTP.
        protocols = [
            _SECURE.get(media.proto) if index in call.srtp else None
            for index, media in enumerate(sdp.media)
        ]
        return anchor(sdp, self.host, ports, protocols=protocols).to_bytes()

    def _towards_caller(self, call: _Call, sdp: SessionDescription, *, answering: bool) -> bytes:
        ports = _ports(call, sdp, callee_side=False)
        protocols: list[str | None] = []
        extra: list[tuple[Attribute, ...]] = []
        for index, media in enumerate(sdp.media):
            leg = call.srtp.get(index)
            if leg is None:
                protocols.append(None)
                extra.append(())
                continue
            protocols.append(_PLAIN.get(media.proto, media.proto))
            # In an answer the relay's key carries the tag of the customer's offer.
            crypto = leg.ours if not answering else _retag(leg.ours, leg.theirs.tag)
            extra.append((Attribute("crypto", crypto.attribute_value()),))
        return anchor(sdp, self.host, ports, protocols=protocols, extra=extra).to_bytes()

    def _customer_srtp(self, sdp: SessionDescription, caller: Party) -> dict[int, _SrtpLeg]:
        """SRTP legs the customer's offer asks for; refuses keys sent in the clear."""
        legs: dict[int, _SrtpLeg] = {}
        for index, media in enumerate(sdp.media):
            if not relayable(media) or media.proto not in _SECURE:
                continue
            if caller.transport != "tls":
                raise MediaRefused(
                    488,
                    "Not Acceptable Here",
                    f"SRTP keys offered over {caller.transport}: SDES needs TLS signalling",
                )
            crypto = _first_usable_crypto(media.attributes)
            if crypto is None:
                raise MediaRefused(488, "Not Acceptable Here", "no usable a=crypto line")
            legs[index] = _SrtpLeg(crypto, srtp.Crypto.fresh(crypto.tag, crypto.suite))
        return legs

    def _customer_rekey(self, call: _Call, sdp: SessionDescription) -> None:
        for index, leg in call.srtp.items():
            if index >= len(sdp.media):
                continue
            crypto = _first_usable_crypto(sdp.media[index].attributes)
            if crypto is not None and crypto.key != leg.theirs.key:
                leg.theirs = crypto
                self._send_keys(call, index, leg)

    def _send_keys(self, call: _Call, index: int, leg: _SrtpLeg) -> None:
        self._send(
            "srtp",
            sid=call.sid,
            side="caller",
            stream=index,
            suite=leg.theirs.suite,
            inbound=base64.b64encode(leg.theirs.key).decode(),
            outbound=base64.b64encode(leg.ours.key).decode(),
        )

    def _release(self, session: str) -> None:
        call = self._calls.pop(session, None)
        if call is None:
            return
        self._by_sid.pop(call.sid, None)
        with contextlib.suppress(OSError, MediaRefused):
            self._send("close", sid=call.sid)
        for pair in call.streams:
            if pair is not None:
                self.pool.give_back(pair[0].rtp)
                if pair[1].rtp:
                    self.pool.give_back(pair[1].rtp)
        self._free_slots.append(call.slot)


def _same_host(item: Announced, host: str) -> bool:
    return item.host == host and item.rtcp_host == host


def _ports(call: _Call, sdp: SessionDescription, *, callee_side: bool) -> list[RelayPorts | None]:
    ports: list[RelayPorts | None] = []
    for index, media in enumerate(sdp.media):
        pair = call.streams[index] if index < len(call.streams) else None
        if pair is None or not relayable(media):
            ports.append(None)
        else:
            ports.append(pair[1] if callee_side else pair[0])
    return ports


def _parse(
    session: str, body: bytes, content_type: str | None, call: _Call | None
) -> SessionDescription | None:
    if call is None:
        return None
    if not is_sdp(content_type):
        log.info("call %s: body of type %s passed unchanged", session, content_type)
        return None
    try:
        return parse_sdp(body)
    except SipError as exc:
        log.warning("call %s: unusable SDP passed unchanged: %s", session, exc)
        return None


def _first_usable_crypto(attributes: tuple[Attribute, ...]) -> srtp.Crypto | None:
    for attribute in attributes:
        if attribute.name == "crypto" and attribute.value:
            crypto = srtp.parse_crypto(attribute.value)
            if crypto is not None:
                return crypto
    return None


def _retag(crypto: srtp.Crypto, tag: int) -> srtp.Crypto:
    return srtp.Crypto(tag, crypto.suite, crypto.key)


def _json(data: bytes) -> dict[str, object]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _run_and_close(engine: Engine, control: socket.socket) -> None:
    try:
        engine.run()
    finally:
        control.close()


def _srtp_factory() -> Callable[[str, bytes, bool], object]:
    return srtp.session
