"""The configuration version row and the must-change-password marker."""

from __future__ import annotations

from django.conf import settings
from django.db import models

CONFIG_VERSION_PK = 1


class ConfigVersion(models.Model):
    """A single row whose number grows with every configuration change.

    It is bumped in the same transaction as the change, so a reader that sees the new
    number also sees the change; the switch polls it to know when to reload its plan.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=CONFIG_VERSION_PK)
    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "configuration version"

    def __str__(self) -> str:
        return f"configuration version {self.version}"


class PasswordChangeRequired(models.Model):
    """The user still has a generated one-time password and must choose their own.

    ``password_hash`` is the hash of that one-time password: once the user's hash
    differs, the password was changed and the marker is removed.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    password_hash = models.CharField(max_length=256)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"password change required for user {self.user_id}"
