"""Signed webhooks: how Tollguard signs an alert, and how a receiver verifies one.

Each request carries ``Tollguard-Signature: t=<unix time>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 keyed with the customer's webhook secret over ``<unix time>.<body>`` (the
body's exact bytes). A receiver (docs/billing.md, "Verifying a webhook"):

1. recomputes the HMAC over the time stamp, a dot and the raw body, and compares it in
   constant time with ``v1`` (any ``v1`` of the header, for secret rotation);
2. refuses a time stamp more than five minutes away from its own clock;
3. refuses an event ``id`` (inside the signed body) seen before within those five
   minutes: a replayed request. Retries of one alert keep its ``id``, so a retry of a
   request the receiver did take is refused too, as it should be.

:func:`verify` does exactly that and is what the tests hold the signing side to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from typing import Any

from tollguard.web.billing.errors import BillingError

__all__ = [
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TOLERANCE_S",
    "ReplayGuard",
    "WebhookFailed",
    "WebhookRejected",
    "new_secret",
    "post",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "Tollguard-Signature"
EVENT_HEADER = "Tollguard-Event"
TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that names the kind of key, not a key
USER_AGENT = "Tollguard-Webhook/1"


class WebhookRejected(BillingError):
    """A request a receiver must refuse; the message says why."""


class WebhookFailed(BillingError):
    """The receiver did not take the request (no 2xx answer, or no answer)."""


def new_secret() -> str:
    """A fresh webhook secret: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Tollguard-Signature`` value of ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


class ReplayGuard:
    """The event ids a receiver has taken within the tolerance, oldest first."""

    def __init__(self, tolerance_s: int = TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, event_id: str, now: float) -> bool:
        """Record ``event_id``; False when it was seen already (a replay)."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            # Kept twice the tolerance: a stamp may be up to that far from a later one.
            if at > now - 2 * self.tolerance_s:
                break
            del self._seen[oldest]
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        return True


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float,
    guard: ReplayGuard,
    tolerance_s: int = TOLERANCE_S,
) -> dict[str, Any]:
    """The event of a webhook request, verified; raises :class:`WebhookRejected`."""
    stamps: list[str] = []
    macs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            stamps.append(value)
        elif name == "v1":
            macs.append(value)
    if len(stamps) != 1 or not stamps[0].isdigit() or not macs:
        raise WebhookRejected("malformed signature header")
    timestamp = int(stamps[0])
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise WebhookRejected("signature does not match")
    if abs(now - timestamp) > tolerance_s:
        raise WebhookRejected("time stamp outside the tolerance")
    try:
        event = json.loads(body)
        event_id = str(event["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookRejected("body is not an event") from exc
    if not guard.first_time(event_id, now):
        raise WebhookRejected(f"event {event_id} was delivered already")
    result: dict[str, Any] = event
    return result


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the URL the operator set is the only destination."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post(
    url: str,
    secret: str,
    event_type: str,
    body: bytes,
    *,
    timeout_s: float,
    ca_file: str = "",
    now: float | None = None,
) -> int:
    """POST ``body`` to the https ``url`` signed with ``secret``; the 2xx status.

    The receiver's certificate is verified (against ``ca_file`` when set, else the
    system's CAs) and a redirect counts as a failure. Raises :class:`WebhookFailed`.
    """
    if urllib.parse.urlsplit(url).scheme != "https":
        raise WebhookFailed("webhook URLs are https only")
    timestamp = int(time.time() if now is None else now)
    request = urllib.request.Request(  # noqa: S310 - the scheme is https, checked above
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: event_type,
            SIGNATURE_HEADER: sign(secret, body, timestamp),
        },
    )
    context = ssl.create_default_context(cafile=ca_file or None)
    opener = urllib.request.build_opener(
        _NoRedirects(), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        raise WebhookFailed(f"answered {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise WebhookFailed(f"{type(exc).__name__}: {exc}"[:250]) from exc
    if not 200 <= status < 300:
        raise WebhookFailed(f"answered {status}")
    return status
