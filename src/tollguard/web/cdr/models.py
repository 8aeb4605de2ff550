"""The stored CDR, one row per :class:`tollguard.domain.cdr.Cdr`.

CDRs are history: deleting a customer or provider must neither delete nor block its
CDRs, so the foreign keys carry no database constraint and keep the old id.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from tollguard.domain.cdr import CallDirection, HangupSide
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.customers.models import Account, Customer


class Cdr(models.Model):
    call_id = models.CharField(max_length=255, db_index=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(default=0)
    billed_s = models.PositiveIntegerField(default=0)
    # No single-column index on customer and provider: the (customer, started_at) and
    # (provider, started_at) indexes below serve those lookups, and every index is one
    # more B-tree the switch updates per CDR.
    customer = models.ForeignKey(
        Customer,
        models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    account = models.ForeignKey(
        Account, models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+"
    )
    source_ip = models.GenericIPAddressField()
    source_port = models.PositiveIntegerField()
    caller = models.CharField(max_length=128, blank=True)
    callee_raw = models.CharField(max_length=128, blank=True)
    callee = models.CharField(max_length=32, blank=True)
    destination = models.CharField(max_length=128, blank=True)
    sip_code = models.PositiveSmallIntegerField()
    sip_reason = models.CharField(max_length=128, blank=True)
    q850_cause = models.PositiveSmallIntegerField(default=0)
    hangup_side = models.CharField(
        max_length=6, choices=[(side.value, side.value) for side in HangupSide]
    )
    provider = models.ForeignKey(
        Provider,
        models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    gateway = models.ForeignKey(
        Gateway, models.DO_NOTHING, db_constraint=False, null=True, blank=True, related_name="+"
    )
    # Each amount in the currency of the card it was rated with (domain.cdr.Cdr).
    sell_rate = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    sell_amount = models.DecimalField(max_digits=16, decimal_places=6, default=Decimal(0))
    sell_currency = models.CharField(max_length=3, default="EUR")
    cost_rate = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    cost_amount = models.DecimalField(max_digits=16, decimal_places=6, default=Decimal(0))
    cost_currency = models.CharField(max_length=3, blank=True)
    # Empty when the two currencies differ: no amount of one is taken from the other.
    margin = models.DecimalField(
        max_digits=16, decimal_places=6, null=True, blank=True, default=Decimal(0)
    )
    caller_user_agent = models.CharField(max_length=255, blank=True)
    callee_user_agent = models.CharField(max_length=255, blank=True)
    # Why the switch refused or ended the call (a fraud rule ...), for the operator.
    detail = models.CharField(max_length=255, blank=True)
    # [{"provider_id", "gateway_id", "started_at" (ISO 8601), "sip_code", "reason",
    #   "target" (the contact or trunk URI of an inbound or internal call's delivery)}, ...]
    attempts = models.JSONField(default=list, blank=True)
    # The media backend that carried the call and what it counted (0 under bypass):
    # RTP each side sent, packets dropped (strangers, not RTP), a media timeout.
    media = models.CharField(max_length=9, default="bypass")
    caller_rtp_packets = models.PositiveBigIntegerField(default=0)
    caller_rtp_bytes = models.PositiveBigIntegerField(default=0)
    caller_rtp_lost = models.PositiveBigIntegerField(default=0)
    callee_rtp_packets = models.PositiveBigIntegerField(default=0)
    callee_rtp_bytes = models.PositiveBigIntegerField(default=0)
    callee_rtp_lost = models.PositiveBigIntegerField(default=0)
    rtp_dropped = models.PositiveBigIntegerField(default=0)
    media_timeout = models.BooleanField(default=False)
    # Outbound, inbound (a provider called one of the customer's DIDs: ``did``, the
    # number called) or internal (an extension of the same customer).
    direction = models.CharField(
        max_length=8,
        choices=[(d.value, d.value) for d in CallDirection],
        default=CallDirection.OUTBOUND.value,
    )
    did = models.CharField("DID", max_length=20, blank=True)

    class Meta:
        verbose_name = "CDR"
        ordering = ("-started_at",)
        indexes = [
            models.Index(fields=["started_at"], name="cdr_started_at"),
            models.Index(fields=["customer", "started_at"], name="cdr_customer_started"),
            models.Index(fields=["provider", "started_at"], name="cdr_provider_started"),
            models.Index(fields=["callee"], name="cdr_callee"),
            models.Index(fields=["caller"], name="cdr_caller"),
            # Filters by code or destination list the newest first: with started_at in
            # the index the database reads the page in order instead of sorting every
            # matching row.
            models.Index(fields=["sip_code", "started_at"], name="cdr_sip_code_started"),
            models.Index(fields=["destination", "started_at"], name="cdr_destination_started"),
        ]

    def __str__(self) -> str:
        return f"{self.call_id} {self.callee} {self.sip_code}"
