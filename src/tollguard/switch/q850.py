"""SIP status codes to Q.850 release causes (RFC 3398 §8.2.6.1), for CDRs and Reason headers."""

from __future__ import annotations

__all__ = ["NORMAL_CLEARING", "q850_cause"]

NORMAL_CLEARING = 16

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
