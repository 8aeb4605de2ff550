"""Fraud rules (configuration, read into the plan) and the live state the switch
persists here: SIP bans, suspensions and fraud events.

Rules mirror :mod:`tollguard.domain.plan` (``FraudPolicy``, ``CallLimits``,
``DestinationRule``, ``TimeWindow``); the shield's and the engine's records mirror
:mod:`tollguard.domain.shield` and :mod:`tollguard.domain.fraud`.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tollguard.domain.fraud import FraudRule, parse_caller_range
from tollguard.domain.numbers import NumberKind
from tollguard.domain.plan import DestinationMatch, FraudAction
from tollguard.domain.shield import BanMode, BanReason
from tollguard.web.carriers.models import Gateway
from tollguard.web.customers.models import Account, Customer

country_list_validator = RegexValidator(
    r"^([A-Za-z]{2}([ ,]+[A-Za-z]{2})*)?$", "Two-letter country codes separated by spaces."
)
days_validator = RegexValidator(r"^[0-6]{1,7}$", "Digits 0 (Monday) to 6 (Sunday).")


class LimitFields(models.Model):
    """``domain.plan.CallLimits``: 0 or empty means no limit."""

    max_concurrent = models.PositiveIntegerField(default=0, help_text="Calls at once.")
    calls_per_second = models.FloatField(default=0, validators=[MinValueValidator(0)])
    cps_burst = models.PositiveIntegerField(
        default=0, help_text="Calls allowed at once above the rate; 0: one second's worth."
    )
    calls_per_hour = models.PositiveIntegerField(default=0)
    calls_per_day = models.PositiveIntegerField(default=0)
    spend_per_hour = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    spend_per_day = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    max_price_per_minute = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="The highest sell price per minute a destination may have.",
    )

    class Meta:
        abstract = True


class FraudPolicy(LimitFields):
    """The fraud rules of one customer or one account (exactly one of the two)."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, null=True, blank=True, related_name="fraud_policy"
    )
    account = models.OneToOneField(
        Account, on_delete=models.CASCADE, null=True, blank=True, related_name="fraud_policy"
    )
    caller_ranges = models.TextField(
        blank=True,
        help_text="Caller IDs allowed, one per line: a prefix (4420794600) or a range "
        "(442079460000-442079460099). Empty: any.",
    )
    allow_anonymous = models.BooleanField(default=False)
    source_countries = models.CharField(
        max_length=200,
        blank=True,
        validators=[country_list_validator],
        help_text="Countries calls may come from (GeoIP of the source); empty: any.",
    )
    velocity = models.BooleanField(
        default=False, help_text="Watch spikes against the account's own last week."
    )
    velocity_destinations_factor = models.FloatField(default=10.0)
    velocity_destinations_min = models.PositiveIntegerField(default=20)
    velocity_new_countries = models.PositiveIntegerField(default=3)
    velocity_spend_factor = models.FloatField(default=10.0)
    velocity_spend_min = models.DecimalField(max_digits=12, decimal_places=4, default=20)
    velocity_action = models.CharField(
        max_length=20,
        choices=[(a.value, a.value.replace("_", " ")) for a in FraudAction],
        default=FraudAction.BLOCK.value,
    )
    velocity_suspend_s = models.PositiveIntegerField(
        default=0, help_text="How long a suspension lasts; 0: until released."
    )

    class Meta:
        verbose_name_plural = "fraud policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=False, account__isnull=True)
                | Q(customer__isnull=True, account__isnull=False),
                name="fraud_policy_one_subject",
            )
        ]

    def __str__(self) -> str:
        if self.account_id is not None:
            return f"fraud policy of account {self.account}"
        return f"fraud policy of customer {self.customer}"

    def clean(self) -> None:
        errors = []
        for number, line in enumerate(self.caller_ranges.splitlines(), start=1):
            if line.strip():
                try:
                    parse_caller_range(line)
                except ValueError as exc:
                    errors.append(f"line {number}: {exc}")
        if errors:
            raise ValidationError({"caller_ranges": errors})


