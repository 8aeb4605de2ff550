"""Portal pages. Every page but the login is for customer users only.

Anonymous visitors are sent to the portal login; signed-in users without a customer
link (operators) get 403: the portal shows one customer's data, and an operator has
none of its own. Objects are always looked up within the customer, so another
customer's id is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, Concatenate
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tollguard.web.api.errors import KeyRequestError
from tollguard.web.api.keys import create_api_key, revoke_api_key
from tollguard.web.api.models import ApiKey
from tollguard.web.cdr.models import Cdr
from tollguard.web.core.csvout import CSV_CONTENT_TYPE
from tollguard.web.customers.models import Account, Customer, Did
from tollguard.web.customers.selectors import customer_of
from tollguard.web.portal import exports, selectors, services
from tollguard.web.portal.forms import ApiKeyForm, CdrFilterForm, older_than
from tollguard.web.security import views as security_views
from tollguard.web.security.events import printable
from tollguard.web.security.network import client_address

security_log = logging.getLogger("tollguard.security")

CDR_PAGE_SIZE = 50
LEDGER_PAGE_SIZE = 50

type CustomerView = Callable[Concatenate[HttpRequest, Customer, ...], HttpResponseBase]


def customer_required(view: CustomerView) -> Callable[..., HttpResponseBase]:
    """Pass the user's customer to ``view``; anonymous: login, operator: 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("portal:login"))
        customer = customer_of(request.user)
        if customer is None:
            security_log.warning(
                'portal permission denied: ip=%s user="%s" path="%s" reason="no customer"',
                client_address(request) or "-",
                printable(request.user.get_username()),
                printable(request.path, 200),
            )
            raise PermissionDenied("This page is for customer users.")
        response = view(request, customer, *args, **kwargs)
        # Pages show call records and credentials: never cache them anywhere.
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("portal:home")


class LogoutView(auth_views.LogoutView):
    def get_default_redirect_url(self) -> str:
        return reverse("portal:login")


@customer_required
@require_GET
def home(request: HttpRequest, customer: Customer) -> HttpResponse:
    return render(
        request,
        "portal/home.html",
        {
            "customer": customer,
            "charges": selectors.monthly_charges(customer, timezone.now()),
            "funds": selectors.funds(customer),
        },
    )


def _cursor(value: str) -> tuple[datetime, int] | None:
    """``<ISO time>_<id>`` as (started_at, id), or ``None`` when it is not one."""
    moment, sep, pk = value.rpartition("_")
    if not sep or not pk.isdigit():
        return None
    try:
        started = datetime.fromisoformat(moment)
    except ValueError:
        return None
    if started.tzinfo is None:
        return None
    return started, int(pk)


@customer_required
@require_GET
def cdr_list(request: HttpRequest, customer: Customer) -> HttpResponse:
    form = CdrFilterForm(request.GET)
    cdrs = Cdr.objects.filter(customer=customer)
    rows: list[Cdr] = []
    next_cursor = ""
    if form.is_valid():
        cdrs = form.filter(cdrs).order_by("-started_at", "-id")
        position = _cursor(request.GET.get("after", ""))
        if position is not None:
            cdrs = older_than(cdrs, *position)
        rows = list(cdrs[: CDR_PAGE_SIZE + 1])
        if len(rows) > CDR_PAGE_SIZE:
            rows = rows[:CDR_PAGE_SIZE]
            last = rows[-1]
            next_cursor = f"{last.started_at.isoformat()}_{last.pk}"
    query = request.GET.copy()
    query.pop("after", None)
    next_query = query.copy()
    if next_cursor:
        next_query["after"] = next_cursor
    return render(
        request,
        "portal/cdrs.html",
        {
            "customer": customer,
            "form": form,
            "rows": rows,
            "filters": query.urlencode(),
            "next_query": next_query.urlencode() if next_cursor else "",
            "first_page": "after" in request.GET,
        },
    )


@customer_required
@require_GET
def cdr_export(request: HttpRequest, customer: Customer) -> HttpResponseBase:
    form = CdrFilterForm(request.GET)
    if not form.is_valid():
        return render(request, "portal/cdrs.html", {"customer": customer, "form": form}, status=400)
    cdrs = form.filter(Cdr.objects.filter(customer=customer))
    response = StreamingHttpResponse(exports.cdr_csv(cdrs), content_type=CSV_CONTENT_TYPE)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="cdrs-{stamp}.csv"'
    return response


@customer_required
@require_GET
def ledger(request: HttpRequest, customer: Customer) -> HttpResponse:
    entries = selectors.ledger_of(customer)
    position = _cursor(request.GET.get("after", ""))
    if position is not None:
        entries = selectors.entries_before(entries, *position)
    rows = list(entries[: LEDGER_PAGE_SIZE + 1])
    next_cursor = ""
    if len(rows) > LEDGER_PAGE_SIZE:
        rows = rows[:LEDGER_PAGE_SIZE]
        last = rows[-1]
        next_cursor = f"{last.created_at.isoformat()}_{last.pk}"
    return render(
        request,
        "portal/ledger.html",
        {
            "customer": customer,
            "funds": selectors.funds(customer),
            "rows": rows,
            "next_query": urlencode({"after": next_cursor}) if next_cursor else "",
            "first_page": "after" in request.GET,
        },
    )


