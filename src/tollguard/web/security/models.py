"""Honeypot attempts, the address ban list and hashed backup codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin

BACKUP_CODE_COUNT = 10
# 24 characters of a 31-letter alphabet (no 0/o, 1/l/i): about 119 bits. ASVS 6.5.2 allows
# a plain hash for lookup secrets of 112 bits or more; the hash is keyed all the same.
BACKUP_CODE_LENGTH = 24
_BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class HoneypotAttempt(models.Model):
    """One submission of the decoy login form at ``/admin/``."""

    address = models.GenericIPAddressField(unpack_ipv4=True)
    username = models.CharField(max_length=150, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    path = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=["address", "created_at"])]

    def __str__(self) -> str:
        return f"honeypot attempt from {self.address} as {self.username!r}"


class BannedAddressQuerySet(models.QuerySet["BannedAddress"]):
    def active(self, now: datetime | None = None) -> BannedAddressQuerySet:
        return self.filter(expires_at__gt=now or timezone.now())


class BannedAddress(models.Model):
    """An address refused on every web URL until ``expires_at``."""

    address = models.GenericIPAddressField(unpack_ipv4=True, unique=True)
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    objects = BannedAddressQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "banned addresses"
        ordering = ("-expires_at",)

    def __str__(self) -> str:
        return f"{self.address} banned until {self.expires_at:%Y-%m-%d %H:%M}Z"


def _hash_code(code: str) -> str:
    normalized = code.replace(" ", "").replace("-", "").lower()
    # Keyed with the secret key: a leaked table alone is not enough to test guesses.
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()


class BackupCodeDevice(ThrottlingMixin, Device):  # type: ignore[misc]  # untyped base
    """Single-use backup codes, stored only as keyed hashes.

    django-otp's own static device keeps its tokens in clear; these are hashed so a
    database dump does not hand out second factors.
    """

    class Meta(Device.Meta):  # type: ignore[misc]
        verbose_name = "backup code device"

    def get_throttle_factor(self) -> int:
        return int(getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1))

    def replace_codes(self) -> list[str]:
        """Discard the old codes and return new ones; the clear text is never stored."""
        codes = [
            "".join(secrets.choice(_BACKUP_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
            for _ in range(BACKUP_CODE_COUNT)
        ]
        self.codes.all().delete()
        BackupCode.objects.bulk_create(
            BackupCode(device=self, code_hash=_hash_code(code)) for code in codes
        )
        return ["-".join(code[i : i + 4] for i in range(0, len(code), 4)) for code in codes]

    def verify_token(self, token: str) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        deleted, _ = self.codes.filter(code_hash=_hash_code(str(token))).delete()
        if deleted:
            self.throttle_reset()
            return True
        self.throttle_increment()
        return False


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64, db_index=True)

    def __str__(self) -> str:
        return f"backup code of device {self.device_id}"


class UserSession(models.Model):
    """One signed-in session, listed on the user's own sessions page (ASVS 7.5.2).

    The session itself stays in Django's store; this row holds what the store cannot be
    searched by (its user) and what the user needs to recognise it. ``session_key``
    follows the store's key when Django renews it (a password change does).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signed_in_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    address = models.GenericIPAddressField(unpack_ipv4=True, null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)

    class Meta:
        ordering = ("-last_seen_at",)

    def __str__(self) -> str:
        return f"session of user {self.user_id} since {self.created_at:%Y-%m-%d %H:%M}Z"


class SecurityEvent(models.Model):
    """One line of the ``tollguard.security`` log, kept for the dashboard and the admin.

    Written by :class:`tollguard.web.security.eventlog.SecurityEventHandler` from every
    process that logs security events (the web app and the switch), so the log and this
    table hold the same events. ``event`` is the line's name ("admin lockout"), and
    ``address`` and ``user`` are its ``ip=`` and ``user=`` fields; ``detail`` is the
    rest of the line.
    """

    at = models.DateTimeField(db_index=True)
    level = models.PositiveSmallIntegerField(help_text="The log level: 20 info, 30 warning.")
    event = models.CharField(max_length=64)
    address = models.CharField(max_length=45, blank=True)
    user = models.CharField(max_length=150, blank=True)
    detail = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ("-at", "-id")
        indexes = [
            models.Index(fields=["level", "at"], name="security_event_level_at"),
            models.Index(fields=["event", "at"], name="security_event_event_at"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.event} from {self.address or 'unknown address'} at {self.at:%Y-%m-%d %H:%M:%S}Z"
        )
