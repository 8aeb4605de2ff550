"""The honeypot at ``/admin/``, the 403 handler and the lockout page, and the "your
sessions" pages shared by the admin and the portal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import UsernameField
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.defaults import permission_denied as django_permission_denied

from tollguard.web.security import events, services, sessions

# Django's own wording, so the decoy cannot be told from a real admin by its errors.
_INVALID_LOGIN = (
    "Please enter the correct username and password for a staff account. "
    "Note that both fields may be case-sensitive."
)


class DecoyLoginForm(forms.Form):
    """Field for field the admin's login form; it never checks a password."""

    username = UsernameField(widget=forms.TextInput(attrs={"autofocus": True}), max_length=150)
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


@never_cache
def honeypot_redirect(request: HttpRequest) -> HttpResponse:
    """Like the admin: any page sends an anonymous visitor to the login form."""
    return HttpResponseRedirect(f"/admin/login/?{urlencode({'next': request.path})}")


@sensitive_post_parameters()
@csrf_protect
@never_cache
def honeypot_login(request: HttpRequest) -> HttpResponse:
    """Look like the admin's login page; record and ban whoever tries to sign in."""
    form = DecoyLoginForm(request.POST or None)
    if request.method == "POST":
        services.record_honeypot_attempt(request, str(request.POST.get("username", "")))
        form.is_valid()
        form.add_error(None, _INVALID_LOGIN)
    return TemplateResponse(
        request,
        "security/honeypot_login.html",
        {
            "form": form,
            "title": "Log in",
            "site_title": "Django site admin",
            "site_header": "Django administration",
            "app_path": request.get_full_path(),
            "next": request.GET.get("next", ""),
        },
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 403 handler (the ``403.html`` page), with a security log line first
    (``handler403``)."""
    events.permission_denied(request)
    return django_permission_denied(request, exception or Exception())


def lockout(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The answer to a locked-out sign-in (``AXES_LOCKOUT_CALLABLE``): 429 with a page
    that says what happened, how long it lasts and what to do, and ``Retry-After``.

    It says nothing an attacker could not read in the documentation: not whether the
    user exists (a lock applies to any name), nor the name that was tried.
    """
    cooloff = getattr(settings, "AXES_COOLOFF_TIME", None)
    seconds = int(cooloff.total_seconds()) if isinstance(cooloff, timedelta) else 0
    context = {
        "failure_limit": getattr(settings, "AXES_FAILURE_LIMIT", 0),
        "cooloff_minutes": max(1, -(-seconds // 60)),
        "retry_url": request.path,
    }
    response = render(request, "errors/lockout.html", context, status=429)
    if seconds:
        # RFC 9110 section 10.2.3: when to try again, in seconds.
        response["Retry-After"] = str(seconds)
    return response


def session_list(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """The signed-in user's sessions (ASVS 7.5.2), drawn with ``template``."""
    return TemplateResponse(
        request, template, {**context, "sessions": sessions.active_sessions(request)}
    )


def end_session(request: HttpRequest, pk: int, done: str, signed_out: str) -> HttpResponse:
    """End session ``pk`` of the signed-in user (404 for anyone else's); back to
    ``done``, or to ``signed_out`` when it was the current one."""
    current = sessions.current_id(request) == pk
    if not sessions.end_session(request, pk):
        raise Http404("No such session.")
    if current:
        return HttpResponseRedirect(signed_out)
    messages.success(request, "The session was ended.")
    return HttpResponseRedirect(done)


def end_other_sessions(request: HttpRequest, done: str) -> HttpResponse:
    ended = sessions.end_other_sessions(request)
    messages.success(request, f"{ended} other session{'s' if ended != 1 else ''} ended.")
    return HttpResponseRedirect(done)
