"""URLs of the REST API, mounted at ``/api/v1/``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated
from rest_framework.routers import SimpleRouter

from tollguard.web.api import views

app_name = "api"

router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("accounts", views.AccountViewSet, basename="account")
router.register("acl", views.AclEntryViewSet, basename="aclentry")
router.register("dids", views.DidViewSet, basename="did")
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("gateways", views.GatewayViewSet, basename="gateway")
router.register("rate-cards", views.RateCardViewSet, basename="ratecard")
router.register("rates", views.RateViewSet, basename="rate")
router.register("cdrs", views.CdrViewSet, basename="cdr")
router.register("bans", views.SipBanViewSet, basename="sipban")
router.register("ledger", views.LedgerViewSet, basename="ledgerentry")

urlpatterns: list[URLPattern | URLResolver] = [
    *router.urls,
    path("stats/", views.StatsView.as_view(), name="stats"),
    path(
        "schema/",
        SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]),
        name="schema",
    ),
    path(
        "docs/",
        # The split view serves its start-up script as a file: no inline script for CSP.
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema",
            template_name="api/swagger_ui.html",
            permission_classes=[IsAuthenticated],
        ),
        name="docs",
    ),
]
