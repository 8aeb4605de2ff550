"""Admin sign-in events on the ``tollguard.security`` logger, shaped for fail2ban::

    admin login failure: ip=203.0.113.9 user="root"
    admin login: ip=198.51.100.4 user="root"

(filter: ``admin login failure: ip=<HOST> ``). The same logger carries the switch's
SIP authentication failures, so one jail can watch both.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

security_log = logging.getLogger("tollguard.security")

_USER_MAX = 64


def _client_ip(request: HttpRequest | None) -> str:
    if request is None:
        return "-"
    return str(request.META.get("REMOTE_ADDR") or "-")


def _printable(name: object) -> str:
    # A user name is attacker-controlled: no quotes, no line breaks in a log line.
    text = "".join(c if c.isprintable() and c not in '"\\' else "?" for c in str(name))
    return text[:_USER_MAX]


def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    security_log.info(
        'admin login: ip=%s user="%s"', _client_ip(request), _printable(user.get_username())
    )


def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    name = user.get_username() if user is not None else ""
    security_log.info('admin logout: ip=%s user="%s"', _client_ip(request), _printable(name))


def _on_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    security_log.warning(
        'admin login failure: ip=%s user="%s"',
        _client_ip(request),
        _printable(credentials.get("username", "")),
    )


def connect() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="tollguard.security.login")
    user_logged_out.connect(_on_logout, dispatch_uid="tollguard.security.logout")
    user_login_failed.connect(_on_failure, dispatch_uid="tollguard.security.failure")
