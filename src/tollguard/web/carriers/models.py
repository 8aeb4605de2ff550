"""Providers and gateways, mirrored by :class:`tollguard.domain.plan.Provider` and ``Gateway``."""

from __future__ import annotations

from dataclasses import fields

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from tollguard.domain import plan
from tollguard.domain.plan import MediaChoice, SipTransport
from tollguard.web.rating.models import RateCard, RateCardKind

# A gateway's own fields, named and ordered as :class:`tollguard.domain.plan.Gateway`'s
# (less its id and its provider's): what a plan file declares for a gateway, what the API
# shows, and what the switch's plan holds.
GATEWAY_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(plan.Gateway) if f.name not in {"id", "provider_id"}
)

# The media backend choice, as the admin, the API and plan files offer it.
MEDIA_CHOICES = [
    (MediaChoice.DEFAULT.value, "switch default"),
    (MediaChoice.BYPASS.value, "bypass (direct media)"),
    (MediaChoice.RELAY.value, "embedded relay"),
    (MediaChoice.RTPENGINE.value, "rtpengine"),
]

prefix_validator = RegexValidator(r"^\+?[0-9#*]*$", "Digits, '#', '*' and a leading '+'.")


class Provider(models.Model):
    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    cost_card = models.ForeignKey(
        RateCard,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="providers",
        limit_choices_to={"kind": RateCardKind.COST},
    )
    inbound_card = models.ForeignKey(
        RateCard,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="inbound_providers",
        limit_choices_to={"kind": RateCardKind.COST},
        help_text="What the provider charges per minute for calls to our DIDs (by prefix).",
    )
    priority = models.PositiveIntegerField(default=100, help_text="Lower is tried first.")
    weight = models.PositiveIntegerField(default=100, help_text="Share of calls by weight.")
    media = models.CharField(
        max_length=9,
        choices=MEDIA_CHOICES,
        default=MediaChoice.DEFAULT.value,
        help_text=(
            "Media backend for calls routed to this provider, unless the customer chose "
            "one; an anchoring choice (relay, rtpengine) wins over bypass."
        ),
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Gateway(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="gateways")
    name = models.CharField(max_length=100, unique=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(
        default=5060, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    transport = models.CharField(
        max_length=3,
        choices=[(t.value, t.value.upper()) for t in SipTransport],
        default=SipTransport.UDP.value,
    )
    strip_digits = models.PositiveSmallIntegerField(default=0)
    add_prefix = models.CharField(max_length=32, blank=True, validators=[prefix_validator])
    enabled = models.BooleanField(default=True)
    max_channels = models.PositiveIntegerField(default=0, help_text="0: unlimited.")

    class Meta:
        ordering = ("provider", "name")

    def __str__(self) -> str:
        return self.name