@customer_required
@require_GET
def ledger_export(request: HttpRequest, customer: Customer) -> HttpResponseBase:
    lines = exports.ledger_csv(selectors.ledger_of(customer), customer.currency)
    response = StreamingHttpResponse(lines, content_type=CSV_CONTENT_TYPE)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="ledger-{stamp}.csv"'
    return response


@customer_required
@require_GET
def rate_card(request: HttpRequest, customer: Customer) -> HttpResponseBase:
    card = customer.sell_card
    if card is None:
        return render(request, "portal/no_rate_card.html", {"customer": customer}, status=404)
    response = StreamingHttpResponse(exports.rate_card_csv(card), content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = 'attachment; filename="rate-card.csv"'
    return response


@customer_required
@require_GET
def account_list(request: HttpRequest, customer: Customer) -> HttpResponse:
    accounts = Account.objects.filter(customer=customer).order_by("username")
    return render(request, "portal/accounts.html", {"customer": customer, "accounts": accounts})


@customer_required
@require_GET
def did_list(request: HttpRequest, customer: Customer) -> HttpResponse:
    """The customer's own numbers, where their calls go, and what they cost."""
    dids = Did.objects.filter(customer=customer).select_related("account").order_by("first")
    return render(request, "portal/numbers.html", {"customer": customer, "dids": dids})


@customer_required
@require_http_methods(["GET", "POST"])
def account_reset(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    """GET: a page that says what a reset does and asks to confirm it; POST: reset.

    The reset stops every phone using the password at once, so one click on the list
    only leads here; the form on this page, a POST, is the confirmation.
    """
    account = get_object_or_404(Account, pk=pk, customer=customer)
    if request.method != "POST":
        return render(
            request, "portal/account_reset_confirm.html", {"customer": customer, "account": account}
        )
    password = services.reset_sip_password(account)
    security_log.info(
        'portal sip password reset: ip=%s user="%s" account="%s"',
        client_address(request) or "-",
        printable(request.user.get_username()),
        printable(account.username),
    )
    return render(
        request,
        "portal/account_reset.html",
        {"customer": customer, "account": account, "password": password},
    )


@customer_required
@require_http_methods(["GET", "POST"])
def api_key_list(request: HttpRequest, customer: Customer) -> HttpResponse:
    keys = ApiKey.objects.filter(customer=customer, owner_id=request.user.pk)
    if request.method == "POST":
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                issued = create_api_key(
                    owner=request.user,
                    customer=customer,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.cleaned_data["expires_on"],
                    allowed_networks=form.cleaned_data["allowed_networks"],
                )
            except KeyRequestError as exc:
                form.add_error(None, str(exc))
            else:
                return render(
                    request,
                    "portal/api_key_created.html",
                    {"customer": customer, "key": issued.key, "secret": issued.secret},
                )
    else:
        form = ApiKeyForm()
    return render(
        request,
        "portal/api_keys.html",
        {"customer": customer, "keys": keys, "form": form, "now": timezone.now()},
    )


@customer_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    """GET: the key and a form to confirm its revocation; POST: revoke it."""
    key = get_object_or_404(ApiKey, pk=pk, customer=customer, owner_id=request.user.pk)
    if request.method != "POST":
        return render(
            request, "portal/api_key_revoke_confirm.html", {"customer": customer, "key": key}
        )
    if key.revoked_at is None:
        revoke_api_key(key, now=timezone.now())
    messages.success(request, f"Key {key.name} revoked.")
    return HttpResponseRedirect(reverse("portal:api_keys"))


@customer_required
@require_GET
def session_list(request: HttpRequest, customer: Customer) -> HttpResponse:
    return security_views.session_list(request, "portal/sessions.html", {"customer": customer})


@customer_required
@require_POST
def session_end(request: HttpRequest, customer: Customer, pk: int) -> HttpResponse:
    return security_views.end_session(
        request, pk, reverse("portal:sessions"), reverse("portal:login")
    )


@customer_required
@require_POST
def sessions_end_others(request: HttpRequest, customer: Customer) -> HttpResponse:
    return security_views.end_other_sessions(request, reverse("portal:sessions"))


@customer_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest, customer: Customer) -> HttpResponse:
    """The signed-in user's own portal password: the current one, then the new one twice.

    The new password meets every configured validator (length, breached and context
    words). This session stays signed in; the user's other sessions end.
    """
    if request.method == "POST":
        form = PasswordChangeForm(request.user, request.POST)  # type: ignore[arg-type]
        if form.is_valid():
            user = form.save()
            update_session_auth_hash(request, user)
            security_log.info(
                'portal password changed: ip=%s user="%s"',
                client_address(request) or "-",
                printable(user.get_username()),
            )
            messages.success(request, "Password changed. Your other sessions have ended.")
            return HttpResponseRedirect(reverse("portal:home"))
    else:
        form = PasswordChangeForm(request.user)  # type: ignore[arg-type]
    return render(request, "portal/password.html", {"customer": customer, "form": form})
