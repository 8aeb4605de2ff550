"""Deny by default, proven by walking every URL pattern of the project.

Each pattern is requested as an anonymous visitor, as a customer user of customer A
(signed in, and through an API key), and as a member of each role group. Path
parameters are filled with the ids of customer B's objects, so a customer that gets
anything but a refusal or a 404 for them has seen another customer's data; no page a
customer may open contains B's names or numbers.

Every pattern needs a declared expectation in ``DECLARED`` (or, for the admin's model
pages, the admin's own permission rule): a new URL without one fails
:func:`test_every_url_has_an_expectation`. Each request runs in a savepoint that is
rolled back, so writes and sign-outs do not change what the next request sees.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import models, transaction
from django.test import Client, RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, path, resolve

from tollguard.web import urls as project_urls
from tollguard.web.api.access import model_permission
from tollguard.web.api.models import CUSTOMER_SCOPES, ApiKey
from tollguard.web.billing import services as billing_services
from tollguard.web.billing.models import EntryKind, LedgerEntry
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.cdr.models import Cdr
from tollguard.web.customers.models import Account, AclEntry, Customer, Did
from tollguard.web.fraud.models import SipBan
from tollguard.web.portal.models import CustomerUser
from tollguard.web.rating.models import Rate, RateCard
from tollguard.web.security.models import UserSession

from .api import people

# The project's URLs, plus the admin at a test path when the test settings do not mount
# it (web.admin_path is chosen at init, so it is empty here).
urlpatterns: list[URLPattern | URLResolver] = list(project_urls.urlpatterns)
if not any(getattr(p, "namespace", None) == "admin" for p in urlpatterns):
    urlpatterns.append(path("walk-admin/", admin.site.urls))

# Strings that identify customer B's data in any page or document.
B_MARKERS = ("bravo", "bob", "1212555", "203.0.113.0", "sell-b")


# --- personas ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    kind: str  # "anonymous", "customer" or "role"
    user: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def session(self) -> bool:
        return self.user is not None and not self.headers

    def web_kind(self) -> str:
        """What a page outside the API sees: a key is no session, so anonymous."""
        return self.kind if self.session or self.kind == "anonymous" else "anonymous"

    def has_perm(self, perm: str) -> bool:
        return self.kind == "role" and bool(self.user.has_perm(perm))


# --- expectations -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    statuses: frozenset[int]
    location: str = ""  # a redirect must go here (prefix)


def outcome(*statuses: int, location: str = "") -> Outcome:
    return Outcome(frozenset(statuses), location)


class Rule:
    methods: tuple[str, ...] = ("GET",)
    query: str = ""

    def expect(self, persona: Persona, method: str) -> Outcome:
        raise NotImplementedError


@dataclass(frozen=True)
class Api(Rule):
    """A REST view: 401 anonymous; customers read their own rows only; staff per perms."""

    model: type[models.Model]
    detail: bool = False
    customer_reads: bool = True
    writable: bool = True
    query: str = ""

    @property
    def methods(self) -> tuple[str, ...]:  # type: ignore[override]
        if not self.writable:
            return ("GET",)
        return ("GET", "DELETE") if self.detail else ("GET", "POST")

    def expect(self, persona: Persona, method: str) -> Outcome:
        if persona.kind == "anonymous":
            return outcome(401)
        if persona.kind == "customer":
            if method != "GET" or not self.customer_reads:
                return outcome(403)
            return outcome(404) if self.detail else outcome(200)
        if not persona.has_perm(model_permission(method, self.model)):
            return outcome(403)
        # Allowed: an empty POST is invalid; deleting may be refused as still in use.
        return {"GET": outcome(200), "POST": outcome(400), "DELETE": outcome(204, 409)}[method]


@dataclass(frozen=True)
class ApiDocs(Rule):
    def expect(self, persona: Persona, method: str) -> Outcome:
        return outcome(401, 403) if persona.kind == "anonymous" else outcome(200)


@dataclass(frozen=True)
class Portal(Rule):
    """A portal page: login first; a customer gets ``customer`` (404 for B's objects)."""

    customer: int = 200
    methods: tuple[str, ...] = ("GET",)

    def expect(self, persona: Persona, method: str) -> Outcome:
        kind = persona.web_kind()
        if kind == "anonymous":
            return outcome(302, location="/portal/login/")
        if kind == "customer":
            return outcome(self.customer)
        return outcome(403)


@dataclass(frozen=True)
class Public(Rule):
    """Open to everyone by design (sign-in pages, the honeypot)."""

    statuses: frozenset[int] = frozenset({200})
    methods: tuple[str, ...] = ("GET",)

    def expect(self, persona: Persona, method: str) -> Outcome:
        return Outcome(self.statuses)


@dataclass(frozen=True)
class AdminPage(Rule):
    """An admin page: staff only; ``perms`` (any of them) unless None."""

    perms: tuple[str, ...] | None = None
    allowed: frozenset[int] = frozenset({200, 302})
    model_label: str = ""  # the model whose row fills the path, for custom pages
    methods: tuple[str, ...] = ("GET",)

    def expect(self, persona: Persona, method: str) -> Outcome:
        if persona.web_kind() != "role":
            return outcome(302, location="/walk-admin/login/")
        if self.perms is None or any(persona.has_perm(p) for p in self.perms):
            return Outcome(self.allowed)
        return outcome(403, 404)


# Expectations the code does not meet yet: strict, so a fix makes the test fail until
# the entry is removed.
KNOWN_FINDINGS: dict[str, str] = {}

STATS_QUERY = "since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z&group_by=customer"

DECLARED: dict[str, Rule] = {
    # The site root sends everyone to the portal (tests/web/test_root.py checks where).
    "root": Public(frozenset({302})),
    "favicon": Public(),
    "api:customer-list": Api(Customer),
    "api:customer-detail": Api(Customer, detail=True),
    "api:account-list": Api(Account),
    "api:account-detail": Api(Account, detail=True),
    "api:aclentry-list": Api(AclEntry),
    "api:aclentry-detail": Api(AclEntry, detail=True),
    "api:did-list": Api(Did),
    "api:did-detail": Api(Did, detail=True),
    "api:provider-list": Api(Provider, customer_reads=False),
    "api:provider-detail": Api(Provider, detail=True, customer_reads=False),
    "api:gateway-list": Api(Gateway, customer_reads=False),
    "api:gateway-detail": Api(Gateway, detail=True, customer_reads=False),
    "api:ratecard-list": Api(RateCard),
    "api:ratecard-detail": Api(RateCard, detail=True),
    "api:rate-list": Api(Rate),
    "api:rate-detail": Api(Rate, detail=True),
    "api:cdr-list": Api(Cdr, writable=False),
    "api:cdr-detail": Api(Cdr, detail=True, writable=False),
    "api:stats": Api(Cdr, writable=False, query=STATS_QUERY),
    "api:sipban-list": Api(SipBan, customer_reads=False),
    "api:sipban-detail": Api(SipBan, detail=True, customer_reads=False),
    # Entries are posted, never changed or deleted.
    "api:ledgerentry-list": Api(LedgerEntry),
    "api:ledgerentry-detail": Api(LedgerEntry, detail=True, writable=False),
    "api:schema": ApiDocs(),
    "api:docs": ApiDocs(),
    "portal:home": Portal(),
    # Signed-in users are sent on to the portal's home, which then decides.
    "portal:login": Public(frozenset({200, 302})),
    "portal:logout": Public(frozenset({302}), methods=("POST",)),
    "portal:cdrs": Portal(),
    "portal:cdr_export": Portal(),
    "portal:ledger": Portal(),
    "portal:ledger_export": Portal(),
    "portal:rate_card": Portal(),
    "portal:accounts": Portal(),
    "portal:numbers": Portal(),
    # GET asks to confirm, POST resets: both 404 for another customer's account.
    "portal:account_reset": Portal(customer=404, methods=("GET", "POST")),
    "portal:api_keys": Portal(),
    "portal:api_key_revoke": Portal(customer=404, methods=("GET", "POST")),
    "portal:sessions": Portal(),
    # The path names customer B's session: not the customer's own, so a 404.
    "portal:session_end": Portal(customer=404, methods=("POST",)),
    "portal:sessions_end_others": Portal(customer=302, methods=("POST",)),
    "portal:password": Portal(),
    "admin:index": AdminPage(),
    "admin:login": Public(frozenset({200, 302})),
    "admin:logout": Public(frozenset({200, 302}), methods=("POST",)),
    "admin:password_change": AdminPage(),
    "admin:password_change_done": AdminPage(),
    "admin:jsi18n": AdminPage(),
    "admin:autocomplete": AdminPage(allowed=frozenset({200, 403, 404})),
    # An app's index is a 404 for staff with no permission in that app.
    "admin:app_list": AdminPage(allowed=frozenset({200, 404})),
    # Django's shortcut view; no model here has get_absolute_url, so it finds nothing.
    "admin:view_on_site": AdminPage(allowed=frozenset({404})),
    "admin:otp_verify": AdminPage(),
    "admin:otp_enrol": AdminPage(),
    # Changing one's own factors: a password check first (302 to it), then the page.
    "admin:reauthenticate": AdminPage(),
    "admin:otp_devices": AdminPage(),
    "admin:otp_add": AdminPage(),
    "admin:otp_backup_codes": AdminPage(methods=("POST",)),
    "admin:otp_remove": AdminPage(
        methods=("POST",), allowed=frozenset({302, 404}), model_label="otp_totp.TOTPDevice"
    ),
    "admin:sessions": AdminPage(),
    # Customer B's user's session: nobody ends another user's session here.
    "admin:session_end": AdminPage(
        methods=("POST",), allowed=frozenset({404}), model_label="security.UserSession"
    ),
    "admin:sessions_end_others": AdminPage(methods=("POST",), allowed=frozenset({302})),
    "admin:rating_ratecard_export": AdminPage(
        perms=("rating.view_ratecard", "rating.change_ratecard"), model_label="rating.RateCard"
    ),
    "admin:rating_ratecard_import": AdminPage(
        perms=("rating.change_ratecard",), model_label="rating.RateCard"
    ),
    # Another user's (here: no) import is a 404, whoever asks.
    "admin:rating_ratecard_import_progress": AdminPage(
        perms=("rating.change_ratecard",),
        model_label="rating.RateCard",
        allowed=frozenset({404}),
    ),
    "admin:rating_ratecard_import_step": AdminPage(
        perms=("rating.change_ratecard",),
        model_label="rating.RateCard",
        # Without an import under way (none here) the step is a 404.
        allowed=frozenset({200, 302, 400, 404, 409}),
        methods=("POST",),
    ),
    "admin:cdr_cdr_export": AdminPage(perms=("cdr.view_cdr",)),
    "admin:dashboard": AdminPage(perms=("cdr.view_cdr",)),
    "admin:dashboard_data": AdminPage(perms=("cdr.view_cdr",)),
    "honeypot:login": Public(),
    "honeypot:any": Public(frozenset({302})),
    # The admin's catch-all: a 404 for staff, the login page for everyone else.
    "admin:(?P<url>.*)": AdminPage(allowed=frozenset({404})),
    "admin:auth_user_password_change": AdminPage(
        perms=("auth.change_user",), model_label="auth.User"
    ),
    # 403 for everyone when OTP_ADMIN_HIDE_SENSITIVE_DATA hides device secrets.
    "admin:otp_totp_totpdevice_config": AdminPage(
        perms=("otp_totp.view_totpdevice", "otp_totp.change_totpdevice"),
        allowed=frozenset({200, 403}),
        model_label="otp_totp.TOTPDevice",
    ),
    "admin:otp_totp_totpdevice_qrcode": AdminPage(
        perms=("otp_totp.view_totpdevice", "otp_totp.change_totpdevice"),
        allowed=frozenset({200, 403}),
        model_label="otp_totp.TOTPDevice",
    ),
}

_ADMIN_ACTIONS: dict[str, tuple[str, ...]] = {
    "changelist": ("view", "change"),
    "change": ("view", "change"),
    "history": ("view", "change"),
    "add": ("add",),
    "delete": ("delete",),
}


@dataclass(frozen=True)
class AdminModelPage(Rule):
    """A model page of the admin: open to staff holding one of the action's permissions,
    unless the model's admin refuses the action to everyone (read-only logs)."""

    model: type[models.Model]
    action: str

    def expect(self, persona: Persona, method: str) -> Outcome:
        if persona.web_kind() != "role":
            return outcome(302, location="/walk-admin/login/")
        opts = self.model._meta
        perms = [
            f"{opts.app_label}.{verb}_{opts.model_name}" for verb in _ADMIN_ACTIONS[self.action]
        ]
        if any(persona.has_perm(p) for p in perms) and self._admin_allows(persona.user):
            return outcome(200, 302)
        return outcome(403, 404)

    def _admin_allows(self, user: Any) -> bool:
        request = RequestFactory().get("/")
        request.user = user
        model_admin = admin.site._registry[self.model]
        if self.action == "add":
            return bool(model_admin.has_add_permission(request))
        if self.action == "delete":
            return bool(model_admin.has_delete_permission(request))
        return bool(model_admin.has_view_or_change_permission(request))


def admin_model_rules() -> dict[str, tuple[Rule, type[models.Model]]]:
    """The admin's model pages, with the permission the admin itself demands."""
    rules: dict[str, tuple[Rule, type[models.Model]]] = {}
    for model in admin.site._registry:
        opts = model._meta
        for action in _ADMIN_ACTIONS:
            rules[f"admin:{opts.app_label}_{opts.model_name}_{action}"] = (
                AdminModelPage(model=model, action=action),
                model,
            )
        # "<id>/" only redirects any staff member to "<id>/change/", which checks.
        rules[f"admin:{opts.app_label}/{opts.model_name}/(?P<object_id>.+)/"] = (
            AdminPage(allowed=frozenset({302})),
            model,
        )
    return rules


# --- the URL patterns -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pattern:
    key: str  # "namespace:name", or the route for an unnamed pattern
    regex: str
    pattern: URLPattern


def _walk(
    patterns: list[Any], regex: str = "", namespaces: tuple[str, ...] = (), local: str = ""
) -> Iterator[Pattern]:
    for entry in patterns:
        part = entry.pattern.regex.pattern.lstrip("^")
        if isinstance(entry, URLResolver):
            if entry.namespace:
                yield from _walk(
                    entry.url_patterns, regex + part, (*namespaces, entry.namespace), ""
                )
            else:
                yield from _walk(entry.url_patterns, regex + part, namespaces, local + part)
        elif entry.name:
            yield Pattern(":".join((*namespaces, entry.name)), regex + part, entry)
        else:
            # Unnamed: known by its route inside its namespace ("admin:(?P<url>.*)").
            route = re.sub(r"\\Z|\$", "", local + part).replace("\\", "")
            yield Pattern(":".join((*namespaces, route)), regex + part, entry)


def all_patterns() -> list[Pattern]:
    with override_settings(ROOT_URLCONF=__name__):
        return list(_walk(get_resolver(__name__).url_patterns))


PATTERNS = all_patterns()


def rule_for(key: str) -> tuple[Rule, type[models.Model] | None] | None:
    if key in DECLARED:
        return DECLARED[key], None
    return admin_model_rules().get(key)


# --- filling in path parameters ---------------------------------------------------------

_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>(?:[^()]|\([^()]*\))*)\)")


