"""Staff manage their own second factors, after entering their password again.

ASVS 7.5.1: changing an authentication factor needs a fresh proof of the password, not
just a session that may have been left open. ``<admin>/otp/confirm-password/`` checks
the password (through the authentication backends, so Axes counts failures) and stamps
the session; for :data:`REAUTH_WINDOW` seconds after it the user may add an
authenticator, replace the backup codes or remove an authenticator while keeping at
least one. Every change is a security event.

The first enrolment (``otp.enrol``) is not here: it follows the password step of the
same sign-in and is only offered to a user without any device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import django_otp
from django import forms
from django.contrib import messages
from django.contrib.auth import authenticate
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from tollguard.web.security import events
from tollguard.web.security.models import BackupCodeDevice
from tollguard.web.security.otp import (
    TOTP_DEVICE_NAME,
    AnyUser,
    TokenForm,
    new_backup_codes,
    next_url,
    pending_totp,
    scan_context,
)

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite

# Session key holding the time (seconds since the epoch) of the last password check.
REAUTH_KEY = "tollguard_reauthenticated_at"
REAUTH_WINDOW = 5 * 60.0

clock: Callable[[], float] = time.time


class PasswordForm(forms.Form):
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


def recently_reauthenticated(request: HttpRequest) -> bool:
    """Whether the password was entered again in this session in the last 5 minutes."""
    stamp = request.session.get(REAUTH_KEY)
    if not isinstance(stamp, int | float):
        return False
    return 0 <= clock() - float(stamp) <= REAUTH_WINDOW


def _reauth_redirect(request: HttpRequest, target: str) -> HttpResponse:
    query = urlencode({"next": target})
    return HttpResponseRedirect(f"{reverse('admin:reauthenticate')}?{query}")


def _context(site: AdminSite, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {**site.each_context(request), **extra}


@sensitive_post_parameters("password")
def reauthenticate(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """Ask for the password again; on success stamp the session and go on to ``next``."""
    user = request.user
    form = PasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        checked = authenticate(
            request, username=user.get_username(), password=form.cleaned_data["password"]
        )
        if checked is not None and checked.pk == user.pk:
            request.session[REAUTH_KEY] = clock()
            events.reauthenticated(request)
            return HttpResponseRedirect(next_url(request, "admin:otp_devices"))
        events.reauthentication_failure(request)
        form.add_error("password", "This password is not correct.")
    return TemplateResponse(
        request,
        "security/reauthenticate.html",
        _context(
            site,
            request,
            form=form,
            next=next_url(request, "admin:otp_devices"),
            title="Confirm your password",
        ),
    )


def _totp_devices(user: AnyUser) -> list[TOTPDevice]:
    return list(TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("pk"))


def devices(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """The signed-in user's authenticators and backup codes, with what may be changed."""
    user = request.user
    backup = BackupCodeDevice.objects.filter(user_id=user.pk, confirmed=True).first()
    return TemplateResponse(
        request,
        "security/otp_devices.html",
        _context(
            site,
            request,
            title="Two-factor authentication",
            devices=_totp_devices(user),
            backup_codes_left=backup.codes.count() if backup is not None else 0,
            reauthenticated=recently_reauthenticated(request),
        ),
    )


def _new_device_name(user: AnyUser) -> str:
    taken = set(TOTPDevice.objects.filter(user_id=user.pk).values_list("name", flat=True))
    number = 2
    while f"{TOTP_DEVICE_NAME} {number}" in taken:
        number += 1
    return f"{TOTP_DEVICE_NAME} {number}"


@sensitive_post_parameters("token")
def add_device(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """Add another authenticator: scan, then confirm with a code from it."""
    if not recently_reauthenticated(request):
        return _reauth_redirect(request, reverse("admin:otp_add"))
    user = request.user
    device = pending_totp(user, _new_device_name(user))
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"].strip()):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            events.otp_device_changed(request, "added", device.name)
            messages.success(request, f"{device.name} added.")
            return HttpResponseRedirect(reverse("admin:otp_devices"))
        events.otp_failure(request)
        form.add_error("token", "This code is not valid. Check the clock of your device.")
    return TemplateResponse(
        request,
        "security/otp_add.html",
        _context(site, request, form=form, title="Add an authenticator", **scan_context(device)),
    )


@require_POST
def replace_backup_codes(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """Discard the backup codes and show new ones, once."""
    if not recently_reauthenticated(request):
        return _reauth_redirect(request, reverse("admin:otp_devices"))
    backup, codes = new_backup_codes(request.user)
    events.otp_device_changed(request, "backup codes replaced", backup.name)
    return TemplateResponse(
        request,
        "security/otp_new_backup_codes.html",
        _context(site, request, codes=codes, title="New backup codes"),
    )


@require_POST
def remove_device(request: HttpRequest, site: AdminSite, pk: int) -> HttpResponse:
    """Remove one authenticator, never the last one."""
    if not recently_reauthenticated(request):
        return _reauth_redirect(request, reverse("admin:otp_devices"))
    user = request.user
    owned = _totp_devices(user)
    device = next((d for d in owned if d.pk == pk), None)
    if device is None:
        raise Http404("No such authenticator.")
    if len(owned) < 2:
        messages.error(request, "Add another authenticator before removing the last one.")
        return HttpResponseRedirect(reverse("admin:otp_devices"))
    remaining = next(d for d in owned if d.pk != pk)
    verified_by_it = request.session.get(DEVICE_ID_SESSION_KEY) == device.persistent_id
    device.delete()
    if verified_by_it:
        # This session passed its second factor with the removed device; the user has
        # just proved the password again, so keep the session verified by one they keep.
        django_otp.login(request, remaining)
    events.otp_device_changed(request, "removed", device.name)
    messages.success(request, f"{device.name} removed.")
    return HttpResponseRedirect(reverse("admin:otp_devices"))
