"""ASVS rows about what the web app lets out: errors, files, names, addresses, caches.

Each test names the ASVS 5.0 requirement it proves; ``docs/security.md`` maps the
requirement back to the test.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, include, path

from tollguard.web.rating import imports
from tollguard.web.settings import base

from .. import factories
from ..api import people
from .conftest import ADMIN

SECRET_IN_ERROR = "db-password-hunter2"


def explode(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"cannot connect with password {SECRET_IN_ERROR}")


urlpatterns: list[URLPattern | URLResolver] = [
    path("explode/", explode),
    path("portal/", include("tollguard.web.portal.urls")),
    path("api/v1/", include("tollguard.web.api.urls")),
]


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_an_unexpected_error_shows_a_generic_page(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    # ASVS 16.5.1: a generic message, no stack trace, query, secret or token. The error
    # itself goes to the log (checked below through Django's request logger).
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/explode/")
    body = response.content.decode()
    assert response.status_code == 500
    for leak in (SECRET_IN_ERROR, "Traceback", "RuntimeError", ".py", settings.SECRET_KEY):
        assert leak not in body
    # The site's own short page (core/templates/500.html), the same for every error.
    assert "Something went wrong on our side" in body
    assert len(body) < 1000
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert logged and logged[0].exc_info is not None


def test_unexpected_errors_reach_a_log_handler_in_production() -> None:
    # Django's own "django" logger writes to the console only with DEBUG on; without a
    # Sentry DSN an unhandled exception in production must still land in a log.
    loggers = base.LOGGING.get("loggers", {})
    handled = [
        name for name in ("django", "django.request") if loggers.get(name, {}).get("handlers")
    ]
    assert handled or base.LOGGING.get("root", {}).get("handlers")


@pytest.mark.parametrize(
    "url",
    ["/.git/HEAD", "/.git/config", "/static/.git/config", "/static/../.git/HEAD"],
    ids=["git-head", "git-config", "static-git", "static-traversal"],
)
def test_no_source_control_files_are_served(db: None, url: str) -> None:
    # ASVS 13.4.1: the app is installed as a package; no .git folder is reachable.
    response = Client().get(url)
    assert response.status_code == 404
    assert b"[core]" not in response.content and b"ref:" not in response.content


@pytest.mark.parametrize(
    "url",
    ["/static/", "/static/admin/", "/static/admin/css/", "/static/dashboard/"],
    ids=["static", "admin", "admin-css", "dashboard"],
)
def test_static_folders_are_not_listed(db: None, url: str) -> None:
    # ASVS 13.4.3: WhiteNoise serves known files only; a folder is a 404, not an index.
    response = Client().get(url)
    assert response.status_code == 404
    # The 404 page links its own stylesheet; nothing else of the folder is named.
    listed = response.content.replace(b"/static/core/error.css", b"")
    assert b".css" not in listed and b".js" not in listed


@pytest.mark.parametrize(
    "header",
    ["HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED", "HTTP_CLIENT_IP"],
    ids=["x-forwarded-for", "x-real-ip", "forwarded", "client-ip"],
)
def test_forwarding_headers_do_not_change_the_client_address(hardened: None, header: str) -> None:
    # ASVS 4.1.3 and 15.3.4: the web process is reached directly, so the TCP peer is the
    # client; a header claiming a loopback origin does not open the admin, and one
    # claiming a public origin does not close it.
    value = "for=127.0.0.1" if header == "HTTP_FORWARDED" else "127.0.0.1"
    spoofed: dict[str, Any] = {"REMOTE_ADDR": "203.0.113.9", header: value}
    assert Client(**spoofed).get(f"{ADMIN}login/").status_code == 403
    hidden: dict[str, Any] = {"REMOTE_ADDR": "127.0.0.1", header: "203.0.113.9"}
    inside = Client(**hidden)
    assert inside.get(f"{ADMIN}login/").status_code == 200


@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.parametrize("where", ["query", "form"], ids=["api-key-in-query", "api-key-in-form"])
def test_api_keys_are_only_read_from_the_authorization_header(db: None, where: str) -> None:
    # ASVS 14.2.1: a key in the URL ends up in proxy and server logs and browser history;
    # the API reads it from the Authorization header only.
    world = people.world()
    issued = people.key(people.customer_user("cust-a", world.a), "read:cdr")
    credentials: dict[str, Any] = people.bearer(issued)
    header = Client(**credentials)
    assert header.get("/api/v1/cdrs/").status_code == 200
    client = Client()
    if where == "query":
        response = client.get("/api/v1/cdrs/", {"api_key": issued.secret, "key": issued.secret})
    else:
        response = client.generic(
            "GET", "/api/v1/cdrs/", f"api_key={issued.secret}", "application/x-www-form-urlencoded"
        )
    assert response.status_code == 401


def test_every_signed_in_admin_page_offers_logout(verified_client: Client) -> None:
    # ASVS 7.4.4: the admin's header carries a logout button (a POST form) on every page.
    for url in (ADMIN, f"{ADMIN}customers/customer/", f"{ADMIN}password_change/"):
        page = verified_client.get(url).content.decode()
        assert f'action="{ADMIN}logout/"' in page, url
        assert 'method="post"' in page[page.index(f'action="{ADMIN}logout/"') - 120 :][:240]


@override_settings(ROOT_URLCONF=__name__)
def test_every_portal_page_offers_logout(db: None) -> None:
    # ASVS 7.4.4, for the customer portal.
    world = people.world()
    client = Client()
    client.force_login(people.customer_user("cust-a", world.a))
    for url in ("/portal/", "/portal/cdrs/", "/portal/accounts/", "/portal/api-keys/"):
        page = client.get(url).content.decode()
        assert 'action="/portal/logout/"' in page, url


@override_settings(ROOT_URLCONF=__name__)
def test_logout_removes_the_session_from_server_and_browser(db: None) -> None:
    # ASVS 14.3.1: at sign-out the session cookie is expired in the browser and the
    # session row deleted; nothing else of the user's is kept on the client (below).
    world = people.world()
    client = Client()
    client.force_login(people.customer_user("cust-a", world.a))
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    response = client.post("/portal/logout/")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == 0
    from django.contrib.sessions.models import Session

    assert not Session.objects.filter(session_key=key).exists()


STORAGE_APIS = ("localStorage", "sessionStorage", "indexedDB", "document.cookie", "caches.open")


def test_no_script_of_the_app_keeps_data_in_the_browser() -> None:
    # ASVS 14.3.1 and 14.3.3: the app's own scripts and templates never write browser
    # storage, so only the session and CSRF cookies hold anything, and both are
    # HttpOnly. Vendored libraries are left out: the chart library stores nothing either
    # but mentions the APIs in feature tests.
    root = Path(base.BASE_DIR)
    files = [
        p
        for p in root.rglob("*")
        if p.suffix in {".js", ".html"} and "vendor" not in p.parts and p.is_file()
    ]
    assert any(p.name == "dashboard.js" for p in files)
    found = [f"{p}: {api}" for p in files for api in STORAGE_APIS if api in p.read_text()]
    assert not found


def test_download_names_cannot_break_the_header(verified_client: Client) -> None:
    # ASVS 5.4.1 and 5.4.2: the file name of a download is made by the app (a slug of the
    # card name), so a name with quotes or line breaks cannot add header parameters.
    card = factories.rate_card('evil";\r\nSet-Cookie: x=1; filename="a.exe')
    response = verified_client.get(f"{ADMIN}rating/ratecard/{card.pk}/export/")
    assert response.status_code == 200
    disposition = response["Content-Disposition"]
    assert disposition == 'attachment; filename="evil-set-cookie-x1-filenameaexe-rates.csv"'
    assert "Set-Cookie" not in response


def test_uploaded_file_names_never_reach_the_file_system(db: None) -> None:
    # ASVS 5.3.1 and 5.3.2: an uploaded rate file is copied to a private temporary file
    # whose name the app makes; the client's file name is kept as a label only, and the
    # copy lies outside anything the web server serves.
    card = factories.rate_card()
    job = imports.start_import(
        card, "../../static/evil.py", [b"prefix,price_per_minute\n49,0.01\n"]
    )
    try:
        copy = Path(job.path)
        assert copy.parent == Path(tempfile.gettempdir())
        assert copy.name.startswith("tollguard-rates-") and copy.suffix == ".csv"
        assert "evil" not in copy.name and ".." not in job.path
        assert copy.stat().st_mode & 0o077 == 0
        assert not copy.is_relative_to(base.BASE_DIR)
    finally:
        imports.discard(job)


def test_the_session_cookies_are_the_only_cookies(
    verified_client: Client, staff: AbstractBaseUser
) -> None:
    # ASVS 14.3.3: after signing in and opening pages, the browser holds the session
    # and CSRF cookies only.
    verified_client.get(ADMIN)
    verified_client.get(f"{ADMIN}customers/customer/add/")
    assert set(verified_client.cookies) <= {
        settings.SESSION_COOKIE_NAME,
        settings.CSRF_COOKIE_NAME,
    }


# Calls that would hand input to an interpreter other than through a safe interface.
DANGEROUS_CALLS = {
    ".raw(": "1.2.4: raw SQL",
    ".extra(": "1.2.4: raw SQL",
    "RawSQL": "1.2.4: raw SQL",
    "cursor()": "1.2.4: raw SQL",
    "shell=True": "1.2.5: a shell",
    "os.system": "1.2.5: a shell",
    "os.popen": "1.2.5: a shell",
    "eval(": "1.3.2: dynamic code",
    "exec(": "1.3.2: dynamic code",
    "new Function": "1.3.2: dynamic code",
    "Template(": "1.3.7: a template built at run time",
    "from_string(": "1.3.7: a template built at run time",
    "pickle": "1.5.2: an unsafe deserializer",
    "yaml.load(": "1.5.2: an unsafe deserializer",
    "marshal": "1.5.2: an unsafe deserializer",
}


# Reviewed uses of a call above, by file, each with why it is safe.
REVIEWED = {
    ("web/core/bulk.py", "cursor()"): (
        "the batch insert of CDRs and call charges: its SQL is made from the model's table"
        " and column names only, and every value is a query parameter"
    ),
    ("web/provisioning/schema.py", "yaml.load("): (
        "tollguard load reads plan files with a subclass of yaml.SafeLoader that only adds"
        " line numbers to mappings and lists; a python/* tag is refused"
        " (tests/web/test_provisioning_lines.py)"
    ),
}


def test_no_input_reaches_an_interpreter_unsafely() -> None:
    # ASVS 1.2.4, 1.2.5, 1.3.2, 1.3.7 and 1.5.2: queries go through the ORM, the one
    # subprocess (tollguard serve starting uvicorn) takes an argument list, and no
    # code, template or pickle is ever made from data. Vendored libraries and
    # migrations are left out (migrations run no user input).
    package = Path(base.BASE_DIR).parent
    files = [
        p
        for p in (
            *package.joinpath("web").rglob("*"),
            *(package / name for name in ("cli.py", "datadir.py", "processes.py")),
        )
        if p.suffix in {".py", ".js", ".html"}
        and p.is_file()
        and not {"vendor", "migrations"} & set(p.parts)
    ]
    assert len(files) > 50
    found = [
        f"{p.relative_to(package)}: {why}"
        for p in files
        for call, why in DANGEROUS_CALLS.items()
        if call in p.read_text() and (str(p.relative_to(package)), call) not in REVIEWED
    ]
    assert not found
    # A reviewed exception that no longer exists is removed from the list.
    for reviewed, call in REVIEWED:
        assert call in (package / reviewed).read_text(), reviewed


MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@override_settings(ROOT_URLCONF=__name__)
def test_markup_in_data_is_shown_as_text(db: None) -> None:
    # ASVS 1.2.1 and 3.2.2: names typed by operators and customers are escaped where
    # they are shown (the portal here; the admin uses the same template engine).
    world = people.world()
    world.a.name = MARKUP
    world.a.save()
    world.account_a.username = "x-" + MARKUP[:20]
    world.account_a.save()
    client = Client()
    client.force_login(people.customer_user("cust-a", world.a))
    for url in ("/portal/", "/portal/accounts/"):
        page = client.get(url).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page, url
    assert "&lt;script&gt;" in client.get("/portal/").content.decode()


PASTE_BLOCKERS = ('autocomplete="off"', "onpaste", "oncopy", "ondrop", "preventDefault")


def test_no_template_blocks_paste_or_password_managers() -> None:
    # ASVS 6.2.7: password fields keep the browser's paste and password-manager support:
    # no template of the app turns autocomplete off or catches paste events, and the
    # content security policy allows no inline handler that could.
    root = Path(base.BASE_DIR)
    files = [
        p
        for p in root.rglob("*")
        if p.suffix in {".html", ".js"} and p.is_file() and "vendor" not in p.parts
    ]
    assert any(p.name == "enrol.html" or p.parent.name == "portal" for p in files)
    found = [f"{p}: {b}" for p in files for b in PASTE_BLOCKERS if b in p.read_text()]
    assert not found
