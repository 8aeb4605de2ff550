"""The admin site: Django's, plus the second sign-in step for every staff user."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from tollguard.web.security import otp
from tollguard.web.security.middleware import otp_required


def _is_verified(user: object) -> bool:
    # django_otp's OTPMiddleware gives request.user an is_verified() method.
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False


class TollguardAdminSite(admin.AdminSite):
    site_header = "Tollguard administration"
    site_title = "Tollguard"
    index_title = "Configuration"

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        return not otp_required() or _is_verified(request.user)

    @method_decorator(never_cache)
    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        user = request.user
        if (
            request.method == "GET"
            and otp_required()
            and user.is_authenticated
            and user.is_staff
            and not _is_verified(user)
        ):
            target = "admin:otp_verify" if otp.has_device(user) else "admin:otp_enrol"
            return HttpResponseRedirect(reverse(target))
        return super().login(request, extra_context)

    def otp_verify_view(self, request: HttpRequest) -> HttpResponse:
        return otp.verify(request, self)

    def otp_enrol_view(self, request: HttpRequest) -> HttpResponse:
        return otp.enrol(request, self)

    def get_urls(self) -> list[URLPattern | URLResolver]:
        own: list[URLPattern | URLResolver] = [
            path("otp/verify/", self.otp_verify_view, name="otp_verify"),
            path("otp/enrol/", self.otp_enrol_view, name="otp_enrol"),
        ]
        return own + super().get_urls()
