"""Security events on the ``tollguard.security`` logger, one line each, for fail2ban::

    admin login failure: ip=203.0.113.9 user="root"
    admin login: ip=198.51.100.4 user="root"
    admin logout: ip=198.51.100.4 user="root"
    admin lockout: ip=203.0.113.9 user="root"
    otp failure: ip=203.0.113.9 user="root"
    otp verified: ip=198.51.100.4 user="root"
    honeypot login: ip=203.0.113.9 user="admin" agent="curl/8.5"
    address banned: ip=203.0.113.9 until=2026-01-02T03:04:05Z reason="honeypot login"
    banned address refused: ip=203.0.113.9 path="/x"
    address refused: ip=203.0.113.9 area=admin country=RU
    permission denied: ip=198.51.100.4 user="ops" path="/x7f/auth/user/"
    session ended: ip=198.51.100.4 user="root" count=2 reason="others"
    reauthentication: ip=198.51.100.4 user="root"
    reauthentication failure: ip=203.0.113.9 user="root"
    otp device change: ip=198.51.100.4 user="root" action=added device="authenticator 2"

Every line starts with its event and ``ip=<address>``, so one fail2ban filter
(``^.*: ip=<HOST> ``) matches them all. The switch's SIP authentication failures use the
same logger, so one jail can watch both.
"""

from __future__ import annotations

import logging
from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from tollguard.web.security.network import client_address

security_log = logging.getLogger("tollguard.security")

_TEXT_MAX = 64


def printable(value: object, limit: int = _TEXT_MAX) -> str:
    """Attacker-controlled text made safe for one log line: no quotes, no line breaks."""
    text = "".join(c if c.isprintable() and c not in '"\\' else "?" for c in str(value))
    return text[:limit]


def _address(request: HttpRequest | None) -> str:
    return "-" if request is None else client_address(request)


def _username(request: HttpRequest | None) -> str:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    return printable(user.get_username())


def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    security_log.info(
        'admin login: ip=%s user="%s"', _address(request), printable(user.get_username())
    )


def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    name = user.get_username() if user is not None else ""
    security_log.info('admin logout: ip=%s user="%s"', _address(request), printable(name))


def _on_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    security_log.warning(
        'admin login failure: ip=%s user="%s"',
        _address(request),
        printable(credentials.get("username", "")),
    )


def _on_lockout(
    sender: Any,
    request: HttpRequest | None,
    username: str | None = None,
    ip_address: str | None = None,
    **kwargs: Any,
) -> None:
    security_log.warning(
        'admin lockout: ip=%s user="%s"',
        ip_address or _address(request),
        printable(username or ""),
    )


def otp_failure(request: HttpRequest) -> None:
    security_log.warning('otp failure: ip=%s user="%s"', _address(request), _username(request))


def otp_verified(request: HttpRequest) -> None:
    security_log.info('otp verified: ip=%s user="%s"', _address(request), _username(request))


def honeypot_login(request: HttpRequest, username: str) -> None:
    security_log.warning(
        'honeypot login: ip=%s user="%s" agent="%s"',
        _address(request),
        printable(username),
        printable(request.headers.get("user-agent", ""), 200),
    )


def address_banned(address: str, until: str, reason: str) -> None:
    security_log.warning(
        'address banned: ip=%s until=%s reason="%s"', address, until, printable(reason)
    )


def banned_address_refused(request: HttpRequest) -> None:
    security_log.info(
        'banned address refused: ip=%s path="%s"',
        _address(request),
        printable(request.path, 200),
    )


def address_refused(request: HttpRequest, area: str, country: str | None) -> None:
    security_log.warning(
        "address refused: ip=%s area=%s country=%s", _address(request), area, country or "-"
    )


def permission_denied(request: HttpRequest) -> None:
    security_log.warning(
        'permission denied: ip=%s user="%s" path="%s"',
        _address(request),
        _username(request),
        printable(request.path, 200),
    )


def session_ended(request: HttpRequest, user: Any, count: int, reason: str) -> None:
    security_log.info(
        'session ended: ip=%s user="%s" count=%d reason="%s"',
        _address(request),
        printable(user.get_username()),
        count,
        reason,
    )


def reauthenticated(request: HttpRequest) -> None:
    security_log.info('reauthentication: ip=%s user="%s"', _address(request), _username(request))


def reauthentication_failure(request: HttpRequest) -> None:
    security_log.warning(
        'reauthentication failure: ip=%s user="%s"', _address(request), _username(request)
    )


def otp_device_changed(request: HttpRequest, action: str, device: str) -> None:
    security_log.info(
        'otp device change: ip=%s user="%s" action=%s device="%s"',
        _address(request),
        _username(request),
        action,
        printable(device),
    )


def connect() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="tollguard.security.login")
    user_logged_out.connect(_on_logout, dispatch_uid="tollguard.security.logout")
    user_login_failed.connect(_on_failure, dispatch_uid="tollguard.security.failure")
    user_locked_out.connect(_on_lockout, dispatch_uid="tollguard.security.lockout")
