"""Middleware: ban list, address rules, mandatory second factor, session lifetime, headers,
no caching of signed-in answers.

Order in ``MIDDLEWARE`` matters and ``settings/base.py`` explains it; the ban list and
the address rules answer before a session is even loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_SESSION_KEY
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_cache_control

from tollguard.web.security import events, services
from tollguard.web.security.network import (
    AddressRule,
    CountryRules,
    client_address,
    country_lookup,
    parse_address,
    parse_countries,
    parse_networks,
)

logger = logging.getLogger(__name__)

type GetResponse = Callable[[HttpRequest], HttpResponse]

# Session key holding the time of sign-in (seconds since the epoch).
SESSION_STARTED_KEY = "tollguard_session_started"
DEFAULT_ABSOLUTE_AGE = 12 * 3600

API_PREFIX = "/api/"

# Denied to every page; the softphone page will allow the microphone for itself.
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), "
    "fullscreen=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), "
    "screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()"
)


def _forbidden() -> HttpResponse:
    # The site's 403 page, the same whatever the reason: a banned or refused address
    # learns nothing about why. Rendered without the request: no session is loaded yet.
    return HttpResponseForbidden(render_to_string("403.html"))


class SecurityHeadersMiddleware:
    """Adds the headers Django does not set itself: ``Permissions-Policy``."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "TOLLGUARD_PERMISSIONS_POLICY", PERMISSIONS_POLICY)
        if policy and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = policy
        return response


# Pages that take or change credentials, never stored even for an anonymous visitor.
CREDENTIAL_PAGES = frozenset(
    {
        "login",
        "logout",
        "password_change",
        "password_change_done",
        "otp_verify",
        "otp_enrol",
        "otp_devices",
        "otp_add",
        "otp_backup_codes",
        "reauthenticate",
    }
)


def _carries_credentials(request: HttpRequest) -> bool:
    if "authorization" in request.headers:
        return True
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return True
    # A staff session before its second factor counts as anonymous outside the admin,
    # but it is a session all the same.
    session = getattr(request, "session", None)
    return session is not None and AUTH_SESSION_KEY in session


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every answer to a session or an API key, and on
    the sign-in and credential pages (ASVS 14.3.2).

    A signed-in page (CDRs, keys, customers) must not stay in the browser's cache for
    the next user of the machine to read back. Static files never reach this
    middleware (WhiteNoise answers them first) and stay cacheable.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if _carries_credentials(request) or (
            match is not None and match.url_name in CREDENTIAL_PAGES
        ):
            # RFC 9111 section 5.2.2.5: no-store forbids every cache from keeping it;
            # private replaces any "public" a view set.
            directives = {
                part.strip().split("=")[0].lower()
                for part in response.get("Cache-Control", "").split(",")
            }
            if "no-store" not in directives:
                patch_cache_control(response, no_store=True)
            if "public" in directives:
                patch_cache_control(response, private=True)
        return response


class BannedAddressMiddleware:
    """Answer 403 to a banned address on every URL (static files come before it)."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if services.is_banned(client_address(request)):
            events.banned_address_refused(request)
            return _forbidden()
        return self.get_response(request)


def admin_prefix() -> str:
    """URL prefix of the real admin (``"/x7f3a/"``), or ``""`` when it is not mounted."""
    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return ""


class AddressRestrictionMiddleware:
    """Only allowed networks (and, with a country database, countries) reach the admin
    and the API; everyone else gets 403 and a security log line."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        web = settings.TOLLGUARD.web
        countries = CountryRules(
            allow=parse_countries(web.allow_countries, "web.allow_countries"),
            deny=parse_countries(web.deny_countries, "web.deny_countries"),
        )
        self.rules = {
            "admin": AddressRule(parse_networks(web.admin_allow, "web.admin_allow"), countries),
            "api": AddressRule(parse_networks(web.api_allow, "web.api_allow"), countries),
        }
        self.geoip_database = web.geoip_database

    def area(self, request: HttpRequest) -> str | None:
        path = request.path_info
        if path.startswith(API_PREFIX):
            return "api"
        prefix = admin_prefix()
        if prefix and prefix != "/" and path.startswith(prefix):
            return "admin"
        return None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        area = self.area(request)
        if area is None:
            return self.get_response(request)
        rule = self.rules[area]
        address = parse_address(client_address(request))
        country = None
        if address is not None and rule.countries.active and self.geoip_database:
            country = country_lookup(self.geoip_database).country(address)
        if not rule.permits(address, country):
            events.address_refused(request, area, country)
            return _forbidden()
        return self.get_response(request)


class SessionLifetimeMiddleware:
    """End a signed-in session a fixed time after sign-in, however active it is.

    The idle timeout is Django's own (``SESSION_COOKIE_AGE`` with
    ``SESSION_SAVE_EVERY_REQUEST``); this adds the absolute limit (ASVS 7.3.2).
    """

    def __init__(self, get_response: GetResponse, clock: Callable[[], float] = time.time) -> None:
        self.get_response = get_response
        self.clock = clock

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = self.clock()
            started = request.session.get(SESSION_STARTED_KEY)
            limit = getattr(settings, "TOLLGUARD_SESSION_ABSOLUTE_AGE", DEFAULT_ABSOLUTE_AGE)
            if started is None:
                request.session[SESSION_STARTED_KEY] = now
            elif now - float(started) > limit:
                logger.info("session of user %s ended after %d s", user.pk, limit)
                logout(request)
        return self.get_response(request)


def otp_required() -> bool:
    return bool(getattr(settings, "TOLLGUARD_OTP_REQUIRED", True))


class OTPRequiredMiddleware:
    """Staff must pass the second factor before any admin page but the sign-in flow.

    A staff user without a confirmed device is sent to enrolment first; one with a
    device is sent to the code page. Outside the admin (the API's session
    authentication, the portal) a staff session that has not passed the second factor
    counts as anonymous, so the password alone opens nothing. Runs after
    ``django_otp``'s ``OTPMiddleware``.
    """

    # Admin views a half-signed-in staff user may reach.
    ALLOWED = frozenset({"login", "logout", "otp_verify", "otp_enrol", "jsi18n"})

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if otp_required() and not self._in_admin(request):
            user = getattr(request, "user", None)
            if (
                user is not None
                and user.is_authenticated
                and user.is_staff
                and not user.is_verified()
            ):
                request.user = AnonymousUser()
        return self.get_response(request)

    @staticmethod
    def _in_admin(request: HttpRequest) -> bool:
        prefix = admin_prefix()
        return bool(prefix) and prefix != "/" and request.path_info.startswith(prefix)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[object, ...],
        view_kwargs: dict[str, object],
    ) -> HttpResponse | None:
        if not otp_required():
            return None
        match = request.resolver_match
        if match is None or "admin" not in match.namespaces:
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return None
        if user.is_verified() or match.url_name in self.ALLOWED:
            return None
        from tollguard.web.security import otp

        target = "admin:otp_verify" if otp.has_device(user) else "admin:otp_enrol"
        return HttpResponseRedirect(reverse(target))
