"""Customers, accounts and ACL entries, mirrored by :mod:`tollguard.domain.plan`."""

from __future__ import annotations

from typing import Any

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from tollguard.domain.plan import RoutingStrategy
from tollguard.web.carriers.models import Provider
from tollguard.web.customers.fields import NetworkField
from tollguard.web.rating.models import RateCard, RateCardKind

digits_validator = RegexValidator(r"^[0-9]*$", "Only digits 0-9.")
hex_md5_validator = RegexValidator(r"^([0-9a-f]{32})?$", "32 lower-case hex digits.")
hex_sha256_validator = RegexValidator(r"^[0-9a-f]{64}$", "64 lower-case hex digits.")
# RFC 3261 §25.1 "user" characters, minus escapes: what a digest username may hold here.
username_validator = RegexValidator(
    r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/]+$", "Letters, digits and -_.!~*'()&=+$,;?/ only."
)


class Customer(models.Model):
    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    sell_card = models.ForeignKey(
        RateCard,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="customers",
        limit_choices_to={"kind": RateCardKind.SELL},
    )
    strategy = models.CharField(
        max_length=8,
        choices=[
            (RoutingStrategy.LEAST_COST.value, "least cost"),
            (RoutingStrategy.PRIORITY.value, "priority"),
            (RoutingStrategy.WEIGHT.value, "weight"),
        ],
        default=RoutingStrategy.LEAST_COST.value,
    )
    allow_negative_margin = models.BooleanField(default=False)
    max_call_duration_s = models.PositiveIntegerField(
        default=7200, validators=[MinValueValidator(1)]
    )
    country_code = models.CharField(max_length=4, blank=True, validators=[digits_validator])
    national_prefix = models.CharField(
        max_length=4, blank=True, default="0", validators=[digits_validator]
    )
    international_prefix = models.CharField(
        max_length=4, blank=True, default="00", validators=[digits_validator]
    )
    strip_prefix = models.CharField(max_length=16, blank=True, validators=[digits_validator])
    providers = models.ManyToManyField(
        Provider,
        blank=True,
        related_name="customers",
        help_text="Providers this customer may use; none selected means every provider.",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A SIP account. Only the RFC 7616 HA1 digests are stored, never the password."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="accounts")
    username = models.CharField(max_length=64, unique=True, validators=[username_validator])
    ha1_md5 = models.CharField(max_length=32, blank=True, validators=[hex_md5_validator])
    ha1_sha256 = models.CharField(max_length=64, validators=[hex_sha256_validator])
    allow_md5 = models.BooleanField(
        default=False,
        help_text=(
            "Accept MD5 digest (RFC 8760 keeps it for old phones only); needs MD5 in "
            "sip.digest_algorithms."
        ),
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ("username",)

    def __str__(self) -> str:
        return self.username

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The MD5 HA1 is kept only while MD5 is allowed: turning MD5 off forgets it, and
        # turning it back on needs the password again (the forms, API and loader say so).
        if not self.allow_md5 and self.ha1_md5:
            self.ha1_md5 = ""
            fields = kwargs.get("update_fields")
            if fields is not None and "ha1_md5" not in fields:
                kwargs["update_fields"] = [*fields, "ha1_md5"]
        super().save(*args, **kwargs)


class AclEntry(models.Model):
    """Calls from ``network`` (with ``tech_prefix``) belong to ``customer`` without digest."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="acl")
    network = NetworkField()
    tech_prefix = models.CharField(max_length=16, blank=True, validators=[digits_validator])

    class Meta:
        verbose_name = "ACL entry"
        verbose_name_plural = "ACL entries"
        ordering = ("customer", "network")
        constraints = [
            models.UniqueConstraint(
                fields=["network", "tech_prefix"], name="customers_acl_network_tech_prefix"
            )
        ]

    def __str__(self) -> str:
        suffix = f" #{self.tech_prefix}" if self.tech_prefix else ""
        return f"{self.network}{suffix}"
