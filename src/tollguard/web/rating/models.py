"""Rate cards and rates, mirrored by :class:`tollguard.domain.plan.RateCard` and ``Rate``."""

from __future__ import annotations

import secrets
from dataclasses import fields
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from tollguard.domain import plan
from tollguard.domain.plan import Rounding

# A rate's own fields, named and ordered as :class:`tollguard.domain.plan.Rate`'s: the
# columns of every rate file (``tollguard load``, the admin import and export, the
# portal's download), of the API's rates and of the plan the switch loads.
RATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(plan.Rate))

digits_validator = RegexValidator(r"^[0-9]+$", "Only digits 0-9.")
currency_validator = RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code such as EUR.")


class RateCardKind(models.TextChoices):
    SELL = "sell", "sell (customer prices)"
    COST = "cost", "cost (provider prices)"


class RateCard(models.Model):
    name = models.CharField(max_length=100, unique=True)
    currency = models.CharField(max_length=3, default="EUR", validators=[currency_validator])
    rounding = models.CharField(
        max_length=16,
        choices=[(r.value, r.value.replace("_", " ")) for r in Rounding],
        default=Rounding.HALF_UP.value,
    )
    decimals = models.PositiveSmallIntegerField(default=4, validators=[MaxValueValidator(6)])
    kind = models.CharField(max_length=4, choices=RateCardKind.choices, default=RateCardKind.SELL)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        problem = currency_change_error(self, self.currency)
        if problem:
            raise ValidationError({"currency": problem})


def currency_change_error(card: RateCard, currency: str) -> str:
    """Why ``card`` may not price in ``currency``, or ``""``: customers on it pay in
    another one (docs/billing.md)."""
    if card.pk is None:
        return ""
    names = list(
        card.customers.exclude(currency=currency)
        .order_by("name")
        .values_list("name", flat=True)[:6]
    )
    if not names:
        return ""
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return (
        f"Customers on this card pay in another currency than {currency}: {shown}. "
        "Give them another card first."
    )


class Rate(models.Model):
    """One prefix of a rate card; the longest matching prefix wins."""

    card = models.ForeignKey(RateCard, on_delete=models.CASCADE, related_name="rates")
    prefix = models.CharField(max_length=32, validators=[digits_validator])
    destination = models.CharField(max_length=128, blank=True)
    price_per_minute = models.DecimalField(
        max_digits=12, decimal_places=6, validators=[MinValueValidator(Decimal(0))]
    )
    connect_fee = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
    )
    initial_increment = models.PositiveIntegerField(default=60)
    next_increment = models.PositiveIntegerField(default=60, validators=[MinValueValidator(1)])
    effective_from = models.DateTimeField(null=True, blank=True)
    effective_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("card", "prefix")
        indexes = [models.Index(fields=["card", "prefix"], name="rating_rate_card_prefix")]

    def __str__(self) -> str:
        return f"{self.card_id}:{self.prefix} {self.price_per_minute}"


def new_import_id() -> str:
    """A random, unguessable id for a rate import (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class ImportState(models.TextChoices):
    VALIDATING = "validating"
    APPLYING = "applying"
    DONE = "done"
    FAILED = "failed"


class RateImport(models.Model):
    """A rate file on its way into a card, between the steps of its import.

    It lives here, not in the operator's session: every request saves the session,
    so a request that ran alongside a step (the browser's own ``/favicon.ico``) wrote
    the job back as it was before the step. The id is random and the row belongs to
    the user who uploaded the file; ``step`` counts the steps taken, and a step is
    kept only if no other step was kept since it began
    (:func:`tollguard.web.rating.imports.run_step`), so a late or concurrent request
    cannot roll the job back. Mirrors :class:`tollguard.web.rating.imports.ImportJob`.
    """

    id = models.CharField(primary_key=True, max_length=64, default=new_import_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    card = models.ForeignKey(RateCard, on_delete=models.CASCADE, related_name="imports")
    file_name = models.CharField(max_length=255)
    path = models.CharField(max_length=1024)
    size = models.PositiveBigIntegerField()
    state = models.CharField(
        max_length=10, choices=ImportState.choices, default=ImportState.VALIDATING
    )
    offset = models.PositiveBigIntegerField(default=0)
    line = models.PositiveBigIntegerField(default=0)
    header = models.JSONField(default=list)
    rows = models.PositiveBigIntegerField(default=0)
    errors = models.JSONField(default=list)
    error_total = models.PositiveBigIntegerField(default=0)
    created = models.PositiveBigIntegerField(default=0)
    deleted = models.PositiveBigIntegerField(default=0)
    unchanged = models.PositiveBigIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-started_at",)

    def __str__(self) -> str:
        return f"import of {self.file_name} into {self.card}"
