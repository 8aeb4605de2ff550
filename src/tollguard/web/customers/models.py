"""Customers, accounts and ACL entries, mirrored by :mod:`tollguard.domain.plan`."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from tollguard.domain.plan import BillingMode, DidTarget, MediaChoice, RoutingStrategy, SipTransport
from tollguard.web.carriers.models import MEDIA_CHOICES, Provider
from tollguard.web.customers.fields import NetworkField
from tollguard.web.rating.models import RateCard, RateCardKind, currency_validator

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
    media = models.CharField(
        max_length=9,
        choices=MEDIA_CHOICES,
        default=MediaChoice.DEFAULT.value,
        help_text=(
            "Media backend for this customer's calls; 'switch default' leaves the choice "
            "to the providers of the route, then to the switch's setting."
        ),
    )
    providers = models.ManyToManyField(
        Provider,
        blank=True,
        related_name="customers",
        help_text="Providers this customer may use; none selected means every provider.",
    )
    # Credit terms (docs/billing.md): checked together by credit_terms_errors().
    billing_mode = models.CharField(
        max_length=8,
        choices=[(BillingMode.PREPAID.value, "prepaid"), (BillingMode.POSTPAID.value, "postpaid")],
        default=BillingMode.PREPAID.value,
        help_text=(
            "Prepaid: calls spend a balance paid in advance. Postpaid: calls may take the "
            "balance down to minus the credit limit."
        ),
    )
    credit_limit = models.DecimalField(
        max_digits=16,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text="How far below zero a postpaid customer's balance may go.",
    )
    currency = models.CharField(
        max_length=3,
        default="EUR",
        validators=[currency_validator],
        help_text="What the customer pays in: its sell card's currency. Fixed once its "
        "ledger has entries.",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors = credit_terms_errors(
            pk=self.pk,
            sell_card=self.sell_card if self.sell_card_id is not None else None,
            billing_mode=self.billing_mode,
            credit_limit=self.credit_limit,
            currency=self.currency,
        )
        if errors:
            raise ValidationError(errors)


def credit_terms_errors(
    *,
    pk: int | None,
    sell_card: RateCard | None,
    billing_mode: str,
    credit_limit: Decimal | None,
    currency: str,
) -> dict[str, str]:
    """What is wrong with a customer's credit terms, by field (empty: nothing).

    One rule for the admin, the API and ``tollguard load``: the customer pays in its
    sell card's currency (calls are refused otherwise, docs/billing.md), a prepaid
    customer has no credit limit, and the currency of a ledger with entries is fixed.
    """
    errors: dict[str, str] = {}
    if sell_card is not None and sell_card.currency != currency:
        errors["sell_card"] = (
            f"The sell card prices in {sell_card.currency}; the customer pays in {currency}. "
            "A customer pays in its sell card's currency."
        )
    if billing_mode == BillingMode.PREPAID.value and credit_limit:
        errors["credit_limit"] = "Only a postpaid customer has a credit limit."
    if pk is not None:
        stored = Customer.objects.filter(pk=pk).values_list("currency", flat=True).first()
        ledger = apps.get_model("billing", "LedgerEntry")
        changed = stored is not None and stored != currency
        if changed and ledger.objects.filter(customer_id=pk).exists():
            errors["currency"] = f"The customer's ledger is in {stored}: its currency is fixed."
    return errors


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
    extension = models.CharField(
        max_length=16,
        blank=True,
        validators=[digits_validator],
        help_text="A short number the customer's other accounts dial to reach this one.",
    )

    class Meta:
        ordering = ("username",)
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "extension"],
                condition=~models.Q(extension=""),
                name="customers_account_extension_unique",
                violation_error_message="Another account of this customer has this extension.",
            )
        ]

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


TRANSPORT_CHOICES = [(t.value, t.value.upper()) for t in SipTransport]


class Did(models.Model):
    """A number, or a range of numbers, a customer owns, and where its calls go.

    Mirrors :class:`tollguard.domain.plan.Did`; :func:`tollguard.domain.dids.index_dids`
    is the one set of rules (overlaps, forwards, targets) the admin, the API and
    ``tollguard load`` are checked against when the plan is built.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="dids")
    first = models.CharField(
        "number",
        max_length=20,
        validators=[digits_validator],
        help_text="E.164 digits without '+', e.g. 442071234567; the first of a range.",
    )
    last = models.CharField(
        "last number",
        max_length=20,
        blank=True,
        validators=[digits_validator],
        help_text="For a range: its last number, as long as the first. Empty: one number.",
    )
    target = models.CharField(
        max_length=8,
        choices=[(t.value, t.value) for t in DidTarget],
        default=DidTarget.ACCOUNT.value,
        help_text="Ring a registered account, send to the customer's SIP trunk, or "
        "forward to another DID.",
    )
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="dids"
    )
    trunk_host = models.CharField(max_length=255, blank=True)
    trunk_port = models.PositiveIntegerField(default=5060)
    trunk_transport = models.CharField(
        max_length=3, choices=TRANSPORT_CHOICES, default=SipTransport.UDP.value
    )
    failover_host = models.CharField(
        max_length=255, blank=True, help_text="Tried when the trunk does not answer."
    )
    failover_port = models.PositiveIntegerField(default=5060)
    failover_transport = models.CharField(
        max_length=3, choices=TRANSPORT_CHOICES, default=SipTransport.UDP.value
    )
    forward_to = models.CharField(
        max_length=20, blank=True, validators=[digits_validator], help_text="A DID number."
    )
    price_per_minute = models.DecimalField(
        max_digits=16,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text="What the customer pays per minute of inbound call, in its currency.",
    )
    monthly_price = models.DecimalField(
        max_digits=16,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text="What the customer pays each month for the number(s).",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name = "DID"
        verbose_name_plural = "DIDs"
        ordering = ("first",)
        constraints = [models.UniqueConstraint(fields=["first"], name="customers_did_first_unique")]

    def __str__(self) -> str:
        if self.last and self.last != self.first:
            return f"{self.first}-{self.last}"
        return self.first

    # The DID table's rules (tollguard.web.customers.dids.clean), installed by the app's
    # ready(): they read every DID through the selectors, which import this module.
    table_rules: ClassVar[Callable[[Did], None] | None] = None

    def clean(self) -> None:
        super().clean()
        if Did.table_rules is None:
            raise ImproperlyConfigured("the customers app is not ready: no DID table rules")
        Did.table_rules(self)