class QuietHours(models.Model):
    """No calls (or no international calls) in this local time window."""

    policy = models.ForeignKey(FraudPolicy, on_delete=models.CASCADE, related_name="quiet_hours")
    days = models.CharField(
        max_length=7, default="0123456", validators=[days_validator], help_text="0 = Monday."
    )
    start = models.TimeField()
    end = models.TimeField(help_text="Not after the start: the window runs past midnight.")
    timezone = models.CharField(max_length=64, default="UTC")
    international_only = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "quiet hours"

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"

    def clean(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError({"timezone": f"unknown time zone {self.timezone!r}"}) from exc


class DestinationRule(models.Model):
    """Allow or deny a destination. Without a policy the rule belongs to the default
    list every customer starts with (the shipped high-risk list)."""

    policy = models.ForeignKey(
        FraudPolicy,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="destination_rules",
        help_text="Empty: a default rule for everyone.",
    )
    allow = models.BooleanField(default=False)
    match = models.CharField(max_length=8, choices=[(m.value, m.value) for m in DestinationMatch])
    value = models.CharField(
        max_length=32,
        help_text="Digits for a prefix, an ISO code for a country (001: satellite and "
        "other global numbers), a kind of number: " + ", ".join(k.value for k in NumberKind),
    )
    international_only = models.BooleanField(
        default=False, help_text="Only numbers outside the customer's own country code."
    )
    note = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ("policy_id", "match", "value")

    def __str__(self) -> str:
        verb = "allow" if self.allow else "deny"
        return f"{verb} {self.match} {self.value}"

    def clean(self) -> None:
        if self.match == DestinationMatch.PREFIX and not self.value.isdigit() and self.value:
            raise ValidationError({"value": "A prefix is digits only."})
        if self.match == DestinationMatch.COUNTRY:
            self.value = self.value.upper()
            if not (len(self.value) == 2 and self.value.isalpha()) and self.value != "001":
                raise ValidationError({"value": "A two-letter country code, or 001."})
        if self.match == DestinationMatch.KIND and self.value not in set(NumberKind):
            raise ValidationError({"value": f"Not a kind of number: {self.value!r}."})


class GatewayLimits(LimitFields):
    # No reverse name: a gateway's fields are the domain's (tests/web/test_field_lists.py).
    gateway = models.OneToOneField(Gateway, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name_plural = "gateway limits"

    def __str__(self) -> str:
        return f"limits of gateway {self.gateway}"


# --- live state persisted: bans, suspensions, events -----------------------------------------


class LiveStateVersion(models.Model):
    """A number per kind of live state ("bans", "suspensions") that grows with every
    operator change; the switch reloads that state when it moves."""

    name = models.CharField(max_length=16, primary_key=True)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} version {self.version}"


class SipBan(models.Model):
    """An address or network the SIP shield refuses (``domain.shield.Ban``)."""

    network = models.CharField(max_length=49, unique=True, help_text="Address or CIDR network.")
    reason = models.CharField(max_length=16, choices=[(r.value, r.value) for r in BanReason])
    mode = models.CharField(
        max_length=8,
        choices=[(m.value, m.value) for m in BanMode],
        default=BanMode.DROP.value,
        help_text="drop: silently; refuse: every authentication fails.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Empty: until released."
    )
    offences = models.PositiveIntegerField(default=1)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = "SIP ban"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"SIP ban of {self.network}"

    @property
    def active(self) -> bool:
        return self.expires_at is None or self.expires_at > timezone.now()


class Suspension(models.Model):
    """A suspended customer or account, or a locked SIP user name."""

    subject = models.CharField(
        max_length=80, unique=True, help_text="customer:ID, account:ID or sip-user:NAME."
    )
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until released.")

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"suspension of {self.subject}"


class FraudEvent(models.Model):
    """A call blocked, an alert or a suspension (``domain.fraud.FraudEvent``)."""

    at = models.DateTimeField(db_index=True)
    rule = models.CharField(max_length=32, choices=[(r.value, r.value) for r in FraudRule])
    action = models.CharField(max_length=20, choices=[(a.value, a.value) for a in FraudAction])
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=45, blank=True)
    callee = models.CharField(max_length=32, blank=True)
    detail = models.CharField(max_length=300)
    suspended = models.CharField(max_length=80, blank=True, help_text="The subject suspended.")
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ("-at",)
        indexes = [models.Index(fields=["released_at", "at"])]

    def __str__(self) -> str:
        return f"{self.rule} at {self.at:%Y-%m-%d %H:%M}Z"
