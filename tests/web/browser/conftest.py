"""Headless Chromium against a real served app in a throw-away data directory.

The app is started once per session (``tollguard init``, seeded by ``seed.py``, then the
web process as ``tollguard serve`` starts it). Each test gets a fresh browser context,
so no cookie crosses tests. Every page records its console messages, uncaught errors
and Content-Security-Policy violations; a test that ends with any of them fails.

The violation listener is added with ``add_init_script``: Playwright injects it through
the DevTools protocol, not through the page, so it is no inline script the policy sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from .served import ServedApp, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 15_000

_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__tollguardCsp(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} on ${event.documentURI}`
  );
});
"""

pytestmark = pytest.mark.integration


@dataclass(slots=True)
class PageProblems:
    """What went wrong in the browser while a test ran."""

    console: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def allow(self, fragment: str) -> None:
        """Accept console lines containing ``fragment`` (a status the test provokes)."""
        self.expected.append(fragment)

    def unexpected(self) -> list[str]:
        console = [line for line in self.console if not any(part in line for part in self.expected)]
        return [*console, *self.csp, *self.errors]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with serve(tmp_path_factory.mktemp("served") / "data", seed=True) as app:
        yield app


# Module scope, not session: Playwright's sync API keeps an event loop running in the
# main thread while it is open, and Django refuses ORM calls from a thread with a running
# loop, so the browser must be gone before the next module's database tests run.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (scripts/test installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Browser, problems: PageProblems) -> Iterator[Page]:
    context = browser.new_context(ignore_https_errors=True)
    context.set_default_timeout(PAGE_TIMEOUT_MS)

    def report_csp(line: str) -> None:
        problems.csp.append(line)

    context.expose_function("__tollguardCsp", report_csp)
    context.add_init_script(_REPORT_CSP)
    tab = context.new_page()
    tab.on(
        "console",
        lambda message: (
            problems.console.append(
                f"{message.type}: {message.text} ({message.location.get('url')} on {tab.url})"
            )
            if message.type in {"error", "warning"}
            else None
        ),
    )
    tab.on("pageerror", lambda error: problems.errors.append(f"page error: {error} ({tab.url})"))
    yield tab
    context.close()
    assert problems.unexpected() == []
