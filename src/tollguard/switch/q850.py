"""Q.850 release causes: from SIP status codes (RFC 3398 §8.2.6.1) and in Reason headers.

CDRs carry a cause for every call; the CANCELs and BYEs the switch sends carry one in a
Reason header (RFC 3326), and those it receives pass theirs on.
"""

from __future__ import annotations

import logging

from tollguard.sip.errors import LocalProtocolError
from tollguard.sip.headers import parse_reason
from tollguard.sip.message import Request

__all__ = [
    "NORMAL_CLEARING",
    "REASON_ELSEWHERE",
    "REASON_MAX_DURATION",
    "REASON_NO_ANSWER",
    "REASON_TIMER_EXPIRY",
    "q850_cause",
    "q850_of_reasons",
    "reason_lines",
    "reasons_of",
]

log = logging.getLogger(__name__)

NORMAL_CLEARING = 16

# Reason header values (RFC 3326) on the CANCELs and BYEs the switch starts itself; the
# Q.850 cause (ITU-T Q.850 Table 1) is also the CDR's.
REASON_TIMER_EXPIRY = 'Q.850;cause=102;text="Recovery on timer expiry"'
REASON_NO_ANSWER = 'Q.850;cause=19;text="No answer from user"'
REASON_MAX_DURATION = 'Q.850;cause=16;text="Maximum call duration reached"'
# RFC 3326 §2: the CANCEL of the forks that lost to the one that answered, so that those
# phones do not show a missed call.
REASON_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'
# Q.850 causes are 7 bits.
_Q850_MAX = 127

# RFC 3398 §8.2.6.1. 487 has no mapping there; a cancelled call is a normal release by
# the caller. 488/606 map "by Warning header"; without one, bearer capability (65) is
# what carriers use for a codec mismatch.
_CAUSES: dict[int, int] = {
    400: 41,
    401: 21,
    402: 21,
    403: 21,
    404: 1,
    405: 63,
    406: 79,
    407: 21,
    408: 102,
    410: 22,
    413: 127,
    414: 127,
    415: 79,
    416: 127,
    420: 127,
    421: 127,
    423: 127,
    480: 18,
    481: 41,
    482: 25,
    483: 25,
    484: 28,
    485: 1,
    486: 17,
    487: 16,
    488: 65,
    500: 41,
    501: 79,
    502: 38,
    503: 41,
    504: 102,
    505: 127,
    513: 127,
    600: 17,
    603: 21,
    604: 1,
    606: 65,
}


def q850_cause(status: int) -> int:
    """The Q.850 cause for a final SIP status (2xx: normal clearing)."""
    if 200 <= status < 300:
        return NORMAL_CLEARING
    cause = _CAUSES.get(status)
    if cause is not None:
        return cause
    # Unlisted codes fall back on their class: 5xx is a temporary failure (41), the
    # rest "normal, unspecified" (31).
    return 41 if 500 <= status < 600 else 31


def reasons_of(request: Request) -> tuple[str, ...]:
    """The Reason values (RFC 3326) of a CANCEL or BYE worth passing on: those that parse."""
    values = request.headers.get_all("Reason")
    if not values:
        return ()
    kept: list[str] = []
    for value in values:
        try:
            parse_reason(value)
        except LocalProtocolError:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("call %s: malformed Reason dropped: %r", request.call_id, value[:80])
            continue
        kept.append(value)
    return tuple(kept)


def reason_lines(reasons: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"Reason: {value}" for value in reasons)


def q850_of_reasons(reasons: tuple[str, ...]) -> int | None:
    """The first Q.850 cause among Reason values already checked by :func:`reasons_of`."""
    for value in reasons:
        for reason in parse_reason(value):
            if reason.is_q850 and reason.cause is not None and 0 < reason.cause <= _Q850_MAX:
                return reason.cause
    return None
