"""API views: provisioning viewsets, CDR queries and traffic statistics.

Every view goes through :class:`tollguard.web.api.access.ApiAccess` and narrows its
queryset with :func:`tollguard.web.api.access.confine`. Configuration writes are plain
model saves: the configuration apps' signals bump the configuration version in the same
transaction, and SIP passwords go through ``customers.services.set_sip_password``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from django.db.models import Model, ProtectedError, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from tollguard.domain.shield import BanMode
from tollguard.web.api import serializers as s
from tollguard.web.api.access import confine, confined_customer
from tollguard.web.api.filters import (
    CdrFilter,
    CustomerCdrFilter,
    CustomerLedgerFilter,
    LedgerFilter,
)
from tollguard.web.api.models import ApiKey, Scope
from tollguard.web.api.statistics import traffic_stats
from tollguard.web.billing import services as billing_services
from tollguard.web.billing.errors import DuplicateReference
from tollguard.web.billing.models import LedgerEntry
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.customers.dids import delete_errors
from tollguard.web.customers.models import Account, AclEntry, Customer, Did
from tollguard.web.fraud import services as fraud_services
from tollguard.web.fraud.models import SipBan
from tollguard.web.rating.models import Rate, RateCard


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is still in use."
    default_code = "conflict"


class ProvisioningPagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class CdrPagination(CursorPagination):
    """Keyset pagination: a page costs the same at row 10 and at row 10 million."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = ("-started_at", "-id")


class ProvisioningViewSet[M: Model](viewsets.ModelViewSet[M]):
    read_scope: ClassVar[Scope] = Scope.READ_PROVISIONING
    write_scope: ClassVar[Scope] = Scope.WRITE_PROVISIONING
    # The lookup from the model to its customer; None closes the view to customers.
    customer_lookup: ClassVar[str | None] = None
    customer_serializer_class: ClassVar[type[BaseSerializer[Any]] | None] = None
    permission_model: ClassVar[type[Model]]
    pagination_class = ProvisioningPagination

    def get_queryset(self) -> QuerySet[M]:
        return confine(self.request, super().get_queryset(), self.customer_lookup)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if (
            self.customer_serializer_class is not None
            and not getattr(self, "swagger_fake_view", False)
            and confined_customer(self.request) is not None
        ):
            return self.customer_serializer_class
        return super().get_serializer_class()

    def perform_destroy(self, instance: M) -> None:
        try:
            instance.delete()
        except ProtectedError as exc:
            raise Conflict(f"{instance} is still referenced and cannot be deleted.") from exc


class CustomerViewSet(ProvisioningViewSet[Customer]):
    permission_model = Customer
    queryset = Customer.objects.select_related("balance").prefetch_related("providers")
    serializer_class = s.CustomerSerializer
    customer_serializer_class = s.CustomerViewSerializer
    customer_lookup = "pk"


class AccountViewSet(ProvisioningViewSet[Account]):
    permission_model = Account
    queryset = Account.objects.all()
    serializer_class = s.AccountSerializer
    customer_lookup = "customer"


class AclEntryViewSet(ProvisioningViewSet[AclEntry]):
    permission_model = AclEntry
    queryset = AclEntry.objects.all()
    serializer_class = s.AclEntrySerializer
    customer_lookup = "customer"


class DidViewSet(ProvisioningViewSet[Did]):
    """DIDs: operators manage them; a customer's key reads its own."""

    permission_model = Did
    queryset = Did.objects.all()
    serializer_class = s.DidSerializer
    customer_serializer_class = s.DidViewSerializer
    customer_lookup = "customer"

    def perform_destroy(self, instance: Did) -> None:
        if problems := delete_errors([instance]):
            raise Conflict(f"{instance} is still forwarded to: {'; '.join(problems)}.")
        super().perform_destroy(instance)


class ProviderViewSet(ProvisioningViewSet[Provider]):
    permission_model = Provider
    queryset = Provider.objects.all()
    serializer_class = s.ProviderSerializer


class GatewayViewSet(ProvisioningViewSet[Gateway]):
    permission_model = Gateway
    queryset = Gateway.objects.all()
    serializer_class = s.GatewaySerializer


class RateCardViewSet(ProvisioningViewSet[RateCard]):
    permission_model = RateCard
    queryset = RateCard.objects.all()
    serializer_class = s.RateCardSerializer
    customer_lookup = "customers"


class RateViewSet(ProvisioningViewSet[Rate]):
    permission_model = Rate
    queryset = Rate.objects.order_by("card_id", "prefix", "id")
    serializer_class = s.RateSerializer
    customer_lookup = "card__customers"


