"""The dashboard page and its JSON data, served inside the admin.

Both are mounted under the CDR admin (:func:`admin_urls`, added by
:mod:`tollguard.web.dashboard.admin`), so they need what every admin page needs (staff,
second factor, allowed address) plus permission to view CDRs. The page is static
markup: ``dashboard.js`` fetches the data and draws it with the locally served Chart.js,
as the Content-Security-Policy allows no inline script.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.http import urlencode

from tollguard.web.dashboard import selectors

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

__all__ = ["DEFAULT_PERIOD", "MAX_CACHE_SECONDS", "admin_urls", "cache_seconds"]

DEFAULT_PERIOD = "24h"
MAX_CACHE_SECONDS = 300


def _period(request: HttpRequest) -> str:
    name = request.GET.get("period", DEFAULT_PERIOD)
    return name if name in selectors.PERIODS else DEFAULT_PERIOD


def _until(request: HttpRequest) -> datetime:
    """``?until=`` (ISO 8601, UTC if naive) or now: a fixed end makes a view reproducible.

    Raises ValueError for text that is not ISO 8601.
    """
    text = request.GET.get("until", "")
    if not text:
        return timezone.now()
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def cache_seconds(period: str) -> int:
    """How long the data of ``period`` ending now is reused: one bucket, at most 5 min."""
    return min(int(selectors.PERIODS[period].bucket.total_seconds()), MAX_CACHE_SECONDS)


def _recent_data(period: str, now: datetime) -> dict[str, Any]:
    # Long periods aggregate many rows, and every open dashboard asks once a minute: the
    # figures for a period ending now are computed once per cache interval and shared.
    # The end is rounded down to that interval so that every viewer asks the same thing.
    ttl = cache_seconds(period)
    until = datetime.fromtimestamp(int(now.timestamp()) // ttl * ttl, tz=UTC)
    key = f"tollguard.dashboard:{period}:{until.isoformat()}"
    data: dict[str, Any] | None = cache.get(key)
    if data is None:
        data = selectors.dashboard_data(period, until)
        cache.set(key, data, ttl)
    return data


def admin_urls(model_admin: ModelAdmin[Any]) -> list[URLPattern]:
    """The dashboard's URLs, to be included by ``model_admin`` (the CDR admin)."""

    def check(request: HttpRequest) -> None:
        if not model_admin.has_view_permission(request):
            raise PermissionDenied

    def page(request: HttpRequest) -> HttpResponse:
        check(request)
        period = _period(request)
        query = {"period": period}
        if request.GET.get("until"):
            query["until"] = request.GET["until"]
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Dashboard",
            "periods": list(selectors.PERIODS),
            "period": period,
            "data_url": f"{reverse('admin:dashboard_data')}?{urlencode(query)}",
            "cdr_url": reverse("admin:cdr_cdr_changelist"),
            "security_url": (
                reverse("admin:security_securityevent_changelist")
                if request.user.has_perm("security.view_securityevent")
                else ""
            ),
        }
        return TemplateResponse(request, "dashboard/dashboard.html", context)

    def data(request: HttpRequest) -> JsonResponse:
        check(request)
        try:
            until = _until(request)
        except ValueError:
            return JsonResponse({"error": "until: not an ISO 8601 date and time"}, status=400)
        period = _period(request)
        if "until" in request.GET:
            return JsonResponse(selectors.dashboard_data(period, until))
        return JsonResponse(selectors.with_live_state(_recent_data(period, until)))

    wrap = model_admin.admin_site.admin_view
    return [
        path("dashboard/", wrap(page), name="dashboard"),
        path("dashboard/data/", wrap(data), name="dashboard_data"),
    ]
