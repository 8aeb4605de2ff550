"""Session timers (RFC 4028): a call whose far side has vanished is ended, not billed on.

SIP has no keep-alive of its own: when a BYE is lost for good (a phone loses power, a
NAT binding expires, every retransmission is dropped), the switch would keep the call
up until the customer's duration limit and bill it. With session timers each side of an
answered call is refreshed — a re-INVITE or UPDATE answered 2xx — at least once per
*session interval*; the switch ends the call when one side stops.

The switch is a user agent on each leg and negotiates each leg on its own:

* **Customer leg** (the switch is the UAS of the INVITE, RFC 4028 §9): an INVITE whose
  ``Session-Expires`` is below ``sip.session_min_se_s`` gets ``422 Session Interval Too
  Small`` with ``Min-SE`` when the caller supports timers, and is raised to the minimum
  otherwise. The interval is the caller's, lowered to ``sip.session_expires_s`` when that
  is set; the refresher is the one the caller named, else the caller when it supports
  timers, else the switch. The 2xx carries ``Session-Expires`` (and ``Require: timer``
  when the caller supports it). A caller that asked for nothing gets a session timer
  refreshed by the switch when ``sip.session_expires_s`` is set.
* **Gateway leg** (the switch is the UAC, §7): the INVITE offers ``Supported: timer``,
  ``Session-Expires`` and ``Min-SE`` when ``sip.session_expires_s`` is set; the gateway's
  2xx decides. A 2xx without ``Session-Expires`` means no timer on that leg.

While the call is up, the refresher of a leg sends its refresh at half the interval (the
switch sends an UPDATE when the peer allows it, else a re-INVITE carrying the session
description last sent on that leg); the other side expects one and gives up at the
interval minus ``min(32 s, interval/3)`` (§10). Any 2xx to a re-INVITE or UPDATE on a
leg, relayed or the switch's own, refreshes it. The call is ended with BYE on both legs
and a Reason (Q.850 cause 102) when a leg expires, or when the switch's own refresh
times out or gets 408 or 481; other failures of a refresh leave the session as it was.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from tollguard.config import SipSettings
from tollguard.sip.errors import LocalProtocolError
from tollguard.sip.message import Request, Response
from tollguard.switch.call import Call, CallState, Leg, LegSession, TransactionKey
from tollguard.switch.retransmit import Retransmitter
from tollguard.switch.signalling import Signalling
from tollguard.switch.timers import Scheduler
from tollguard.switch.wire import render_request

__all__ = [
    "REASON_REFRESH_FAILED",
    "REASON_SESSION_EXPIRED",
    "SessionTimers",
    "parse_session_expires",
]

log = logging.getLogger(__name__)

REASON_SESSION_EXPIRED = 'Q.850;cause=102;text="Session timer expired"'
REASON_REFRESH_FAILED = 'Q.850;cause=102;text="Session refresh failed"'
# RFC 4028 §4: the smallest interval anyone may ask for.
RFC_MIN_SE = 90
# Intervals longer than a day are refused as nonsense (a uint32 would do, the switch would
# never end such a call).
_MAX_INTERVAL = 86_400

# (call, reasons): end this call with BYE on both legs.
Expired = Callable[[Call, tuple[str, ...]], None]


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """``delta-seconds [;refresher=uac|uas]`` (RFC 4028 §4) -> (seconds, refresher)."""
    head, *params = value.split(";")
    text = head.strip()
    if not text.isdigit() or len(text) > 10:
        raise LocalProtocolError(f"Session-Expires {value[:40]!r} is not delta-seconds")
    refresher: str | None = None
    for param in params:
        name, _, argument = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = argument.strip().lower()
            if refresher not in ("uac", "uas"):
                raise LocalProtocolError(f"Session-Expires refresher {argument!r} is unknown")
    return int(text), refresher


def _delta(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.split(";", 1)[0].strip()
    if not text.isdigit() or len(text) > 10:
        raise LocalProtocolError(f"Min-SE {value[:40]!r} is not delta-seconds")
    return int(text)


def _option(message: Request | Response, tag: str) -> bool:
    """Whether Supported or Require names ``tag`` (most messages name neither)."""
    headers = message.headers
    for name in ("Supported", "Require"):
        value = headers.get(name)
        if value is not None and tag in value and tag in headers.get_all(name):
            return True
    return False


def _allows_update(message: Request | Response) -> bool:
    value = message.headers.get("Allow")
    if value is None or "UPDATE" not in value.upper():
        return False
    return any(method.upper() == "UPDATE" for method in message.headers.get_all("Allow"))


class SessionTimers:
    """Negotiates, refreshes and watches the session timers of every call."""

    __slots__ = (
        "_expired",
        "_maximum",
        "_minimum",
        "_offer",
        "_retransmitter",
        "_scheduler",
        "_sig",
    )

    def __init__(
        self,
        settings: SipSettings,
        scheduler: Scheduler,
        signalling: Signalling,
        retransmitter: Retransmitter,
        on_expired: Expired,
    ) -> None:
        self._scheduler = scheduler
        self._sig = signalling
        self._retransmitter = retransmitter
        self._expired = on_expired
        self._minimum = settings.session_min_se_s
        self._maximum = settings.session_expires_s  # 0: offer nothing, honour requests
        self._offer = (
            (
                "Supported: timer",
                f"Session-Expires: {self._maximum}",
                f"Min-SE: {self._minimum}",
            )
            if self._maximum
            else ()
        )

    # -- the customer's INVITE (the switch is its UAS) ------------------------------------

    def too_small(self, request: Request) -> tuple[str, ...] | None:
        """The extra lines of a 422 when the INVITE's interval must be refused."""
        value = request.headers.get("Session-Expires")
        if value is None:
            return None
        interval, _ = parse_session_expires(value)
        minimum = max(self._minimum, _delta(request.headers.get("Min-SE")) or 0)
        if interval < minimum and _option(request, "timer"):
            return (f"Min-SE: {minimum}",)
        return None

    def for_customer(self, request: Request) -> LegSession | None:
        """The customer leg's session, negotiated from its INVITE (§9)."""
        value = request.headers.get("Session-Expires")
        supports = _option(request, "timer")
        if value is None:
            if not self._maximum:
                return None
            interval, refresher = self._maximum, None
        else:
            interval, refresher = parse_session_expires(value)
            minimum = max(self._minimum, _delta(request.headers.get("Min-SE")) or 0)
            # A caller without timer support is raised to the minimum, not refused (RFC
            # 4028 errata 1687); the switch may lower the interval to its own maximum.
            interval = max(interval, minimum)
            if self._maximum:
                interval = max(min(interval, self._maximum), minimum)
        interval = min(interval, _MAX_INTERVAL)
        if refresher is None:
            refresher = "uac" if supports else "uas"
        elif not supports:
            refresher = "uas"  # a caller that cannot refresh under RFC 4028 does not
        return LegSession(interval, refresher == "uas", supports, _allows_update(request))

    # -- the gateway's INVITE (the switch is its UAC) -------------------------------------

    @property
    def offer_lines(self) -> tuple[str, ...]:
        """Extra lines for the INVITE towards a gateway."""
        return self._offer

    def retry_lines(self, response: Response) -> tuple[str, ...] | None:
        """Lines for the INVITE sent again after a 422: the gateway's minimum (§7.4)."""
        try:
            minimum = _delta(response.headers.get("Min-SE"))
        except LocalProtocolError:
            return None
        if minimum is None or minimum > _MAX_INTERVAL:
            return None
        interval = max(minimum, self._maximum)
        return ("Supported: timer", f"Session-Expires: {interval}", f"Min-SE: {minimum}")

    def for_gateway(self, response: Response) -> LegSession | None:
        """The gateway leg's session, from its 2xx (§7.2); None: no timer on that leg."""
        value = response.headers.get("Session-Expires")
        if value is None:
            return None
        try:
            interval, refresher = parse_session_expires(value)
        except LocalProtocolError as exc:
            log.info("call %s: gateway's %s; no session timer", response.call_id, exc)
            return None
        interval = min(max(interval, 1), _MAX_INTERVAL)
        return LegSession(
            interval, refresher != "uas", _option(response, "timer"), _allows_update(response)
        )

    # -- the answered call ------------------------------------------------------------------

    def response_lines(self, leg: Leg) -> tuple[str, ...]:
        """Lines for a 2xx the switch sends on ``leg`` (it is the UAS of that exchange)."""
        session = leg.session
        if session is None:
            return ()
        lines = (f"Session-Expires: {session.interval};refresher={session.refresher_param(False)}",)
        return (*lines, "Require: timer") if session.peer_supports else lines

    def request_lines(self, leg: Leg) -> tuple[str, ...]:
        """Lines for a re-INVITE or UPDATE the switch sends on ``leg`` (it is the UAC)."""
        session = leg.session
        if session is None:
            return ()
        return (
            "Supported: timer",
            f"Session-Expires: {session.interval};refresher={session.refresher_param(True)}",
        )

    def start(self, call: Call) -> None:
        """The call is answered: arm each leg's timer."""
        self.refreshed(call, call.a)
        if call.attempt is not None:
            self.refreshed(call, call.attempt.leg)

    def refreshed(self, call: Call, leg: Leg) -> None:
        """``leg``'s session was refreshed (a 2xx to a re-INVITE or UPDATE): rearm it."""
        session = leg.session
        if session is None or call.state is not CallState.ANSWERED:
            return
        if session.handle is not None:
            session.handle.cancel()
        interval = session.interval
        if session.switch_refreshes:
            session.handle = self._scheduler.call_later(interval / 2, self._refresh, call, leg)
        else:
            wait = interval - min(32.0, interval / 3)
            session.handle = self._scheduler.call_later(wait, self._expire, call, leg)

    def stop(self, call: Call) -> None:
        for leg in (call.a, call.attempt.leg if call.attempt is not None else None):
            if leg is not None and leg.session is not None and leg.session.handle is not None:
                leg.session.handle.cancel()
                leg.session.handle = None

    def _expire(self, call: Call, leg: Leg) -> None:
        assert leg.session is not None
        leg.session.handle = None
        log.info("call %s: no session refresh from %s:%s", call.call_id, *leg.peer.address)
        self._expired(call, (REASON_SESSION_EXPIRED,))

    def _refresh(self, call: Call, leg: Leg) -> None:
        session = leg.session
        assert session is not None
        session.handle = None
        if session.refresh_cseq:
            return  # the previous refresh is still unanswered; its timeout decides
        method = "UPDATE" if session.use_update or not session.sdp else "INVITE"
        head = self._sig.new_request_head(leg, method)
        extra = self.request_lines(leg)
        body, content_type = b"", None
        if method == "INVITE":
            extra = (*extra, self._sig.contact(leg.peer.transport))
            body, content_type = session.sdp, session.content_type
        data = render_request(
            method, leg.remote_target, head, extra, body=body, content_type=content_type
        )
        session.refresh_cseq = leg.cseq

        def timeout() -> None:
            if session.refresh_cseq:
                session.refresh_cseq = 0
                log.info(
                    "call %s: session refresh to %s:%s timed out", call.call_id, *leg.peer.address
                )
                self._expired(call, (REASON_REFRESH_FAILED,))

        leg.pending[TransactionKey(leg.cseq, method)] = self._retransmitter.request(
            data, leg.peer, invite=method == "INVITE", on_timeout=timeout
        )

    def refresh_answered(self, call: Call, leg: Leg, response: Response) -> None:
        """A response to the switch's own refresh on ``leg``."""
        session = leg.session
        status = response.status
        if session is None or status < 200:
            return
        session.refresh_cseq = 0
        if response.cseq.method == "INVITE" and status < 300:
            head = leg.request_head(self._sig.via(leg.peer.transport), "ACK", response.cseq.seq)
            self._sig.out(render_request("ACK", leg.remote_target, head), leg.peer)
        if status < 300:
            value = response.headers.get("Session-Expires")
            if value is not None:
                # A malformed one keeps the interval the switch asked for.
                with contextlib.suppress(LocalProtocolError):
                    session.interval = min(max(parse_session_expires(value)[0], 1), _MAX_INTERVAL)
            self.refreshed(call, leg)
        elif status in (408, 481):
            # RFC 4028 §10: the dialog is gone.
            self._expired(call, (REASON_REFRESH_FAILED,))
        else:
            # Refused for another reason (491, 500, 501 ...): the session stands; try
            # again at the next half interval.
            self.refreshed(call, leg)
