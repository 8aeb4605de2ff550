"""The ``rtpengine`` media backend: calls anchored on rtpengine, driven over its ng protocol.

The ng control protocol is one UDP datagram each way: ``<cookie> <bencoded dictionary>``,
the reply carrying the request's cookie (rtpengine answers a repeated cookie from its
cache, so a request is safely resent). Tollguard sends ``offer`` with the customer's
description (from-tag ``caller``), ``answer`` with the gateway's (to-tag ``callee``),
``offer``/``answer`` again for in-dialog re-offers with the tags of the side that sent
them, ``query`` for the media timeout and ``delete`` at the end, whose statistics go
into the CDR.

Every offer asks for ``strict source`` (packets from any address but the endpoint's are
dropped) and removes ICE. A side whose description names another address than its
signalling address (behind NAT) gets ``SIP source address``: its media is expected from
its signalling address. rtpengine must run with ``endpoint-learning = off``: with its
default (``delayed``) it forwards whatever reaches a port during the first seconds of a
stream, from anyone (the test suite shows it); the per-call ``endpoint-learning`` key
sent as well is honoured only by rtpengine releases newer than Debian 12's 10.5.
SRTP (SDES) towards a customer that offers it over TLS is rtpengine's work; the gateway
leg is offered plain RTP.

The offer and answer are answered by rtpengine within a round trip on the switch's
loop (``rtpengine_timeout_s`` at most, resent once halfway): the call path waits for
them, as it must, since the description it forwards comes from rtpengine. The media
timeout's queries run in the background on a second socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tollguard.config import MediaSettings
from tollguard.media.anchor import announced, is_ip, on_hold, relayable
from tollguard.media.backend import MediaCounters, MediaRefused, Party, is_sdp
from tollguard.media.bencode import Bencoded, BencodeError, decode, encode
from tollguard.sip.errors import SipError
from tollguard.sip.sdp import SessionDescription, parse_sdp

__all__ = ["NgClient", "NgError", "Rtpengine"]

log = logging.getLogger(__name__)

_CALLER, _CALLEE = "caller", "callee"
_SECURE = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_SWEEP_S = 1.0


class NgError(Exception):
    """rtpengine did not answer, or answered with an error."""


def _text(value: Bencoded | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


class NgClient:
    """Requests to rtpengine's ng control port and their replies, one at a time."""

    def __init__(self, address: tuple[str, int], timeout_s: float) -> None:
        self.address = address
        self.timeout_s = timeout_s
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.connect(address)
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    def cookie(self) -> bytes:
        return f"{self._prefix}{next(self._counter)}".encode()

    def request(self, command: Mapping[str, object]) -> dict[bytes, Bencoded]:
        """Send ``command`` and wait for its reply; raises NgError."""
        cookie = self.cookie()
        data = cookie + b" " + encode(command)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.timeout_s
        resend_at = time.monotonic() + self.timeout_s / 2
        try:
            self._sock.send(data)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise NgError(
                        f"no answer from rtpengine at {self.address} to {command['command']}"
                    )
                if now >= resend_at:
                    self._sock.send(data)
                    resend_at = deadline
                self._sock.settimeout(min(deadline, resend_at) - now)
                try:
                    reply = self._sock.recv(65535)
                except TimeoutError:
                    continue
                result = parse_reply(reply, cookie)
                if result is not None:
                    return result
        except OSError as exc:
            raise NgError(f"rtpengine at {self.address}: {exc}") from exc

    def close(self) -> None:
        self._sock.close()


def parse_reply(data: bytes, cookie: bytes) -> dict[bytes, Bencoded] | None:
    """The reply's dictionary when it answers ``cookie`` (None for another reply).

    Raises NgError for a malformed reply or ``result`` other than ``ok``/``pong``.
    """
    got, _, body = data.partition(b" ")
    if got != cookie:
        return None
    try:
        value = decode(body)
    except BencodeError as exc:
        raise NgError(f"malformed reply from rtpengine: {exc}") from exc
    if not isinstance(value, dict):
        raise NgError("reply from rtpengine is not a dictionary")
    result = _text(value.get(b"result"))
    if result not in {"ok", "pong"}:
        reason = _text(value.get(b"error-reason")) or result
        raise NgError(f"rtpengine refused: {reason}")
    return value


@dataclass(slots=True)
class _Call:
    caller: Party
    callee: Party | None = None
    answered: bool = False
    caller_held: bool = False
    callee_held: bool = False
    next_check: float = 0.0
    timed_out: bool = False
    # The side whose in-dialog offer went out and awaits its answer, if any.
    offering: str | None = None


