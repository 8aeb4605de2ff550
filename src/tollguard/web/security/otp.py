"""The second step of staff sign-in: enrol an authenticator, or enter a code.

Staff sign in with a password (the admin's own login view), then either enrol a TOTP
authenticator (RFC 6238; the QR code is drawn here as inline SVG, nothing is fetched
from elsewhere) and receive single-use backup codes once, or enter a code from an
enrolled device. :class:`~tollguard.web.security.middleware.OTPRequiredMiddleware` sends
them here until the session is verified.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

import django_otp
import qrcode
import qrcode.image.svg
from django import forms
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp.plugins.otp_totp.models import TOTPDevice

from tollguard.web.security import events
from tollguard.web.security.models import BackupCodeDevice

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite

TOTP_DEVICE_NAME = "authenticator"
BACKUP_DEVICE_NAME = "backup codes"
_TOTP_TOKEN = re.compile(r"\d{6,8}")

type AnyUser = AbstractBaseUser | AnonymousUser


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "text"}
        ),
    )


def has_device(user: AnyUser) -> bool:
    """Whether ``user`` has a confirmed second factor."""
    return any(django_otp.devices_for_user(user, confirmed=True))


def qr_svg(text: str) -> str:
    """``text`` as a QR code in inline SVG markup (no external image, no inline style)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathFillImage, border=2)
    svg: str = image.to_string(encoding="unicode")
    return svg


def next_url(request: HttpRequest, default: str = "admin:index") -> str:
    """The request's ``next`` when it stays on this site, else the URL named ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse(default)


def _context(site: AdminSite, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {**site.each_context(request), "next": next_url(request), **extra}


def _device_for(user: AnyUser, token: str) -> TOTPDevice | BackupCodeDevice | None:
    # A six-to-eight digit code comes from the authenticator, anything else is a
    # backup code; each device throttles its own failures.
    if _TOTP_TOKEN.fullmatch(token):
        return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()
    return BackupCodeDevice.objects.filter(user_id=user.pk, confirmed=True).first()


@sensitive_post_parameters("token")
@csrf_protect
@never_cache
def verify(request: HttpRequest, site: AdminSite) -> HttpResponse:
    user = request.user
    if not user.is_authenticated or not user.is_staff:
        # Only staff sign in to the admin; anyone else goes back to its login page.
        return HttpResponseRedirect(reverse("admin:login"))
    if not has_device(user):
        return HttpResponseRedirect(reverse("admin:otp_enrol"))
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"].strip()
        device = _device_for(user, token)
        if device is not None:
            verified = django_otp.verify_token(user, device.persistent_id, token)
            if verified is not None:
                django_otp.login(request, verified)
                events.otp_verified(request)
                return HttpResponseRedirect(next_url(request))
        events.otp_failure(request)
        form.add_error("token", "This code is not valid. Wait a moment and try again.")
    return TemplateResponse(
        request,
        "security/otp_verify.html",
        _context(site, request, form=form, title="Two-factor authentication"),
    )


def pending_totp(user: AnyUser, name: str = TOTP_DEVICE_NAME) -> TOTPDevice:
    """The user's authenticator being set up, made (as ``name``) when there is none."""
    device = TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).first()
    if device is None:
        # tolerance=0: a code is good for its own 30-second step only (ASVS 6.5.5).
        device = TOTPDevice.objects.create(user_id=user.pk, name=name, confirmed=False, tolerance=0)
    return device


def scan_context(device: TOTPDevice) -> dict[str, Any]:
    """What a set-up page shows of ``device``: its QR code and its secret in groups of 4."""
    secret = base64.b32encode(device.bin_key).decode()
    return {
        # qrcode escapes nothing itself, but the only text is our own otpauth URL.
        "qr_code": mark_safe(qr_svg(device.config_url)),  # noqa: S308
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    }


def new_backup_codes(user: AnyUser) -> tuple[BackupCodeDevice, list[str]]:
    """Replace ``user``'s backup codes (making the device if needed); the codes, once."""
    backup, _ = BackupCodeDevice.objects.get_or_create(
        user_id=user.pk, defaults={"name": BACKUP_DEVICE_NAME, "confirmed": True}
    )
    return backup, backup.replace_codes()


@sensitive_post_parameters("token")
@csrf_protect
@never_cache
def enrol(request: HttpRequest, site: AdminSite) -> HttpResponse:
    user = request.user
    if not user.is_authenticated or not user.is_staff:
        # Only staff sign in to the admin; anyone else goes back to its login page.
        return HttpResponseRedirect(reverse("admin:login"))
    if has_device(user):
        # A second device may only be added by someone who already passed the first.
        return HttpResponseRedirect(reverse("admin:otp_verify"))
    device = pending_totp(user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"].strip()):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            _, codes = new_backup_codes(user)
            django_otp.login(request, device)
            events.otp_verified(request)
            return TemplateResponse(
                request,
                "security/otp_backup_codes.html",
                _context(site, request, codes=codes, title="Backup codes"),
            )
        events.otp_failure(request)
        form.add_error("token", "This code is not valid. Check the clock of your device.")
    return TemplateResponse(
        request,
        "security/otp_enrol.html",
        _context(
            site,
            request,
            form=form,
            title="Set up two-factor authentication",
            **scan_context(device),
        ),
    )