def fill(regex: str, values: Callable[[str, str], str]) -> str:
    """A concrete path for ``regex``: each named group replaced by ``values(name, body)``."""
    text = _GROUP.sub(lambda m: values(m["name"], m["body"]), regex)
    text = re.sub(r"\\Z|\$|\^", "", text)
    return "/" + text.replace("\\", "")


@dataclass(frozen=True, slots=True)
class World:
    base: people.World
    key_b: ApiKey
    session_b: UserSession
    entry_b: LedgerEntry

    def object_of(self, model: type[models.Model] | None) -> str:
        """The id of customer B's object of ``model`` (any row for shared models)."""
        w = self.base
        owned: dict[type[models.Model], models.Model] = {
            Customer: w.b,
            Account: w.account_b,
            AclEntry: w.acl_b,
            RateCard: w.card_b,
            Rate: w.rate_b,
            Cdr: w.cdr_b,
            Provider: w.provider,
            Gateway: w.gateway,
            ApiKey: self.key_b,
            UserSession: self.session_b,
            LedgerEntry: self.entry_b,
        }
        if model in owned:
            return str(owned[model].pk)
        if model is not None:
            row = model._default_manager.order_by("pk").first()
            if row is not None:
                return str(row.pk)
        return "1"


def model_of(
    pattern: Pattern, rule: Rule, admin_model: type[models.Model] | None
) -> type[models.Model] | None:
    if admin_model is not None:
        return admin_model
    label = getattr(rule, "model_label", "")
    if label:
        return apps.get_model(label)
    view = pattern.pattern.callback
    cls = getattr(view, "cls", None)
    queryset = getattr(cls, "queryset", None)
    if queryset is not None:
        return queryset.model  # type: ignore[no-any-return]
    name = pattern.key
    if name == "portal:account_reset":
        return Account
    if name == "portal:session_end":
        return UserSession
    if name == "portal:api_key_revoke":
        return ApiKey
    return None


