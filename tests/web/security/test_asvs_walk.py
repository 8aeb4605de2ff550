"""ASVS rows proven by walking every URL pattern of the project with one method.

The patterns, the world of two customers and the personas are those of the access
control walk (``tests/web/test_access_control.py``): a URL added to the project is
walked here too. Each persona requests every pattern's URL, whatever methods the pattern
is meant for, and each request runs in a savepoint that is rolled back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client, override_settings

from .. import test_access_control as walk_module
from ..test_access_control import PATTERNS, Persona, World, client_for, make_world, model_of

URLCONF = walk_module.__name__

# Bookkeeping a read may write: the session (the idle timeout re-saves it on every
# request, SESSION_SAVE_EVERY_REQUEST) and a key's last use (at most once a minute).
BOOKKEEPING = (
    re.compile(r'^(INSERT INTO|UPDATE|DELETE FROM) "django_session"'),
    re.compile(r'^UPDATE "api_apikey" SET "last_used_at" = %s WHERE'),
    # The session's row in the user's session list: its "last seen", once a minute.
    re.compile(r'^UPDATE "security_usersession" SET "session_key" = %s, "last_seen_at" = %s'),
    # A refused read is a security event: its log line is stored as well as logged.
    re.compile(r'^INSERT INTO "security_securityevent"'),
)
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
# Writes a GET may make, with the reason they are harmless: the enrolment page makes
# the signed-in user's pending TOTP secret the first time it is shown, so that the QR
# code stays the same on reload; it is reused until confirmed by a POST with a code,
# and a pending secret opens nothing.
KNOWN_WRITES = {"admin:otp_enrol": re.compile(r'^INSERT INTO "otp_totp_totpdevice"')}


class WriteLog:
    """Records every data-changing SQL statement run through the connection."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if WRITE.match(sql) and not any(rule.match(sql) for rule in BOOKKEEPING):
            self.statements.append(sql)
        return execute(sql, params, many, context)


def url_of(pattern: Any, world: World) -> str:
    found = walk_module.rule_for(pattern.key)
    assert found is not None, f"declare the access expectation of {pattern.key}"
    rule, admin_model = found
    url = walk_module.url_for(pattern, world, model_of(pattern, rule, admin_model))
    return f"{url}?{rule.query}" if rule.query else url


