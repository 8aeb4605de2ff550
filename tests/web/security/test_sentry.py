"""Error reports: off without a DSN; personal data and credentials scrubbed."""

from __future__ import annotations

from typing import Any

from tollguard.web.security import sentry


def test_no_dsn_no_reports() -> None:
    assert sentry.init("") is False


def test_scrub_removes_people_and_credentials() -> None:
    event: dict[str, Any] = {
        "user": {"username": "root", "ip_address": "203.0.113.9"},
        "request": {
            "url": "https://pbx.example/x7f/",
            "cookies": {"__Host-sessionid": "abc"},
            "headers": {
                "Cookie": "__Host-sessionid=abc",
                "Authorization": "Bearer k",
                "User-Agent": "Mozilla",
            },
            "data": {"password": "hunter2"},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
        },
        "extra": {
            "username": "alice",
            "sip_password": "pw",
            "peer": "198.51.100.7:5060",
            "sip": 'Authorization: Digest username="alice", response="00ff"',
            "uri": "sip:alice@pbx.example",
        },
        "exception": {"values": [{"value": "no route for 2001:db8::1"}]},
    }
    scrubbed = sentry.scrub(event)
    text = repr(scrubbed)
    for secret in (
        "root",
        "203.0.113.9",
        "abc",
        "Bearer k",
        "hunter2",
        "alice",
        "pw'",
        "198.51.100.7",
        "00ff",
        "2001:db8::1",
    ):
        assert secret not in text, secret
    assert "user" not in scrubbed
    assert scrubbed["request"]["headers"]["User-Agent"] == "Mozilla"
    assert scrubbed["request"]["url"] == "https://pbx.example/x7f/"
