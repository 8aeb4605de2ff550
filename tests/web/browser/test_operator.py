"""The web app as an operator uses it, in headless Chromium against a served app.

The three bugs an operator met: a rate import whose result page said the uploaded copy
could not be read (the browser's own /favicon.ico request saved the session with the
job's old state), security events that never reached the dashboard, and sell, cost and
margin of two currencies added together. Then the pages: styled error pages, the CDR
list's columns, breadcrumbs, the admin's home page, the gateway table at 1366 px, the
API documentation's introduction, confirmations in the portal; and the running switch's
registrations on the dashboard.

Every page is checked for console errors and CSP violations by the ``page`` fixture.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from .conftest import PageProblems
from .served import ServedApp
from .test_browser import FAILURE_LIMIT, admin_post_status, staff_sign_in

pytestmark = pytest.mark.integration

LAPTOP = {"width": 1366, "height": 768}
BAD_RATES = (
    b"prefix,destination,price\n"  # "price" is not a column: the header is wrong
    b"4930,Berlin,0.01\n"
    b"4989,Munich,cheap\n"
)
BAD_LINES = (
    b"prefix,destination,price_per_minute\n"
    b"4930,Berlin,0.01\n"
    b"49x,Bad prefix,0.01\n"
    b"4989,Munich,cheap\n"
    b"4930,Berlin again,0.02\n"
)


def visible_text(page: Page) -> str:
    text: str = page.inner_text("body")
    return text


def choose(page: Page, field: str, text: str) -> None:
    """Pick ``text`` in the admin's autocomplete box for ``field`` (select2): type a
    name, not a number."""
    page.click(f".field-{field} .select2-selection")
    page.keyboard.type(text)
    page.locator(".select2-results__option", has_text=text).first.click()


def test_twelve_bad_uploads_in_a_row_all_show_their_errors(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    staff_sign_in(page, served, "operator-one")
    card = served.seed["import_card"]
    results: list[str] = []
    for n in range(12):
        page.goto(f"{served.admin_url}rating/ratecard/{card}/import/")
        content = BAD_LINES if n % 2 else BAD_RATES
        page.set_input_files(
            "input[name=file]",
            files=[{"name": f"bad-{n}.csv", "mimeType": "text/csv", "buffer": content}],
        )
        with page.expect_navigation():
            page.click("#rate-import-form input[type=submit]")
        # The page's script takes the steps and reloads the page with the result.
        page.wait_for_selector("text=the rate card was not changed")
        errors = page.locator("#rate-import-errors li").all_inner_texts()
        results.append(" | ".join(errors))
        assert "could not be read" not in visible_text(page), (n, errors)
        if content is BAD_RATES:
            expected = "line 1: unknown column 'price'; missing column 'price_per_minute'"
            assert errors == [expected], n
        else:
            # Every error at once, duplicates included, in line order.
            assert errors == [
                "line 3: prefix '49x' is not a string of digits",
                "line 4: price_per_minute 'cheap' is not a decimal",
                "line 5: duplicate prefix '4930' (first on line 2)",
            ], n
        # The job is in the address and the breadcrumbs are the admin's styled list.
        assert re.search(rf"/rating/ratecard/{card}/import/[A-Za-z0-9_-]{{40,}}/$", page.url)
        assert page.locator("nav ol.breadcrumbs li").count() == 5
    assert len(results) == 12
    assert problems.unexpected() == []


def test_a_lockout_appears_on_the_dashboard(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    problems.allow("the server responded with a status of 429")
    user = str(served.seed["locked"])
    statuses = [
        admin_post_status(page, served, user, "not the password at all")
        for _ in range(FAILURE_LIMIT)
    ]
    assert statuses[-1] == 429
    # The lockout page says what happened and for how long, styled, with Retry-After.
    page.goto(served.admin_url)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", str(served.seed["password"]))
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("input[type=submit]")
    assert answer.value.status == 429
    assert answer.value.headers.get("retry-after") == "900"
    text = visible_text(page)
    assert "Too many failed sign-ins" in text and "15 minutes" in text
    assert user not in text
    background = page.evaluate(
        "getComputedStyle(document.querySelector('.error-page')).backgroundColor"
    )
    assert background == "rgb(255, 255, 255)"

    page.context.clear_cookies()
    staff_sign_in(page, served, "operator-two")
    page.goto(f"{served.admin_url}cdr/cdr/dashboard/")
    page.wait_for_selector("#table-security tbody td:has-text('admin lockout')")
    rows = page.locator("#table-security tbody tr").all_inner_texts()
    assert any("admin lockout" in row and user in row and "127.0.0.1" in row for row in rows)
    failures = [row for row in rows if "admin login failure" in row and user in row]
    assert len(failures) >= FAILURE_LIMIT
    # The full list is one click away, in the admin.
    with page.expect_navigation():
        page.click("#dashboard-security a:has-text('Every security event')")
    assert "admin lockout" in visible_text(page)
    assert problems.unexpected() == []


def test_money_of_two_currencies_is_never_added(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    staff_sign_in(page, served, "operator-three")
    page.goto(f"{served.admin_url}cdr/cdr/dashboard/?period=24h&until=2026-03-01T13:00:00")
    page.wait_for_selector("#dashboard-margin li:has-text('EUR')")
    margins = page.locator("#dashboard-margin li").all_inner_texts()
    assert margins == ["0.1800 EUR", "0.3000 USD"]
    sell_cost = page.locator("#dashboard-sell-cost li").all_inner_texts()
    assert sell_cost == ["EUR: sell 0.3000, cost 0.2200", "USD: sell 0.9000, cost 0.2000"]
    assert "1 calls sold and bought in different currencies have no margin" in visible_text(page)
    per_customer = page.locator("#table-customer tbody tr").all_inner_texts()
    assert any(
        "usd-shop" in row and "0.3000 USD" in row and "EUR" not in row for row in per_customer
    )
    assert any("eur-shop" in row and "0.1800 EUR" in row for row in per_customer)
    # One margin series per currency; an hour without calls has no ASR, not 0 %.
    labels = page.evaluate(
        "window.Chart.getChart('chart-margin').data.datasets.map((d) => d.label)"
    )
    assert labels == ["margin EUR", "margin USD"]
    asr = page.evaluate("window.Chart.getChart('chart-asr').data.datasets[0].data")
    assert None in asr and 100 in asr and 0 not in asr

    # The CDR list shows each amount with its currency; the mixed one has no margin.
    page.set_viewport_size(LAPTOP)
    page.goto(f"{served.admin_url}cdr/cdr/?q=money-2")
    row = page.locator("#result_list tbody tr").first.inner_text()
    assert "0.4000 USD" in row and "0.1000 EUR" in row and "carrier-eur" in row

    # And the admin refuses the route itself: a USD customer cannot list an EUR provider.
    shop = served.seed["shops"]["USD"]  # type: ignore[index]
    page.goto(f"{served.admin_url}customers/customer/{shop}/change/")
    choose(page, "providers", "carrier-eur")
    with page.expect_navigation():
        page.click("input[name=_save]")
    assert "these providers' cost cards are not: carrier-eur (EUR)" in visible_text(page)
    assert problems.unexpected() == []


def test_pages_an_operator_reads_are_complete_and_styled(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    page.set_viewport_size(LAPTOP)
    staff_sign_in(page, served, "operator-four")

    # The home page: configuration first, readable names, a link that does not wrap.
    page.goto(served.admin_url)
    captions = page.locator("#content .module caption").all_inner_texts()
    names = [c.strip().lower() for c in captions]
    assert names[:4] == ["traffic", "your account", "customers", "carriers"]
    assert names.index("customers") < names.index("audit log")
    assert names.index("customers") < names.index("sign-in lockouts")
    assert "authenticator apps (totp)" in names and "otp_totp" not in " ".join(names)
    lines = page.evaluate("document.querySelector('#dashboard-link th a').getClientRects().length")
    assert lines == 1

    # The CDR list: every column visible at 1366 px, times to the second.
    page.goto(f"{served.admin_url}cdr/cdr/")
    headers = [h.strip().lower() for h in page.locator("#result_list thead th").all_inner_texts()]
    for column in ("started at", "duration", "sell", "cost", "margin", "provider"):
        assert column in headers, headers
    fits = page.evaluate(
        "(() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth <= r.clientWidth + 1; })()"
    )
    assert fits, "the CDR table scrolls sideways at 1366 px"
    right = page.evaluate(
        "document.querySelector('#result_list thead th:last-child').getBoundingClientRect().right"
    )
    assert right <= LAPTOP["width"]
    assert re.search(r"2026-03-01 12:\d\d:\d\d", visible_text(page))
    assert "1:00" in visible_text(page)  # a minute's call, not 60000 ms

    # The provider's gateways fit too.
    provider = served.seed["providers"]["EUR"]  # type: ignore[index]
    page.goto(f"{served.admin_url}carriers/provider/{provider}/change/")
    overflow = page.evaluate(
        "(() => { const t = document.querySelector('#gateways-group .tabular');"
        " return t.scrollWidth - t.clientWidth; })()"
    )
    assert overflow <= 1, f"the gateway table is {overflow} px too wide"

    # Custom pages use the admin's breadcrumbs, not the old unstyled markup.
    for path in ("cdr/cdr/dashboard/", "sessions/", "otp/devices/"):
        page.goto(f"{served.admin_url}{path}")
        assert page.locator("nav ol.breadcrumbs").count() == 1, path
        assert page.locator("div.breadcrumbs").count() == 0, path
        assert "nonce" not in visible_text(page), path

    # A new SIP account without a password gets one, shown once on a styled page.
    page.goto(f"{served.admin_url}customers/account/add/")
    choose(page, "customer", "eur-shop")
    page.fill("input[name=username]", "desk-browser-1")
    with page.expect_navigation():
        page.click("input[name=_save]")
    password = page.locator("code.sip-password").inner_text()
    assert re.fullmatch(r"[A-Za-z0-9]{20}", password)
    assert page.locator("nav ol.breadcrumbs").count() == 1

    # The API documentation's introduction keeps its placeholder.
    page.goto(f"{served.base_url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info")
    assert "Authorization: Bearer tg_<prefix>_<secret>" in page.inner_text(".swagger-ui .info")
    assert problems.unexpected() == []


def test_error_pages_say_what_happened(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    problems.allow("the server responded with a status of 404")
    problems.allow("the server responded with a status of 403")
    missing = page.goto(f"{served.base_url}/no-such-page/")
    assert missing is not None and missing.status == 404
    assert "There is no page at this address" in visible_text(page)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == (
        "rgb(246, 248, 250)"
    )
    staff_sign_in(page, served, "operator-five")
    denied = page.goto(f"{served.base_url}/portal/")  # staff have no customer
    assert denied is not None and denied.status == 403
    assert "You may not open this page" in visible_text(page)
    assert page.locator("link[href='/static/core/error.css']").count() == 1
    assert problems.unexpected() == []


def test_portal_resets_and_revocations_ask_first(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    alpha: dict[str, Any] = served.seed["alpha"]  # type: ignore[assignment]
    page.goto(f"{served.base_url}/portal/login/")
    page.fill("input[name=username]", alpha["user"])
    page.fill("input[name=password]", str(served.seed["password"]))
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.goto(f"{served.base_url}/portal/api-keys/")
    assert "carriers" not in visible_text(page)
    page.fill("input[name=name]", "nightly export")
    page.check("input[value='read:cdr']")
    with page.expect_navigation():
        page.click("button:has-text('Create key')")
    page.goto(f"{served.base_url}/portal/api-keys/")
    with page.expect_navigation():
        page.click("a:has-text('Revoke nightly export')")
    assert urlsplit(page.url).path.endswith("/revoke/")
    assert "stops working at once" in visible_text(page)
    page.click("a:has-text('Cancel')")
    assert "active" in page.locator("table tbody tr").first.inner_text()
    with page.expect_navigation():
        page.click("a:has-text('Revoke nightly export')")
    with page.expect_navigation():
        page.click("button:has-text('Revoke nightly export')")
    assert "revoked" in page.locator("table tbody tr").first.inner_text()
    assert problems.unexpected() == []


def test_the_dashboard_shows_the_running_switchs_registrations(
    page: Page, served: ServedApp, problems: PageProblems
) -> None:
    """The switch's status document (as a running switch writes it every second) reaches
    the Registrations tile: bindings, and the accounts that hold them."""
    status = served.data_dir / "run" / "switch-status.json"
    status.parent.mkdir(exist_ok=True)
    document = {
        "pid": 4242, "active_calls": 2, "calls_total": 50, "calls_per_second": 0.5,
        "handler_errors": 0, "bindings": 12, "registered_accounts": 9, "started_at": 0.0,
        # Fresh for as long as the test may take on a busy machine.
        "updated_at": time.time() + 600, "interval_s": 1.0,
    }  # fmt: skip
    status.write_text(json.dumps(document))
    try:
        staff_sign_in(page, served, "operator-six")
        page.goto(f"{served.admin_url}cdr/cdr/dashboard/")
        page.wait_for_selector("[data-field=bindings]:has-text('12')")
        note = page.locator("[data-field=registrations_note]").inner_text()
        assert note == "phones registered now, for 9 accounts"
        assert page.locator("[data-field=live]").inner_text() == "2"
    finally:
        status.unlink()
    # Without a running switch the tile says so instead of showing a stale figure.
    page.reload()
    page.wait_for_selector("[data-field=registrations_note]:has-text('running switch only')")
    assert page.locator("[data-field=bindings]").inner_text() == "\u2013"  # a dash
    assert problems.unexpected() == []