def url_for(pattern: Pattern, world: World, model: type[models.Model] | None) -> str:
    def value(name: str, body: str) -> str:
        if name in {"pk", "object_id", "id"}:
            return world.object_of(model)
        if name == "content_type_id":
            return str(ContentType.objects.get_for_model(Customer).pk)
        if name == "app_label":
            return body.split("|", maxsplit=1)[0]
        if name == "url":
            return "no-such-page/"
        if name == "job_id":
            return "no-such-import"
        raise AssertionError(f"{pattern.key}: no value for path parameter {name!r}")

    url = fill(pattern.regex, value)
    with override_settings(ROOT_URLCONF=__name__):
        match = resolve(url.split("?")[0])
    assert match.func == pattern.pattern.callback, f"{url} does not resolve to {pattern.key}"
    return url


# --- the walk ---------------------------------------------------------------------------


def make_world() -> tuple[World, list[Persona]]:
    base = people.world()
    people.cdr(base.a, people.T0 + timedelta(minutes=1), callee="4930999")
    billing_services.post_entry(base.a, EntryKind.TOP_UP, people.money("5"), reference="alpha-1")
    entry_b = billing_services.post_entry(
        base.b, EntryKind.TOP_UP, people.money("7"), reference="bravo-wire-1"
    )
    user_b = people.customer_user("cust-b", base.b)
    key_b = people.key(user_b, "read:cdr").key
    session_b = UserSession.objects.create(user=user_b, session_key="walk-session-of-b")
    SipBan.objects.create(network="203.0.113.200", reason="operator")
    Did.objects.create(customer=base.b, first="1212555", account=base.account_b)
    if apps.is_installed("django_otp.plugins.otp_totp"):
        device_model = apps.get_model("otp_totp", "TOTPDevice")
        device_model.objects.create(user=people.user("other-staff", is_staff=True), name="phone")
    customer_a = people.customer_user("cust-a", base.a)
    key_a = people.key(customer_a, *sorted(CUSTOMER_SCOPES))
    personas = [
        Persona("anonymous", "anonymous"),
        Persona("customer", "customer", customer_a),
        Persona("customer-key", "customer", customer_a, people.bearer(key_a)),
    ]
    personas += [Persona(role, "role", people.role_user(role)) for role in people.ROLE_NAMES]
    return World(base=base, key_b=key_b, session_b=session_b, entry_b=entry_b), personas


