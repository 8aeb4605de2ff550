"""Front-end rules: nothing inline (the CSP forbids it), chart.js vendored and served."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client, override_settings

import tollguard.web

WEB = Path(tollguard.web.__file__).parent
ROOT = WEB.parents[2]
APPS = ("dashboard", "rating", "cdr", "customers", "carriers")
TEMPLATES = sorted(p for app in APPS for p in (WEB / app / "templates").rglob("*.html"))
VENDOR = WEB / "dashboard" / "static" / "dashboard" / "vendor"

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*\bnonce=)[^>]*>", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style\b(?![^>]*\bnonce=)", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)


def test_there_are_templates_to_check() -> None:
    names = {p.name for p in TEMPLATES}
    assert {"dashboard.html", "import_progress.html", "sip_passwords.html"} <= names


@pytest.mark.parametrize("template", TEMPLATES, ids=[str(p.relative_to(WEB)) for p in TEMPLATES])
@pytest.mark.parametrize(
    "rule",
    [INLINE_SCRIPT, STYLE_ELEMENT, STYLE_ATTRIBUTE, EVENT_HANDLER, JAVASCRIPT_URL],
    ids=["inline-script", "style-element", "style-attribute", "event-handler", "js-url"],
)
def test_templates_have_nothing_inline(template: Path, rule: re.Pattern[str]) -> None:
    assert not rule.search(template.read_text()), f"{template}: {rule.pattern}"


@pytest.mark.parametrize(
    "rule", [INLINE_SCRIPT, STYLE_ATTRIBUTE, EVENT_HANDLER], ids=["script", "style", "handler"]
)
def test_the_rules_catch_what_they_are_for(rule: re.Pattern[str]) -> None:
    samples = {
        INLINE_SCRIPT: "<script>alert(1)</script>",
        STYLE_ATTRIBUTE: '<div style="color: red">',
        EVENT_HANDLER: '<a onclick="go()">',
    }
    assert rule.search(samples[rule])
    assert not rule.search('<script src="/static/x.js" defer></script><div class="x">')


def test_chart_js_is_vendored_with_its_license() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    version = package["dependencies"]["chart.js"]
    bundle = (VENDOR / "chart.umd.min.js").read_text()
    assert bundle.startswith(f"/*!\n * Chart.js v{version}\n")
    assert "Released under the MIT License" in bundle[:300]
    assert "sourceMappingURL" not in bundle
    assert "MIT License" in (VENDOR / "chart.js-LICENSE.md").read_text()


@pytest.mark.parametrize(
    "path",
    [
        "/static/dashboard/vendor/chart.umd.min.js",
        "/static/dashboard/dashboard.js",
        "/static/dashboard/dashboard.css",
        "/static/rating/rate_import.js",
    ],
)
@override_settings(ALLOWED_HOSTS=["testserver"])
def test_assets_are_served_locally(path: str) -> None:
    response = Client().get(path, secure=True)
    assert response.status_code == 200
    body = response.getvalue()
    assert len(body) > 100


def test_scripts_write_text_not_markup() -> None:
    for script in (
        WEB / "dashboard/static/dashboard/dashboard.js",
        WEB / "rating/static/rating/rate_import.js",
    ):
        text = script.read_text()
        assert "innerHTML" not in text and "eval(" not in text and 'setAttribute("style' not in text
