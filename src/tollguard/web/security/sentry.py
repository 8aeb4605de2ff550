"""Optional error reports through sentry-sdk, with personal data scrubbed.

Only started when ``secrets.toml`` holds ``sentry_dsn``. ``send_default_pii`` stays off
and :func:`scrub` removes what could still identify a person or open an account:
user names, addresses, cookies, authorization headers, SIP credentials.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

REDACTED = "[redacted]"

# Keys whose values never leave the process, compared in lower case.
_SECRET_KEYS = re.compile(
    r"(pass|secret|token|auth|cookie|session|csrf|username|user_name|^user$|email|"
    r"ip_address|remote_addr|x-forwarded-for|x-real-ip|ha1|nonce|sip_password|api_key|dsn)"
)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
# Candidates only: each is kept unless it parses as an IPv6 address.
_IPV6_CANDIDATE = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:]*:[0-9A-Fa-f]*")
# SIP Authorization / Proxy-Authorization header values and sip: user parts.
_SIP_AUTH = re.compile(r"(Digest\s+)[^\r\n]*", re.I)
_SIP_USER = re.compile(r"(sips?:)[^@\s;>]+@", re.I)


def _scrub_text(text: str) -> str:
    text = _SIP_AUTH.sub(r"\1" + REDACTED, text)
    text = _SIP_USER.sub(r"\1" + REDACTED + "@", text)
    text = _IPV4.sub(REDACTED, text)
    return _IPV6_CANDIDATE.sub(_redact_ipv6, text)


def _redact_ipv6(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(match.group(0))
    except ValueError:
        return match.group(0)
    return REDACTED


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return REDACTED
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and _SECRET_KEYS.search(key.lower())
                else _scrub(item, depth + 1)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, depth + 1) for item in value]
    if isinstance(value, str):
        return _scrub_text(value)
    return value


def scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_send``: the event without user, cookies, addresses or credentials."""
    event.pop("user", None)
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("env", None)
        request.pop("data", None)
    scrubbed: dict[str, Any] = _scrub(event)
    return scrubbed


def init(dsn: str) -> bool:
    """Start sentry-sdk when ``dsn`` is set; returns whether it was started."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        before_send=scrub,  # type: ignore[arg-type]
        max_request_body_size="never",
        include_local_variables=False,
    )
    return True