class SipBanViewSet(ProvisioningViewSet[SipBan]):
    """The SIP shield's ban list: list, add (replacing a ban of the same network) and
    release. Operators only: closed to keys confined to a customer."""

    permission_model = SipBan
    queryset = SipBan.objects.order_by("network")
    serializer_class = s.SipBanSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]

    def perform_create(self, serializer: BaseSerializer[SipBan]) -> None:
        data = serializer.validated_data
        seconds = data.get("duration_s")
        serializer.instance = fraud_services.add_ban(
            data["network"],
            duration=timedelta(seconds=seconds) if seconds else None,
            mode=BanMode(data.get("mode", BanMode.DROP.value)),
            note=data.get("note", ""),
            by=_actor(self.request),
        )

    def perform_destroy(self, instance: SipBan) -> None:
        fraud_services.remove_ban(instance.network, by=_actor(self.request))


def _actor(request: Request) -> str:
    key = request.auth
    if isinstance(key, ApiKey):
        return f"api key {key.prefix}"
    return str(request.user.get_username())


class CdrViewSet(viewsets.ReadOnlyModelViewSet[Cdr]):
    """CDRs, newest first, filtered; paginated by a cursor on ``started_at``."""

    queryset = Cdr.objects.all()
    permission_model = Cdr
    read_scope = Scope.READ_CDR
    write_scope = None
    customer_lookup = "customer"
    pagination_class = CdrPagination
    filter_backends = (DjangoFilterBackend, OrderingFilter)
    ordering_fields = ("started_at",)
    ordering = ("-started_at", "-id")

    def _confined(self) -> bool:
        return (
            not getattr(self, "swagger_fake_view", False)
            and confined_customer(self.request) is not None
        )

    @property
    def filterset_class(self) -> type[CustomerCdrFilter]:
        return CustomerCdrFilter if self._confined() else CdrFilter

    def get_queryset(self) -> QuerySet[Cdr]:
        return confine(self.request, super().get_queryset(), self.customer_lookup)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return s.CustomerCdrSerializer if self._confined() else s.CdrSerializer


class LedgerPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = ("-created_at", "-id")


class LedgerViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet[LedgerEntry],
):
    """The ledger, newest first; ``POST`` a top-up, refund or adjustment.

    Entries are never changed or deleted: there is no ``PUT``, ``PATCH`` or ``DELETE``.
    """

    queryset = LedgerEntry.objects.all()
    permission_model = LedgerEntry
    read_scope = Scope.READ_LEDGER
    write_scope = Scope.WRITE_LEDGER
    customer_lookup = "customer"
    pagination_class = LedgerPagination
    filter_backends = (DjangoFilterBackend,)

    def _confined(self) -> bool:
        return (
            not getattr(self, "swagger_fake_view", False)
            and confined_customer(self.request) is not None
        )

    @property
    def filterset_class(self) -> type[CustomerLedgerFilter]:
        return CustomerLedgerFilter if self._confined() else LedgerFilter

    def get_queryset(self) -> QuerySet[LedgerEntry]:
        return confine(self.request, super().get_queryset(), self.customer_lookup)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "create":
            return s.LedgerPostSerializer
        return s.LedgerEntrySerializer

    @extend_schema(request=s.LedgerPostSerializer, responses={201: s.LedgerEntrySerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        posted = s.LedgerPostSerializer(data=request.data)
        posted.is_valid(raise_exception=True)
        data = posted.validated_data
        try:
            entry = billing_services.post_entry(
                data["customer"],
                data["kind"],
                data["amount"],
                reason=data["reason"],
                reference=data["reference"],
                actor=request.user,
            )
        except DuplicateReference as exc:
            raise Conflict(str(exc)) from exc
        return Response(s.LedgerEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class StatsView(APIView):
    """ASR, ACD, calls, minutes and money per customer, provider or destination."""

    permission_model = Cdr
    read_scope = Scope.READ_STATS
    write_scope = None
    customer_lookup = "customer"

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("until", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter(
                "group_by", str, required=True, enum=["customer", "provider", "destination"]
            ),
        ],
        responses=s.StatsSerializer,
    )
    def get(self, request: Request) -> Response:
        query = s.StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        since, until, group_by = (query.validated_data[k] for k in ("since", "until", "group_by"))
        confined = confined_customer(request) is not None
        if confined and group_by == "provider":
            raise exceptions.PermissionDenied("Customers cannot group by provider.")
        cdrs = confine(
            request,
            Cdr.objects.filter(started_at__gte=since, started_at__lt=until),
            self.customer_lookup,
        )
        rows = []
        for row in traffic_stats(cdrs, group_by):
            data = {
                "key": row.key,
                "name": row.name,
                "currency": row.currency,
                "calls": row.calls,
                "answered": row.answered,
                "asr": row.asr,
                "acd_s": row.acd_s,
                "minutes": row.minutes,
                "billed_minutes": row.billed_minutes,
                "sell": row.sell,
            }
            if not confined:
                data.update(cost=row.cost, margin=row.margin)
            rows.append(data)
        body = s.StatsSerializer(
            {"since": since, "until": until, "group_by": group_by, "rows": rows}
        ).data
        return Response(body)