class Rtpengine:
    """The ``rtpengine`` media backend (see the module docstring)."""

    name = "rtpengine"

    def __init__(self, address: tuple[str, int], settings: MediaSettings) -> None:
        self._settings = settings
        self.client = NgClient(address, settings.rtpengine_timeout_s)
        self.on_timeout: Callable[[str], None] = lambda session: None
        self._calls: dict[str, _Call] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: socket.socket | None = None
        self._pending: dict[bytes, str] = {}
        self._sweep_handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Check that rtpengine answers; from a running loop, start the media timeout."""
        try:
            self.client.request({"command": "ping"})
        except NgError as exc:
            log.warning("%s (calls anchored on rtpengine will be refused until it is)", exc)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._settings.timeout_s > 0:
            address = self.client.address
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            self._poller = socket.socket(family, socket.SOCK_DGRAM)
            self._poller.setblocking(False)
            self._poller.connect(address)
            self._loop.add_reader(self._poller.fileno(), self._on_query_reply)
            self._sweep_handle = self._loop.call_later(_SWEEP_S, self._sweep)

    def close(self) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        if self._poller is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._poller.fileno())
            self._poller.close()
            self._poller = None
        self.client.close()

    # -- the backend -----------------------------------------------------------------------

    def offer(self, session: str, body: bytes, content_type: str | None, caller: Party) -> bytes:
        if not is_sdp(content_type):
            raise MediaRefused(415, "Unsupported Media Type", f"not SDP: {content_type}")
        try:
            sdp = parse_sdp(body)
        except SipError as exc:
            raise MediaRefused(488, "Not Acceptable Here", f"unusable SDP: {exc}") from exc
        if caller.transport != "tls" and any(
            relayable(media) and media.proto in _SECURE for media in sdp.media
        ):
            raise MediaRefused(
                488,
                "Not Acceptable Here",
                f"SRTP keys offered over {caller.transport}: SDES needs TLS signalling",
            )
        command = self._command("offer", session, _CALLER, None, sdp, body, caller)
        command["transport-protocol"] = "RTP/AVP"
        try:
            reply = self.client.request(command)
        except NgError as exc:
            raise MediaRefused(503, "Service Unavailable", str(exc)) from exc
        self._calls[session] = _Call(caller, caller_held=on_hold(sdp))
        return _sdp_of(reply, body)

    def answer(self, session: str, body: bytes, content_type: str | None, callee: Party) -> bytes:
        call = self._calls.get(session)
        sdp = _parse(session, body, content_type) if call is not None else None
        if call is None or sdp is None:
            return body
        call.callee = callee
        call.callee_held = on_hold(sdp)
        command = self._command("answer", session, _CALLER, _CALLEE, sdp, body, callee)
        return self._exchange(session, command, body)

    def answered(self, session: str) -> None:
        call = self._calls.get(session)
        if call is not None:
            call.answered = True
            call.next_check = time.monotonic() + self._settings.timeout_s

    def reoffer(
        self, session: str, from_customer: bool, body: bytes, content_type: str | None
    ) -> bytes:
        call = self._calls.get(session)
        sdp = _parse(session, body, content_type) if call is not None else None
        if call is None or sdp is None:
            return body
        # rtpengine tells an offer from an answer by the command: a body from one side
        # while the other side's offer awaits its answer is that answer; any other is
        # a new offer from its sender's tag (RFC 3264 §8).
        sender, other = (_CALLER, _CALLEE) if from_customer else (_CALLEE, _CALLER)
        offering = call.offering != other
        party = call.caller if from_customer else (call.callee or call.caller)
        if from_customer:
            call.caller_held = on_hold(sdp)
        else:
            call.callee_held = on_hold(sdp)
        if offering:
            command = self._command("offer", session, sender, other, sdp, body, party)
            call.offering = sender
        else:
            command = self._command("answer", session, other, sender, sdp, body, party)
            call.offering = None
        return self._exchange(session, command, body)

    def end(self, session: str) -> MediaCounters:
        call = self._calls.pop(session, None)
        if call is None:
            return MediaCounters(self.name)
        try:
            reply = self.client.request(
                {"command": "delete", "call-id": session, "from-tag": _CALLER}
            )
        except NgError as exc:
            log.warning("call %s: media counters lost: %s", session, exc)
            return MediaCounters(self.name, timed_out=call.timed_out)
        return counters_of(reply, self.name, call.timed_out)

    # -- helpers --------------------------------------------------------------------------

    def _command(  # noqa: PLR0917 (an ng command's parts)
        self,
        command: str,
        session: str,
        from_tag: str,
        to_tag: str | None,
        sdp: SessionDescription,
        body: bytes,
        party: Party,
    ) -> dict[str, object]:
        where = [item for item in announced(sdp) if item is not None]
        natted = any(item.host != party.host for item in where)
        flags = ["strict source"]
        if natted and is_ip(party.host):
            # Behind NAT: expect the media from the signalling address (and the
            # announced port) rather than learning it from whoever sends first.
            flags.append("SIP source address")
        request: dict[str, object] = {
            "command": command,
            "call-id": session,
            "from-tag": from_tag,
            "sdp": body,
            "flags": flags,
            "replace": ["origin", "session-connection"],
            "ICE": "remove",
            "endpoint-learning": "heuristic" if natted else "off",
        }
        if to_tag is not None:
            request["to-tag"] = to_tag
        if is_ip(party.host):
            request["received-from"] = ["IP6" if ":" in party.host else "IP4", party.host]
        return request

    def _exchange(self, session: str, command: dict[str, object], body: bytes) -> bytes:
        try:
            return _sdp_of(self.client.request(command), body)
        except NgError as exc:
            # The call's media cannot follow this description: end the call rather
            # than let its media bypass the anchor.
            log.warning("call %s: %s; ending the call", session, exc)
            if self._loop is not None:
                self._loop.call_soon(self._dead, session)
            return body

    def _dead(self, session: str) -> None:
        call = self._calls.get(session)
        if call is not None:
            call.timed_out = True
            self.on_timeout(session)

    # -- the media timeout -----------------------------------------------------------------

    def _sweep(self) -> None:
        assert self._loop is not None
        self._sweep_handle = self._loop.call_later(_SWEEP_S, self._sweep)
        now = time.monotonic()
        poller = self._poller
        if poller is None:
            return
        for session, call in self._calls.items():
            if not call.answered or call.timed_out or now < call.next_check:
                continue
            call.next_check = now + max(1.0, self._settings.timeout_s / 3)
            cookie = self.client.cookie()
            self._pending[cookie] = session
            with contextlib.suppress(OSError):
                poller.send(cookie + b" " + encode({"command": "query", "call-id": session}))
        if len(self._pending) > 4 * max(1, len(self._calls)):
            self._pending.clear()  # replies that never came

    def _on_query_reply(self) -> None:
        assert self._poller is not None
        while True:
            try:
                data = self._poller.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("rtpengine query failed: %s", exc)
                return
            cookie = data.partition(b" ")[0]
            session = self._pending.pop(cookie, None)
            call = self._calls.get(session) if session is not None else None
            if session is None or call is None:
                continue
            try:
                reply = parse_reply(data, cookie)
            except NgError as exc:
                log.info("call %s: rtpengine no longer has it (%s)", session, exc)
                self._dead(session)
                continue
            if reply is None or call.caller_held or call.callee_held:
                continue
            last = last_packet(reply)
            now = time.time()
            if last and now - last >= self._settings.timeout_s:
                log.info("call %s: no RTP for %s s", session, self._settings.timeout_s)
                self._dead(session)


def _parse(session: str, body: bytes, content_type: str | None) -> SessionDescription | None:
    if not is_sdp(content_type):
        return None
    try:
        return parse_sdp(body)
    except SipError as exc:
        log.warning("call %s: unusable SDP passed unchanged: %s", session, exc)
        return None


def _sdp_of(reply: Mapping[bytes, Bencoded], body: bytes) -> bytes:
    sdp = reply.get(b"sdp")
    if not isinstance(sdp, bytes) or not sdp:
        raise NgError("rtpengine's reply has no SDP")
    return sdp


def _streams(reply: Mapping[bytes, Bencoded], tag: str) -> list[dict[bytes, Bencoded]]:
    tags = reply.get(b"tags")
    if not isinstance(tags, dict):
        return []
    monologue = tags.get(tag.encode())
    if not isinstance(monologue, dict):
        return []
    streams: list[dict[bytes, Bencoded]] = []
    medias = monologue.get(b"medias")
    for media in medias if isinstance(medias, list) else []:
        if isinstance(media, dict) and isinstance(media.get(b"streams"), list):
            items = media[b"streams"]
            assert isinstance(items, list)
            streams.extend(item for item in items if isinstance(item, dict))
    return streams


def _is_rtp(stream: Mapping[bytes, Bencoded]) -> bool:
    flags = stream.get(b"flags")
    return isinstance(flags, list) and b"RTP" in flags


def _stat(stream: Mapping[bytes, Bencoded], name: bytes) -> int:
    stats = stream.get(b"stats")
    value = stats.get(name) if isinstance(stats, dict) else None
    return value if isinstance(value, int) else 0


def counters_of(reply: Mapping[bytes, Bencoded], backend: str, timed_out: bool) -> MediaCounters:
    """The CDR counters from a ``query`` or ``delete`` reply (RTP streams of each tag)."""
    caller = [s for s in _streams(reply, _CALLER) if _is_rtp(s)]
    callee = [s for s in _streams(reply, _CALLEE) if _is_rtp(s)]
    every = _streams(reply, _CALLER) + _streams(reply, _CALLEE)
    # rtpengine counts every packet that reached a port, and the ones it dropped (from a
    # stranger under strict source) as errors too; its byte count includes them.
    return MediaCounters(
        backend,
        caller_packets=sum(_stat(s, b"packets") - _stat(s, b"errors") for s in caller),
        caller_bytes=sum(_stat(s, b"bytes") for s in caller),
        callee_packets=sum(_stat(s, b"packets") - _stat(s, b"errors") for s in callee),
        callee_bytes=sum(_stat(s, b"bytes") for s in callee),
        dropped=sum(_stat(s, b"errors") for s in every),
        timed_out=timed_out,
    )


def last_packet(reply: Mapping[bytes, Bencoded]) -> int:
    """The newest ``last packet`` time (Unix seconds) of the call's RTP streams, or 0."""
    newest = 0
    for tag in (_CALLER, _CALLEE):
        for stream in _streams(reply, tag):
            value = stream.get(b"last packet")
            if _is_rtp(stream) and isinstance(value, int):
                newest = max(newest, value)
    return newest