def body_of(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return bytes(response.content)


@pytest.fixture(scope="module")
def personas(django_database: None) -> Iterator[tuple[World, list[tuple[Persona, Client]]]]:
    with transaction.atomic():
        world, people = make_world()
        yield world, [(persona, client_for(persona)) for persona in people]
        transaction.set_rollback(True)


def send(client: Client, method: str, url: str) -> tuple[Any, bytes]:
    with transaction.atomic():
        response = client.generic(method, url)
        body = body_of(response)
        transaction.set_rollback(True)
    return response, body


@override_settings(ROOT_URLCONF=URLCONF, ALLOWED_HOSTS=["testserver"])
def test_safe_methods_change_nothing(
    personas: tuple[World, list[tuple[Persona, Client]]],
) -> None:
    # ASVS 3.5.3: sensitive operations are never reachable with GET or HEAD, so a link,
    # an image or a prefetch cannot trigger one. Every persona, administrator included,
    # requests every URL, the POST-only ones too (logout, key revocation, SIP password
    # reset, the rate import step), and the database must be unchanged.
    world, clients = personas
    changed = []
    for pattern in PATTERNS:
        url = url_of(pattern, world)
        for persona, client in clients:
            for method in ("GET", "HEAD"):
                log = WriteLog()
                with connection.execute_wrapper(log):
                    send(client, method, url)
                allowed = KNOWN_WRITES.get(pattern.key)
                writes = [s for s in log.statements if not (allowed and allowed.match(s))]
                if writes:
                    changed.append(f"{method} {url} as {persona.name}: {writes[0][:80]}")
    assert not changed, "\n".join(changed)


def check_findings(failures: dict[str, list[str]], known: dict[str, str]) -> None:
    """Fail on any failure outside ``known``, and on a known finding that is fixed.

    ``known`` maps a pattern to what is wrong with it (the ``open`` rows of
    docs/security.md); once the code is fixed the entry must go and the row turn ``test``.
    """
    unexpected = [line for key, lines in failures.items() if key not in known for line in lines]
    assert not unexpected, "\n".join(unexpected)
    fixed = sorted(set(known) - set(failures))
    assert not fixed, f"fixed: remove from the known findings and update the doc: {fixed}"


def charset_of(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "charset":
            return value.strip('"').lower()
    return ""


KNOWN_WITHOUT_CHARSET: dict[str, str] = {}


@override_settings(ROOT_URLCONF=URLCONF, ALLOWED_HOSTS=["testserver"])
def test_text_responses_name_their_charset(
    personas: tuple[World, list[tuple[Persona, Client]]],
) -> None:
    # ASVS 4.1.1: every body comes with a Content-Type; text types name their charset
    # (JSON needs none: RFC 8259 section 11 defines it as UTF-8 and has no parameter).
    world, clients = personas
    failures: dict[str, list[str]] = {}
    seen: set[str] = set()
    for pattern in PATTERNS:
        url = url_of(pattern, world)
        for persona, client in clients:
            response, body = send(client, "GET", url)
            content_type = response.get("Content-Type", "")
            seen.add(content_type.split(";")[0])
            missing = not content_type if body else False
            if missing or (
                content_type.startswith("text/") and charset_of(content_type) != "utf-8"
            ):
                where = f"GET {url} as {persona.name}: {content_type!r}"
                failures.setdefault(pattern.key, []).append(where)
    check_findings(failures, KNOWN_WITHOUT_CHARSET)
    assert {"text/html", "application/json", "text/csv"} <= seen


@override_settings(ROOT_URLCONF=URLCONF, ALLOWED_HOSTS=["testserver"])
def test_trace_echoes_nothing(
    personas: tuple[World, list[tuple[Persona, Client]]],
) -> None:
    # ASVS 13.4.4: TRACE is not supported: no URL answers it by echoing the request, so
    # no script can read back cookies or credentials through it (cross-site tracing).
    # Django has no TRACE handler; a view answers 405, or what it answers to any other
    # method it does not serve (the login redirect, the decoy login page).
    world, clients = personas
    echoed = []
    probe = "trace-probe-7f3a"
    for pattern in PATTERNS:
        url = url_of(pattern, world)
        for persona, client in clients:
            with transaction.atomic():
                response = client.generic("TRACE", url, HTTP_X_PROBE=probe)
                body = body_of(response)
                transaction.set_rollback(True)
            content_type = response.get("Content-Type", "")
            if probe.encode() in body or content_type.startswith("message/http"):
                echoed.append(f"TRACE {url} as {persona.name}: {response.status_code}")
    assert not echoed, "\n".join(echoed)


# Pages that take or change credentials: never stored, even for an anonymous visitor.
CREDENTIAL_PAGES = {
    "admin:login",
    "admin:password_change",
    "admin:password_change_done",
    "admin:otp_verify",
    "admin:otp_enrol",
    "admin:reauthenticate",
    "admin:otp_devices",
    "admin:otp_add",
    "portal:login",
}


@override_settings(ROOT_URLCONF=URLCONF, ALLOWED_HOSTS=["testserver"])
def test_signed_in_pages_are_not_stored_by_browsers(
    personas: tuple[World, list[tuple[Persona, Client]]],
) -> None:
    # ASVS 14.3.2: an answer to a signed-in user or an API key (CDRs, customers, keys,
    # error pages and redirects alike) is not kept in the browser's cache, where the
    # next user of the machine could read it back; nor is a sign-in or credential page.
    world, clients = personas
    stored = []
    checked = 0
    for pattern in PATTERNS:
        url = url_of(pattern, world)
        for persona, client in clients:
            if persona.kind == "anonymous" and pattern.key not in CREDENTIAL_PAGES:
                continue
            response, _ = send(client, "GET", url)
            checked += 1
            directives = {d.strip().lower() for d in response.get("Cache-Control", "").split(",")}
            if "no-store" not in directives or "public" in directives:
                stored.append(f"GET {url} as {persona.name}: {response.get('Cache-Control')!r}")
    assert not stored, "\n".join(stored)
    assert checked > len(PATTERNS)


def test_static_files_stay_cacheable(db: None) -> None:
    # Static files hold nothing private: WhiteNoise answers them before the no-store
    # middleware, even for a signed-in user.
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user("static-reader"))
    response = client.get("/static/portal/portal.css")
    response.close()
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
    signed_in = client.get("/portal/")
    assert "no-store" in signed_in["Cache-Control"]


def test_the_write_log_sees_writes_and_ignores_bookkeeping(db: None) -> None:
    from tollguard.web.customers.models import Customer

    log = WriteLog()
    with connection.execute_wrapper(log):
        Customer.objects.create(name="write-log")
        Client().get("/no-such-page/")
    assert log.statements
    assert log.statements[0].startswith('INSERT INTO "customers_customer"')
    assert not any("django_session" in statement for statement in log.statements)


@override_settings(ROOT_URLCONF=URLCONF, ALLOWED_HOSTS=["testserver"])
def test_no_response_opens_itself_to_other_origins(
    personas: tuple[World, list[tuple[Persona, Client]]],
) -> None:
    # ASVS 3.4.2: no CORS header is sent, whatever Origin a request names, so a page of
    # another site can never read an answer made with a user's cookies or key.
    world, clients = personas
    opened = []
    for pattern in PATTERNS:
        url = url_of(pattern, world)
        for persona, client in clients:
            with transaction.atomic():
                response = client.get(url, HTTP_ORIGIN="https://attacker.example")
                transaction.set_rollback(True)
            headers = [h for h in response.headers if h.lower().startswith("access-control-")]
            if headers:
                opened.append(f"GET {url} as {persona.name}: {headers}")
    assert not opened, "\n".join(opened)