def client_for(persona: Persona) -> Client:
    client = Client(**persona.headers)
    if persona.session:
        client.force_login(persona.user)
    return client


def request(client: Client, method: str, url: str) -> tuple[Any, str]:
    cache.clear()
    # Cookies live in the client, not the database: a sign-out must not outlast the
    # request that made it.
    cookies = copy.deepcopy(client.cookies)
    with transaction.atomic():
        if method in {"POST", "PUT", "PATCH"}:
            # An empty JSON object: invalid for every API form, so nothing is created.
            response = getattr(client, method.lower())(url, "{}", "application/json")
        else:
            response = getattr(client, method.lower())(url)
        body = (
            b"".join(response.streaming_content)
            if getattr(response, "streaming", False)
            else response.content
        )
        transaction.set_rollback(True)
    client.cookies = cookies
    return response, body.decode(errors="replace")


def test_every_url_has_an_expectation() -> None:
    missing = [p.key for p in PATTERNS if rule_for(p.key) is None]
    assert not missing, f"declare the access expectation of: {missing}"


def test_no_stale_declarations() -> None:
    keys = {p.key for p in PATTERNS}
    assert not [
        k for k in DECLARED if k not in keys and not k.startswith(("honeypot:", "admin:otp_"))
    ]


def test_the_walk_covers_the_api_portal_and_admin() -> None:
    keys = {p.key for p in PATTERNS}
    assert {"api:cdr-detail", "portal:cdrs", "admin:customers_customer_change"} <= keys


