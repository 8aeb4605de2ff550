"""The admin site: Django's, plus the second sign-in step for every staff user and the
pages where staff manage their own factors and sessions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tollguard.web.security import factors, otp, views
from tollguard.web.security.middleware import otp_required


def _is_verified(user: object) -> bool:
    # django_otp's OTPMiddleware gives request.user an is_verified() method.
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified()) if callable(is_verified) else False


# The admin's home page lists the apps in the order an operator needs them: the
# configuration first, then records and fraud control, then people and sign-in, then
# the logs. Django
# would sort them by name, which put "Audit log", "Authentication and Authorization"
# and "Axes" first.
APP_ORDER: tuple[str, ...] = (
    "customers",
    "carriers",
    "rating",
    "cdr",
    "fraud",
    "portal",
    "api",
    "security",
    "auth",
    "otp_totp",
    "axes",
    "auditlog",
    "core",
)
# Names for apps whose own read as code ("Otp_Totp") or say less than they hold.
APP_NAMES: dict[str, str] = {
    "auth": "Users and roles",
    "otp_totp": "Authenticator apps (TOTP)",
    "axes": "Sign-in lockouts",
    "core": "Configuration version",
}


class TollguardAdminSite(admin.AdminSite):
    site_header = "Tollguard administration"
    site_title = "Tollguard"
    index_title = "Configuration"

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        for app in apps:
            app["name"] = APP_NAMES.get(app["app_label"], app["name"])
        last = len(APP_ORDER)
        return sorted(
            apps,
            key=lambda app: (
                APP_ORDER.index(app["app_label"]) if app["app_label"] in APP_ORDER else last,
                app["name"],
            ),
        )

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

    # Signed-in pages of one's own account: factors (ASVS 7.5.1) and sessions (7.5.2).
    def reauthenticate_view(self, request: HttpRequest) -> HttpResponse:
        return factors.reauthenticate(request, self)

    def otp_devices_view(self, request: HttpRequest) -> HttpResponse:
        return factors.devices(request, self)

    def otp_add_view(self, request: HttpRequest) -> HttpResponse:
        return factors.add_device(request, self)

    def otp_backup_codes_view(self, request: HttpRequest) -> HttpResponse:
        return factors.replace_backup_codes(request, self)

    def otp_remove_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return factors.remove_device(request, self, pk)

    def sessions_view(self, request: HttpRequest) -> HttpResponse:
        context = {**self.each_context(request), "title": "Your sessions"}
        return views.session_list(request, "security/sessions.html", context)

    @method_decorator(require_POST)
    def session_end_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return views.end_session(request, pk, reverse("admin:sessions"), reverse("admin:login"))

    @method_decorator(require_POST)
    def sessions_end_others_view(self, request: HttpRequest) -> HttpResponse:
        return views.end_other_sessions(request, reverse("admin:sessions"))

    def get_urls(self) -> list[URLPattern | URLResolver]:
        own: list[URLPattern | URLResolver] = [
            path("otp/verify/", self.otp_verify_view, name="otp_verify"),
            path("otp/enrol/", self.otp_enrol_view, name="otp_enrol"),
            path(
                "otp/confirm-password/",
                self.admin_view(self.reauthenticate_view),
                name="reauthenticate",
            ),
            path("otp/devices/", self.admin_view(self.otp_devices_view), name="otp_devices"),
            path("otp/devices/add/", self.admin_view(self.otp_add_view), name="otp_add"),
            path(
                "otp/devices/backup-codes/",
                self.admin_view(self.otp_backup_codes_view),
                name="otp_backup_codes",
            ),
            path(
                "otp/devices/<int:pk>/remove/",
                self.admin_view(self.otp_remove_view),
                name="otp_remove",
            ),
            path("sessions/", self.admin_view(self.sessions_view), name="sessions"),
            path(
                "sessions/<int:pk>/end/",
                self.admin_view(self.session_end_view),
                name="session_end",
            ),
            path(
                "sessions/end-others/",
                self.admin_view(self.sessions_end_others_view),
                name="sessions_end_others",
            ),
        ]
        return own + super().get_urls()
