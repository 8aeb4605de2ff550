"""Security events of the switch: one line each on the ``tollguard.security`` logger.

Every line reads ``<event>: ip=<address> key=value ...``, the shape of the web app's
events (``tollguard.web.security.events``), so one fail2ban filter reads them all::

    sip ban: ip=203.0.113.9 until=2026-01-02T03:04:05Z reason=auth-failures offences=2 mode=refuse
    sip unban: ip=203.0.113.9 by="ops"
    sip scanner: ip=203.0.113.9 agent="friendly-scanner"
    sip flood: ip=203.0.113.9 rate=30/s
    sip account lock: ip=203.0.113.9 user="1001" sources=5
    fraud block: ip=198.51.100.4 customer=3 account=7 rule=destination-denied callee="882..."
    fraud suspension: ip=198.51.100.4 subject=account:7 until=never reason="velocity"
    fraud alert: ip=198.51.100.4 customer=3 account=7 rule=velocity-destinations

Field order is fixed per event. Text a caller controls (user names, user agents,
numbers) is quoted with quotes, backslashes and anything unprintable replaced by ``?``
and cut at 64 characters, so no value can forge a second line or a field.
"""

from __future__ import annotations

import logging
import time

__all__ = ["Text", "format_event", "log_event", "printable", "utc_stamp"]

security_log = logging.getLogger("tollguard.security")

_TEXT_MAX = 64


class Text(str):
    """A value to print quoted (attacker-controlled or free text)."""

    __slots__ = ()


def printable(value: str, limit: int = _TEXT_MAX) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "?" for c in value[:limit])


def utc_stamp(epoch: float | None) -> str:
    """``2026-01-02T03:04:05Z``, or ``never`` for no expiry."""
    if epoch is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def format_event(event: str, ip: str, fields: tuple[tuple[str, object], ...]) -> str:
    parts = [f"{event}: ip={printable(ip, 45) or '-'}"]
    for key, value in fields:
        if isinstance(value, Text):
            parts.append(f'{key}="{printable(value)}"')
        else:
            # Plain values come from the code (numbers, enum values), never from a peer;
            # spaces would still split a field, so they are replaced all the same.
            parts.append(f"{key}={printable(str(value)).replace(' ', '_')}")
    return " ".join(parts)


def log_event(
    event: str, ip: str, *fields: tuple[str, object], level: int = logging.WARNING
) -> None:
    if security_log.isEnabledFor(level):
        security_log.log(level, "%s", format_event(event, ip, fields))