@pytest.fixture(scope="module")
def walk(django_database: None) -> Iterator[tuple[World, list[tuple[Persona, Client]]]]:
    """One world and one signed-in client per persona for the whole walk, rolled back at
    the end; each request runs in its own savepoint on top of it."""
    with transaction.atomic():
        world, personas = make_world()
        yield world, [(persona, client_for(persona)) for persona in personas]
        transaction.set_rollback(True)


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param(
            p,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FINDINGS[p.key])]
            if p.key in KNOWN_FINDINGS
            else [],
        )
        for p in PATTERNS
    ],
    ids=[p.key for p in PATTERNS],
)
@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_deny_by_default(
    walk: tuple[World, list[tuple[Persona, Client]]], pattern: Pattern
) -> None:
    found = rule_for(pattern.key)
    assert found is not None, f"declare the access expectation of {pattern.key}"
    rule, admin_model = found
    world, clients = walk
    model = model_of(pattern, rule, admin_model)
    url = url_for(pattern, world, model)
    # Some admin views (history) redirect for a missing object before they check
    # permissions; a model without rows (the lockout log, say) gets that redirect.
    no_row = model is not None and not model._default_manager.exists()
    if rule.query:
        url = f"{url}?{rule.query}"
    failures = []
    for persona, client in clients:
        for method in rule.methods:
            response, body = request(client, method, url)
            expected = rule.expect(persona, method)
            if (
                no_row
                and isinstance(rule, AdminPage | AdminModelPage)
                and persona.web_kind() == "role"
            ):
                expected = Outcome(expected.statuses | {302}, expected.location)
            status = response.status_code
            where = f"{method} {url} as {persona.name}: {status}"
            if status not in expected.statuses:
                failures.append(f"{where}, expected {sorted(expected.statuses)}")
            elif (
                expected.location
                and status == 302
                and not response["Location"].startswith(expected.location)
            ):
                failures.append(f"{where} to {response['Location']}")
            if persona.kind == "customer" and status == 200:
                leaked = [m for m in B_MARKERS if m in body]
                if leaked:
                    failures.append(f"{where} shows customer B's {leaked}")
    assert not failures, "\n".join(failures)


def test_customer_user_is_not_staff_anywhere() -> None:
    # The walk's customer persona must be what production creates: never staff.
    assert CustomerUser._meta.get_field("user").remote_field.model._meta.label == "auth.User"
