"""API keys: stored as a SHA-256 digest, shown in full only once at creation."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from tollguard.web.customers.models import Customer

DEFAULT_RATE_PER_MINUTE = 600


class Scope(models.TextChoices):
    """What a key may do; each API view names the scope a request needs."""

    READ_PROVISIONING = "read:provisioning", "read customers, accounts, carriers, rates"
    WRITE_PROVISIONING = "write:provisioning", "change customers, accounts, carriers, rates"
    READ_CDR = "read:cdr", "read CDRs"
    READ_STATS = "read:stats", "read statistics"
    READ_LEDGER = "read:ledger", "read the ledger and balances"
    WRITE_LEDGER = "write:ledger", "post top-ups, refunds and adjustments"


# Scopes a key confined to a customer may hold: customers never write configuration
# nor their own ledger.
CUSTOMER_SCOPES: frozenset[str] = frozenset(
    {Scope.READ_PROVISIONING, Scope.READ_CDR, Scope.READ_STATS, Scope.READ_LEDGER}
)


class ApiKey(models.Model):
    """A bearer key ``tg_<prefix>_<secret>``.

    ``prefix`` is public (it names the key in lists and logs and finds the row);
    ``key_hash`` is the SHA-256 of the whole key. The secret has 256 random bits, so a
    fast hash is enough: no dictionary attack applies, and every request can afford it.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        help_text="Confines the key to this customer's own objects.",
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    rate_per_minute = models.PositiveIntegerField(
        default=DEFAULT_RATE_PER_MINUTE,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
        help_text="Requests per minute before the API answers 429.",
    )
    allowed_networks = models.JSONField(
        default=list, blank=True, help_text="CIDR networks the key may be used from; empty: any."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} (tg_{self.prefix})"
