"""Force users with a generated one-time password to choose their own first."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse

from tollguard.web.core.models import PasswordChangeRequired


class PasswordChangeRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            marker = PasswordChangeRequired.objects.filter(user_id=user.pk).first()
            if marker is not None:
                if marker.password_hash != user.password:
                    marker.delete()
                else:
                    try:
                        # The second factor comes first (security.otp), then the
                        # new password.
                        allowed = {
                            reverse("admin:password_change"),
                            reverse("admin:password_change_done"),
                            reverse("admin:logout"),
                            reverse("admin:otp_enrol"),
                            reverse("admin:otp_verify"),
                        }
                    except NoReverseMatch:
                        allowed = set()
                    if allowed and request.path not in allowed:
                        return HttpResponseRedirect(reverse("admin:password_change"))
        return self.get_response(request)
