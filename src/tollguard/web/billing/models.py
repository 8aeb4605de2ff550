"""The ledger, the balance it sums to, and low-balance alerts.

The ledger is append-only: :class:`LedgerEntry` rows are never updated or deleted (the
model, its queryset and database triggers all refuse it); a correction is a new entry.
:class:`Balance` caches each customer's sum for speed and is written in the same
transaction as every entry (``billing.E001`` proves it equals the sum).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.utils import timezone

from tollguard.domain.credit import check_amount
from tollguard.domain.errors import CreditError
from tollguard.web.billing.errors import LedgerError
from tollguard.web.customers.models import Customer

MAX_THRESHOLDS = 10


def parse_thresholds(text: str) -> tuple[Decimal, ...]:
    """``"50, 10, 0"`` as amounts, highest first; raises ``ValueError`` naming the bad one."""
    amounts: set[Decimal] = set()
    for item in text.split(","):
        word = item.strip()
        if not word:
            continue
        try:
            amounts.add(check_amount(Decimal(word), signed=True))
        except (ArithmeticError, CreditError) as exc:
            raise ValueError(f"{word!r} is not an amount") from exc
    if len(amounts) > MAX_THRESHOLDS:
        raise ValueError(f"at most {MAX_THRESHOLDS} thresholds")
    return tuple(sorted(amounts, reverse=True))


def thresholds_validator(text: str) -> None:
    try:
        parse_thresholds(text)
    except ValueError as exc:
        raise ValidationError(f"Amounts separated by commas: {exc}.") from exc


class EntryKind(models.TextChoices):
    TOP_UP = "top_up", "top-up"
    REFUND = "refund", "refund"
    ADJUSTMENT = "adjustment", "adjustment"
    CALL = "call", "call charge"


# Entries staff and API clients post; call charges come only from the CDR writer.
POSTED_BY_HAND = (EntryKind.TOP_UP, EntryKind.REFUND, EntryKind.ADJUSTMENT)


class LedgerQuerySet(models.QuerySet["LedgerEntry"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise LedgerError("ledger entries are never updated; post a correcting entry")

    def delete(self) -> NoReturn:
        raise LedgerError("ledger entries are never deleted; post a correcting entry")


class LedgerEntry(models.Model):
    """One movement of a customer's money; positive amounts are credit."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="ledger")
    created_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=10, choices=EntryKind.choices)
    amount = models.DecimalField(max_digits=16, decimal_places=6)
    balance_after = models.DecimalField(max_digits=16, decimal_places=6)
    reason = models.CharField(max_length=255, blank=True)
    # A payment or document reference; unique per customer, so a retried top-up
    # cannot be booked twice.
    reference = models.CharField(max_length=100, blank=True)
    call_id = models.CharField(max_length=255, blank=True)  # a call charge's CDR
    # Who posted it: the id (no constraint, the history outlives the user) and the name.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    created_by_name = models.CharField(max_length=150, blank=True)
    # Set on every entry the running switch must apply (all but call charges): the
    # order in which those were committed (tollguard.domain.credit.BalanceSource).
    funds_version = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)

    objects = LedgerQuerySet.as_manager()

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger"
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["customer", "created_at"], name="ledger_customer_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "reference"],
                condition=~models.Q(reference=""),
                name="ledger_reference_unique",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(kind__in=["top_up", "refund"], amount__gt=0)
                    | models.Q(kind="adjustment") & ~models.Q(amount=0)
                    | models.Q(kind="call", amount__lte=0)
                ),
                name="ledger_amount_sign",
            ),
        ]

    def __str__(self) -> str:
        # Names, not ids: this is what the admin's messages and history say.
        amount = f"{Decimal(self.amount).normalize():f} {self.customer.currency}"
        return f"{self.get_kind_display()} of {amount} for {self.customer.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise LedgerError("ledger entries are never updated; post a correcting entry")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise LedgerError("ledger entries are never deleted; post a correcting entry")


class Balance(models.Model):
    """A customer's ledger sum, kept with every entry (``billing.E001`` checks it)."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, primary_key=True, related_name="balance"
    )
    amount = models.DecimalField(max_digits=16, decimal_places=6, default=Decimal(0))
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.amount}"


FUNDS_VERSION_PK = 1


class FundsVersion(models.Model):
    """A single row bumped by every entry the switch applies, in that entry's transaction.

    The row lock orders those transactions: a reader that sees version ``v`` sees every
    entry up to ``v`` (``funds_version`` of each), which is what the switch polls.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=FUNDS_VERSION_PK)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"funds version {self.version}"


class BalanceAlerts(models.Model):
    """Where and below which amounts a customer's low balance is announced."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, primary_key=True, related_name="balance_alerts"
    )
    thresholds = models.CharField(
        max_length=200,
        blank=True,
        validators=[thresholds_validator],
        help_text=(
            "Amounts, comma-separated (e.g. 50, 10, 0): an alert goes out each time the "
            "funds fall below one. Funds are the balance, plus the credit limit when postpaid."
        ),
    )
    email = models.EmailField(blank=True, help_text="Send alerts to this address.")
    webhook_url = models.URLField(
        blank=True,
        validators=[URLValidator(schemes=["https"])],
        help_text="POST alerts here (https only), signed with the webhook secret.",
    )
    # The HMAC key for the webhook signatures: shown once when generated, never again.
    webhook_secret = models.CharField(max_length=80, blank=True, editable=False)

    class Meta:
        verbose_name = "balance alerts"
        verbose_name_plural = "balance alerts"

    def __str__(self) -> str:
        return f"balance alerts of {self.customer.name}"


class Channel(models.TextChoices):
    EMAIL = "email", "e-mail"
    WEBHOOK = "webhook", "webhook"


class AlertDelivery(models.Model):
    """One alert on one channel: written with the entry that crossed the threshold (so
    a rolled-back entry alerts nobody), then sent and retried off the call path."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=255)  # the address or URL at the crossing
    threshold = models.DecimalField(max_digits=16, decimal_places=6)
    funds = models.DecimalField(max_digits=16, decimal_places=6)  # after the entry that crossed it
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)  # given up
    last_error = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = "alert delivery"
        verbose_name_plural = "alert deliveries"
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(delivered_at__isnull=True, failed_at__isnull=True),
                name="alert_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} alert {self.event_id}"


class DidFee(models.Model):
    """One DID's monthly fee for one calendar month, and the ledger entry that charged it.

    The unique (DID, month) pair is what makes the fee post once: a second run, or a
    second process running at the same moment, fails to insert it and rolls its entry
    back. The DID is kept by id and number, not by foreign key: the record outlives it.
    """

    did_id = models.BigIntegerField()
    number = models.CharField(max_length=41)  # "first" or "first-last", as charged
    month = models.DateField(help_text="The first day of the month charged.")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="did_fee")

    class Meta:
        verbose_name = "DID fee"
        verbose_name_plural = "DID fees"
        ordering = ("-month", "number")
        constraints = [
            models.UniqueConstraint(fields=["did_id", "month"], name="billing_did_fee_once")
        ]

    def __str__(self) -> str:
        return f"DID {self.number} for {self.month:%Y-%m}"
