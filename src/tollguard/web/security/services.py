"""Writes and reads of the ban list and the honeypot record."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from tollguard.web.security import events
from tollguard.web.security.models import BannedAddress, HoneypotAttempt
from tollguard.web.security.network import client_address, parse_address

DEFAULT_HONEYPOT_BAN = timedelta(hours=24)


def honeypot_ban_duration() -> timedelta:
    return timedelta(
        seconds=getattr(
            settings, "TOLLGUARD_HONEYPOT_BAN_SECONDS", DEFAULT_HONEYPOT_BAN.total_seconds()
        )
    )


def is_banned(address: str, now: datetime | None = None) -> bool:
    """Whether ``address`` is on the ban list now; one indexed query."""
    parsed = parse_address(address)
    if parsed is None:
        return False
    return BannedAddress.objects.active(now).filter(address=str(parsed)).exists()


def ban(address: str, reason: str, duration: timedelta, now: datetime | None = None) -> bool:
    """Ban ``address`` until ``now + duration`` (a longer existing ban is kept).

    Returns ``False`` when ``address`` is not an address (nothing to ban).
    """
    parsed = parse_address(address)
    if parsed is None:
        return False
    now = now or timezone.now()
    until = now + duration
    with transaction.atomic():
        entry, created = BannedAddress.objects.select_for_update().get_or_create(
            address=str(parsed),
            defaults={"reason": reason, "created_at": now, "expires_at": until},
        )
        if not created and entry.expires_at < until:
            entry.reason, entry.created_at, entry.expires_at = reason, now, until
            entry.save(update_fields=["reason", "created_at", "expires_at"])
    events.address_banned(str(parsed), f"{until:%Y-%m-%dT%H:%M:%SZ}", reason)
    return True


def unban(address: str) -> int:
    """Lift every ban of ``address``; returns how many were lifted."""
    parsed = parse_address(address)
    if parsed is None:
        return 0
    deleted, _ = BannedAddress.objects.filter(address=str(parsed)).delete()
    return deleted


def record_honeypot_attempt(request: HttpRequest, username: str) -> HoneypotAttempt | None:
    """Store one decoy login attempt, log it and ban its address."""
    address = client_address(request)
    events.honeypot_login(request, username)
    if parse_address(address) is None:
        return None
    attempt = HoneypotAttempt.objects.create(
        address=address,
        username=username[:150],
        user_agent=request.headers.get("user-agent", "")[:512],
        path=request.path[:512],
    )
    ban(address, "honeypot login", honeypot_ban_duration())
    return attempt
