"""The web app in headless Chromium: staff sign-in with TOTP, lockout, honeypot, portal.

Every test runs against the served app (``conftest.served``) and fails on any console
error or warning, uncaught script error or CSP violation on any page it visits.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django_otp.oath import totp
from playwright.sync_api import Page

from .conftest import PageProblems
from .served import ServedApp, serve

pytestmark = pytest.mark.integration

FAILURE_LIMIT = 5  # AXES_FAILURE_LIMIT, docs/security.md
NEW_PASSWORD = "a brand new passphrase for the first admin"
ADMIN_PAGE_LIMIT = 60


def code_from_key(hex_key: str) -> str:
    return f"{totp(bytes.fromhex(hex_key)):06d}"


def code_from_secret(shown: str) -> str:
    # The enrolment page shows the RFC 4648 base32 secret in groups of four.
    return code_from_key(base64.b32decode(shown.replace(" ", "")).hex())


def admin_password_login(page: Page, app: ServedApp, user: str, password: str) -> None:
    page.goto(app.admin_url)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("input[type=submit]")


def admin_post_status(page: Page, app: ServedApp, user: str, password: str) -> int:
    page.goto(app.admin_url)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("input[type=submit]")
    status: int = answer.value.status
    return status


def staff_key(app: ServedApp, user: str) -> str:
    keys: dict[str, str] = app.seed["staff"]  # type: ignore[assignment]
    return keys[user]


def staff_sign_in(page: Page, app: ServedApp, user: str) -> None:
    admin_password_login(page, app, user, str(app.seed["password"]))
    assert urlsplit(page.url).path == f"/{app.admin_path}otp/verify/"
    page.fill("input[name=token]", code_from_key(staff_key(app, user)))
    with page.expect_navigation():
        page.click("input[type=submit]")


def admin_links(page: Page, app: ServedApp) -> list[str]:
    """Every distinct admin page linked from the current page, logout excluded."""
    hrefs: list[str] = page.eval_on_selector_all(
        "a[href]", "links => links.map(a => a.getAttribute('href'))"
    )
    prefix = f"/{app.admin_path}"
    found: list[str] = []
    for href in hrefs:
        path = urlsplit(urljoin(page.url, href)).path
        if path.startswith(prefix) and "logout" not in path and path not in found:
            found.append(path)
    return found


def test_staff_sign_in_needs_password_then_totp(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    admin_password_login(page, served, "operator-one", str(served.seed["password"]))
    # The password alone opens nothing: every admin page leads back to the second step.
    page.goto(f"{served.admin_url}cdr/cdr/")
    assert urlsplit(page.url).path == f"/{served.admin_path}otp/verify/"
    right = code_from_key(staff_key(served, "operator-one"))
    page.fill("input[name=token]", f"{(int(right) + 1) % 1_000_000:06d}")
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert page.locator(".errornote").count() == 1
    # A failure holds the device back for one second (django-otp's throttle), on the
    # server's clock: a real wait, not a sleep in place of one.
    page.wait_for_timeout(1_100)

    page.fill("input[name=token]", right)
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert urlsplit(page.url).path == f"/{served.admin_path}"
    assert page.locator("#content-main").count() == 1
    assert problems.unexpected() == []


def test_every_admin_page_loads_without_console_errors_or_csp_violations(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    staff_sign_in(page, served, "operator-two")
    to_visit = admin_links(page, served)
    visited: list[str] = []
    # The index and one level below it: every app index, changelist and add form.
    for path in to_visit[:ADMIN_PAGE_LIMIT]:
        response = page.goto(f"{served.base_url}{path}")
        assert response is not None
        assert response.status == 200, path
        visited.append(path)
        for link in admin_links(page, served):
            if link.endswith("/add/") and link not in to_visit:
                to_visit.append(link)
    assert len(visited) >= 20
    assert any(path.endswith("/cdr/cdr/") for path in visited)
    assert any(path.endswith("/customers/did/") for path in visited)
    assert any(path.endswith("/add/") for path in visited)
    assert problems.unexpected() == []


def test_first_admin_enrols_totp_gets_backup_codes_and_changes_password(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    admin_password_login(page, served, served.admin_user, served.admin_password)
    assert urlsplit(page.url).path == f"/{served.admin_path}otp/enrol/"
    assert page.locator("svg").count() >= 1  # the QR code, drawn inline
    page.fill("input[name=token]", code_from_secret(page.inner_text("#otp-secret")))
    with page.expect_navigation():
        page.click("input[type=submit]")
    codes = page.locator("#backup-codes li").all_inner_texts()
    assert len(codes) == 10
    # The page once showed its stylesheet's nonce attribute as text.
    assert "nonce" not in page.inner_text("body")
    assert page.locator("link[href$='admin/css/login.css']").count() == 1
    assert all(len(code.strip()) >= 24 for code in codes)

    # The one-time password from init must be replaced before anything else.
    with page.expect_navigation():
        page.click("#content-main a")
    assert urlsplit(page.url).path == f"/{served.admin_path}password_change/"
    page.fill("input[name=old_password]", served.admin_password)
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    page.goto(served.admin_url)
    assert urlsplit(page.url).path == f"/{served.admin_path}"
    assert problems.unexpected() == []


def test_repeated_failures_lock_the_user_out_even_with_the_right_password(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    problems.allow("the server responded with a status of 429")
    user = str(served.seed["locked"])
    statuses = [
        admin_post_status(page, served, user, "not the password at all")
        for _ in range(FAILURE_LIMIT)
    ]
    # The failure that reaches the limit is the first one answered by the lockout.
    assert statuses == [200] * (FAILURE_LIMIT - 1) + [429]
    assert admin_post_status(page, served, user, str(served.seed["password"])) == 429
    assert urlsplit(page.url).path != f"/{served.admin_path}otp/verify/"
    assert problems.unexpected() == []


def test_operator_finds_a_did_by_number_and_edits_it_with_search_boxes(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    alpha: dict[str, Any] = served.seed["alpha"]  # type: ignore[assignment]
    bravo: dict[str, Any] = served.seed["bravo"]  # type: ignore[assignment]
    staff_sign_in(page, served, "operator-eight")
    page.goto(f"{served.admin_url}customers/did/")
    listing = page.inner_text("#result_list")
    assert alpha["number"] in listing and bravo["number"] in listing
    page.fill("#searchbar", alpha["number"])
    with page.expect_navigation():
        page.press("#searchbar", "Enter")
    listing = page.inner_text("#result_list")
    assert alpha["number"] in listing and "account alpha-phone" in listing
    assert bravo["number"] not in listing
    with page.expect_navigation():
        page.click(f"#result_list a:text('{alpha['number']}')")
    # The customer and the account are select2 search boxes, not number fields.
    assert page.locator(".field-customer .select2-container").count() == 1
    assert page.locator(".field-account .select2-container").count() == 1
    page.fill("input[name=monthly_price]", "3.50")
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert "was changed successfully" in page.inner_text(".messagelist")
    assert problems.unexpected() == []


def test_customer_sees_only_its_own_cdrs(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    alpha: dict[str, Any] = served.seed["alpha"]  # type: ignore[assignment]
    bravo: dict[str, Any] = served.seed["bravo"]  # type: ignore[assignment]
    page.goto(f"{served.base_url}/portal/login/")
    page.fill("input[name=username]", alpha["user"])
    page.fill("input[name=password]", str(served.seed["password"]))
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert urlsplit(page.url).path == "/portal/"

    # Every portal page, and the API's documentation (Swagger UI, served locally).
    for path in (
        "/portal/",
        "/portal/accounts/",
        "/portal/numbers/",
        "/portal/api-keys/",
        "/api/v1/docs/",
    ):
        response = page.goto(f"{served.base_url}{path}")
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
    assert page.locator(".swagger-ui").count() == 1

    # The Numbers page: alpha's number, never bravo's.
    page.goto(f"{served.base_url}/portal/numbers/")
    numbers = page.inner_text("table")
    assert f"+{alpha['number']}" in numbers and "SIP account alpha-phone" in numbers
    assert bravo["number"] not in page.inner_text("body")

    # Asking for the other customer's rows in the query string changes nothing.
    page.goto(f"{served.base_url}/portal/cdrs/?customer={bravo['customer']}")
    text = page.inner_text("body")
    assert "4930alpha0" in text
    assert "bravo" not in text

    # The API under the same session: the other customer's CDR does not exist for alpha.
    problems.allow("the server responded with a status of 404")
    own = page.request.get(f"{served.base_url}/api/v1/cdrs/{alpha['cdrs'][0]}/")
    other = page.request.get(f"{served.base_url}/api/v1/cdrs/{bravo['cdrs'][0]}/")
    listing = page.request.get(f"{served.base_url}/api/v1/cdrs/")
    assert own.status == 200
    assert other.status == 404
    assert listing.status == 200
    ids = {row["id"] for row in listing.json()["results"]}
    assert ids == set(alpha["cdrs"])

    # And the admin is not a way round: a customer user is not staff.
    page.goto(f"{served.admin_url}cdr/cdr/{bravo['cdrs'][0]}/change/")
    assert urlsplit(page.url).path == f"/{served.admin_path}login/"
    assert "bravo" not in page.inner_text("body")
    assert problems.unexpected() == []


@pytest.fixture(scope="module")
def decoy_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    # Its own app: the honeypot bans 127.0.0.1, which would shut out every other test.
    with serve(tmp_path_factory.mktemp("honeypot") / "data") as app:
        yield app


def test_honeypot_records_the_attempt_and_bans_the_address(
    page: Page, decoy_target: ServedApp, problems: PageProblems
) -> None:
    app = decoy_target
    page.goto(f"{app.base_url}/admin/")
    assert urlsplit(page.url).path == "/admin/login/"
    assert "Django administration" in page.inner_text("body")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "toor")
    with page.expect_navigation():
        page.click("input[type=submit]")
    assert page.locator(".errornote").count() == 1  # looks like a plain failed login

    problems.allow("the server responded with a status of 403")
    banned = page.goto(f"{app.base_url}/portal/login/")
    assert banned is not None and banned.status == 403

    recorded = app.manage(
        "shell",
        "-c",
        "from tollguard.web.security.models import HoneypotAttempt, BannedAddress;"
        "a = HoneypotAttempt.objects.get();"
        "print(a.address, a.username, a.user_agent.startswith('Mozilla/'),"
        " BannedAddress.objects.filter(address='127.0.0.1').count())",
    )
    assert recorded.stdout.strip().splitlines()[-1].split() == ["127.0.0.1", "root", "True", "1"]

    lifted = app.manage("unban", "127.0.0.1")
    assert "unbanned" in lifted.stdout
    again = page.goto(f"{app.base_url}/portal/login/")
    assert again is not None and again.status == 200
    assert re.search(r"sign in", page.inner_text("body"), re.IGNORECASE)
    assert problems.unexpected() == []
