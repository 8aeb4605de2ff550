"""Serializers of the provisioning objects, CDRs and statistics.

SIP passwords are write-only: they become HA1 digests through
:func:`tollguard.web.customers.services.set_sip_password`, and neither the password nor
the digests (which authenticate as well as the password does) are ever returned.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tollguard.domain.shield import parse_network as parse_ban_network
from tollguard.web.billing import services as billing_services
from tollguard.web.billing.errors import LedgerError
from tollguard.web.billing.models import POSTED_BY_HAND, LedgerEntry
from tollguard.web.carriers.models import GATEWAY_FIELDS, Gateway, Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.customers import services as customer_services
from tollguard.web.customers.dids import did_errors
from tollguard.web.customers.fields import parse_network
from tollguard.web.customers.models import Account, AclEntry, Customer, Did, credit_terms_errors
from tollguard.web.customers.selectors import DID_COLUMNS
from tollguard.web.fraud.models import SipBan
from tollguard.web.rating.models import RATE_FIELDS, Rate, RateCard, currency_change_error
from tollguard.web.security.field_access import read_only_fields

SIP_PASSWORD_MIN_LENGTH = 12


class RoleFieldLimitsSerializer[M: Model](serializers.ModelSerializer[M]):
    """Fields the requesting user's roles may not change are read-only (ASVS 8.2.3).

    The same table as the admin's (:mod:`tollguard.web.security.field_access`): a
    billing user's key writes a customer's sell card and limits, and a routing field
    in the same request is ignored, as DRF ignores every read-only field.
    """

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None:
            return fields
        for name in read_only_fields(request.user, self.Meta.model):
            if name in fields:
                fields[name].read_only = True
                fields[name].required = False
        return fields


class RateCardSerializer(RoleFieldLimitsSerializer[RateCard]):
    class Meta:
        model = RateCard
        fields = ("id", "name", "currency", "rounding", "decimals", "kind")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "currency" in attrs:
            problem = currency_change_error(self.instance, attrs["currency"])
            if problem:
                raise serializers.ValidationError({"currency": problem})
        return attrs


_MONEY_FIELD = serializers.DecimalField(max_digits=16, decimal_places=6, read_only=True)


def _balance(customer: Customer) -> str:
    try:
        amount = customer.balance.amount
    except ObjectDoesNotExist:
        amount = Decimal(0)
    return f"{amount.quantize(Decimal('0.000001')):f}"


class RateSerializer(RoleFieldLimitsSerializer[Rate]):
    class Meta:
        model = Rate
        fields = ("id", "card", *RATE_FIELDS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("effective_from"), attrs.get("effective_until")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError(
                {"effective_until": "Must be later than effective_from."}
            )
        return attrs


class ProviderSerializer(RoleFieldLimitsSerializer[Provider]):
    class Meta:
        model = Provider
        fields = (
            "id",
            "name",
            "enabled",
            "cost_card",
            "inbound_card",
            "priority",
            "weight",
            "media",
        )


class GatewaySerializer(RoleFieldLimitsSerializer[Gateway]):
    class Meta:
        model = Gateway
        fields = ("id", "provider", *GATEWAY_FIELDS)


class CustomerSerializer(RoleFieldLimitsSerializer[Customer]):
    balance = serializers.SerializerMethodField(help_text="The ledger balance (read only).")

    class Meta:
        model = Customer
        fields = (
            "id",
            "name",
            "enabled",
            "sell_card",
            "strategy",
            "allow_negative_margin",
            "max_call_duration_s",
            "country_code",
            "national_prefix",
            "international_prefix",
            "strip_prefix",
            "providers",
            "billing_mode",
            "credit_limit",
            "currency",
            "balance",
            "media",
        )

    @extend_schema_field(_MONEY_FIELD)
    def get_balance(self, obj: Customer) -> str:
        return _balance(obj)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        def value(name: str, default: Any) -> Any:
            if name in attrs:
                return attrs[name]
            return getattr(self.instance, name) if self.instance is not None else default

        errors = credit_terms_errors(
            pk=self.instance.pk if self.instance is not None else None,
            sell_card=value("sell_card", None),
            billing_mode=value("billing_mode", "prepaid"),
            credit_limit=value("credit_limit", Decimal(0)),
            currency=value("currency", "EUR"),
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class CustomerViewSerializer(serializers.ModelSerializer[Customer]):
    """What a customer sees of itself: no routing internals."""

    balance = serializers.SerializerMethodField(help_text="The ledger balance.")

    class Meta:
        model = Customer
        fields = (
            "id",
            "name",
            "enabled",
            "sell_card",
            "max_call_duration_s",
            "billing_mode",
            "credit_limit",
            "currency",
            "balance",
        )
        read_only_fields = fields

    @extend_schema_field(_MONEY_FIELD)
    def get_balance(self, obj: Customer) -> str:
        return _balance(obj)


class AccountSerializer(RoleFieldLimitsSerializer[Account]):
    password = serializers.CharField(
        write_only=True,
        required=False,
        min_length=SIP_PASSWORD_MIN_LENGTH,
        max_length=128,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Write-only; stored as HA1 digests for the configured realm.",
    )

    class Meta:
        model = Account
        fields = ("id", "customer", "username", "extension", "allow_md5", "enabled", "password")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        password = attrs.get("password")
        if self.instance is None and not password:
            raise serializers.ValidationError({"password": "A new account needs a password."})
        if (
            self.instance is not None
            and "username" in attrs
            and attrs["username"] != self.instance.username
            and not password
        ):
            # The digests cover the user name: a rename without a password breaks them.
            raise serializers.ValidationError(
                {"password": "Changing the user name needs a new password."}
            )
        if (
            attrs.get("allow_md5")
            and not password
            and (self.instance is None or not self.instance.ha1_md5)
        ):
            raise serializers.ValidationError(
                {"password": customer_services.ALLOW_MD5_NEEDS_DIGEST}
            )
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Account:
        password = validated_data.pop("password")
        account = Account(**validated_data)
        with transaction.atomic():
            customer_services.set_sip_password(account, password, settings.TOLLGUARD.sip.realm)
        return account

    def update(self, instance: Account, validated_data: dict[str, Any]) -> Account:
        password = validated_data.pop("password", None)
        with transaction.atomic():
            for name, value in validated_data.items():
                setattr(instance, name, value)
            instance.save()
            if password:
                customer_services.set_sip_password(instance, password, settings.TOLLGUARD.sip.realm)
        return instance


class AclEntrySerializer(RoleFieldLimitsSerializer[AclEntry]):
    network = serializers.CharField(max_length=43, help_text="CIDR, host bits zero.")

    class Meta:
        model = AclEntry
        fields = ("id", "customer", "network", "tech_prefix")

    def validate_network(self, value: str) -> str:
        try:
            return str(parse_network(value))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc


_CDR_CUSTOMER_FIELDS = (
    "id",
    "call_id",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_ms",
    "billed_s",
    "customer",
    "account",
    "source_ip",
    "caller",
    "callee",
    "destination",
    "sip_code",
    "sip_reason",
    "hangup_side",
    "sell_rate",
    "sell_amount",
    "sell_currency",
)


class CustomerCdrSerializer(serializers.ModelSerializer[Cdr]):
    """A CDR as its customer sees it: no provider, cost or margin."""

    class Meta:
        model = Cdr
        fields = _CDR_CUSTOMER_FIELDS
        read_only_fields = fields


class CdrSerializer(serializers.ModelSerializer[Cdr]):
    class Meta:
        model = Cdr
        fields = (
            *_CDR_CUSTOMER_FIELDS,
            "source_port",
            "callee_raw",
            "q850_cause",
            "provider",
            "gateway",
            "cost_rate",
            "cost_amount",
            "cost_currency",
            "margin",
            "caller_user_agent",
            "callee_user_agent",
            "attempts",
            "detail",
            "media",
            "caller_rtp_packets",
            "caller_rtp_bytes",
            "caller_rtp_lost",
            "callee_rtp_packets",
            "callee_rtp_bytes",
            "callee_rtp_lost",
            "rtp_dropped",
            "media_timeout",
        )
        read_only_fields = fields


class LedgerEntrySerializer(serializers.ModelSerializer[LedgerEntry]):
    class Meta:
        model = LedgerEntry
        fields = (
            "id",
            "customer",
            "created_at",
            "kind",
            "amount",
            "balance_after",
            "reason",
            "reference",
            "call_id",
            "created_by_name",
        )
        read_only_fields = fields


class LedgerPostSerializer(serializers.Serializer[Any]):
    """A top-up, refund or adjustment to post."""

    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    kind = serializers.ChoiceField(choices=[(kind.value, kind.label) for kind in POSTED_BY_HAND])
    amount = serializers.DecimalField(
        max_digits=16,
        decimal_places=6,
        help_text="In the customer's currency; positive for top-ups and refunds.",
    )
    reason = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required for refunds and adjustments.",
    )
    reference = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="A payment reference: a second entry with it for this customer is refused "
        "(409), so a retried request cannot book twice.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        entry = LedgerEntry(
            customer=attrs["customer"],
            kind=attrs["kind"],
            amount=attrs["amount"],
            reason=attrs["reason"],
        )
        try:
            billing_services.validate(entry)
        except LedgerError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return attrs


class StatsQuerySerializer(serializers.Serializer[Any]):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    group_by = serializers.ChoiceField(choices=("customer", "provider", "destination"))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["until"] <= attrs["since"]:
            raise serializers.ValidationError({"until": "Must be later than since."})
        return attrs


class TrafficStatsSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(help_text="Customer or provider id, or destination name.")
    name = serializers.CharField()
    currency = serializers.CharField(
        help_text="The sell currency: sell, cost and margin of this row are all in it."
    )
    calls = serializers.IntegerField()
    answered = serializers.IntegerField()
    asr = serializers.DecimalField(max_digits=7, decimal_places=2, help_text="Percent.")
    acd_s = serializers.DecimalField(max_digits=12, decimal_places=1)
    minutes = serializers.DecimalField(max_digits=16, decimal_places=2)
    billed_minutes = serializers.DecimalField(max_digits=16, decimal_places=2)
    sell = serializers.DecimalField(max_digits=20, decimal_places=6)
    cost = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, allow_null=True
    )
    margin = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, allow_null=True
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # A customer's rows carry no cost or margin at all, not a null one.
        data: dict[str, Any] = super().to_representation(instance)
        return {key: value for key, value in data.items() if key in instance}


class StatsSerializer(serializers.Serializer[Any]):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    group_by = serializers.CharField()
    rows = TrafficStatsSerializer(many=True)


# --- the SIP shield's ban list ------------------------------------------------------------------


class SipBanSerializer(serializers.ModelSerializer[SipBan]):
    """A ban is created or released, never changed; ``duration_s`` empty: until released."""

    duration_s = serializers.IntegerField(
        write_only=True, required=False, allow_null=True, min_value=1
    )

    class Meta:
        model = SipBan
        fields = (
            "id",
            "network",
            "reason",
            "mode",
            "offences",
            "note",
            "created_at",
            "expires_at",
            "duration_s",
        )
        read_only_fields = ("reason", "offences", "created_at", "expires_at")
        # The service replaces an existing ban of the network: no uniqueness error.
        extra_kwargs: ClassVar[dict[str, dict[str, Any]]] = {"network": {"validators": []}}

    def validate_network(self, value: str) -> str:
        try:
            return str(parse_ban_network(value))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


# The model's fields by name: the selector's columns, a foreign key without its "_id".
DID_FIELDS = tuple(column.removesuffix("_id") for column in DID_COLUMNS)


class DidSerializer(RoleFieldLimitsSerializer[Did]):
    """A DID, checked as the admin checks one: by the switch's DID table rules."""

    class Meta:
        model = Did
        fields = DID_FIELDS

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = Did(pk=self.instance.pk) if self.instance is not None else Did()
        for name, attname in zip(DID_FIELDS[1:], DID_COLUMNS[1:], strict=True):
            # A foreign key is copied by its id: no query for an unchanged owner.
            if name in attrs:
                setattr(candidate, name, attrs[name])
            elif self.instance is not None:
                setattr(candidate, attname, getattr(self.instance, attname))
        errors = did_errors(candidate)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DidViewSerializer(serializers.ModelSerializer[Did]):
    """What a customer sees of its own DIDs (read only)."""

    class Meta:
        model = Did
        fields = DID_FIELDS
        read_only_fields = fields
