"""Low-balance alerts: once per downward crossing, e-mail and signed webhooks, retries.

Webhooks go to a real HTTPS server on 127.0.0.1 (a throw-away certificate the sender is
told to trust), and each request is checked with the receiver recipe of
docs/billing.md (:func:`tollguard.web.billing.webhooks.verify`).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import override_settings

from tollguard import certs
from tollguard.web.adapters import DbCdrSink
from tollguard.web.billing import alerts, services, webhooks
from tollguard.web.billing.models import AlertDelivery, BalanceAlerts, EntryKind
from tollguard.web.billing.webhooks import ReplayGuard, WebhookRejected, verify
from tollguard.web.customers.models import Customer

from .. import factories
from .test_ledger import make_cdr

pytestmark = pytest.mark.usefixtures("db")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_test-secret-of-enough-length-0123456789"


@dataclass
class Receiver:
    """An HTTPS endpoint that records requests and answers the statuses it is given."""

    url: str
    ca_file: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # then 204


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certs.write_self_signed(cert, key, hostnames=["localhost"])
    state = Receiver(url="", ca_file=str(cert))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers.items()), body))
            status = state.answers.pop(0) if state.answers else 204
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "https://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"https://127.0.0.1:{server.server_address[1]}/hooks/tollguard"
    billing = dataclasses.replace(settings.TOLLGUARD.billing, webhook_ca_file=str(cert))
    with override_settings(TOLLGUARD=dataclasses.replace(settings.TOLLGUARD, billing=billing)):
        yield state
    server.shutdown()
    server.server_close()
    thread.join()


def _customer(thresholds: str = "10, 5, 0", **alert_values: str) -> Customer:
    customer = factories.customer("acme", sell_card=factories.rate_card("card"))
    BalanceAlerts.objects.create(customer=customer, thresholds=thresholds, **alert_values)
    return customer


def _post(customer: Customer, kind: str, amount: str) -> None:
    reason = "" if kind == EntryKind.TOP_UP else "test"
    services.post_entry(customer, kind, Decimal(amount), reason=reason, now=T0)


def _queued() -> list[Decimal]:
    return list(AlertDelivery.objects.order_by("id").values_list("threshold", flat=True))


def test_each_threshold_fires_once_per_downward_crossing() -> None:
    acme = _customer(email="billing@acme.test")
    _post(acme, EntryKind.TOP_UP, "20")
    assert _queued() == []
    _post(acme, EntryKind.ADJUSTMENT, "-12")  # 20 -> 8: below 10
    assert _queued() == [Decimal(10)]
    _post(acme, EntryKind.ADJUSTMENT, "-1")  # 8 -> 7: still below, nothing new
    assert _queued() == [Decimal(10)]
    _post(acme, EntryKind.TOP_UP, "5")  # 7 -> 12: back above
    _post(acme, EntryKind.ADJUSTMENT, "-2")  # 12 -> 10: at it is not below
    assert _queued() == [Decimal(10)]
    _post(acme, EntryKind.ADJUSTMENT, "-11")  # 10 -> -1: below 10, 5 and 0 at once
    assert _queued() == [Decimal(10), Decimal(10), Decimal(5), Decimal(0)]


def test_call_charges_cross_thresholds_too() -> None:
    acme = _customer(email="billing@acme.test")
    _post(acme, EntryKind.TOP_UP, "6")
    DbCdrSink().write_batch([make_cdr(n, acme.pk, "0.5") for n in range(4)])  # 6 -> 4
    assert _queued() == [Decimal(5)]
    assert AlertDelivery.objects.get().funds == Decimal(4)


def test_postpaid_funds_count_the_credit_limit() -> None:
    acme = _customer("5", email="billing@acme.test")
    Customer.objects.filter(pk=acme.pk).update(billing_mode="postpaid", credit_limit=10)
    _post(acme, EntryKind.ADJUSTMENT, "-4")  # funds 10 -> 6
    assert _queued() == []
    _post(acme, EntryKind.ADJUSTMENT, "-2")  # funds 6 -> 4
    assert _queued() == [Decimal(5)]
    assert AlertDelivery.objects.get().funds == Decimal(4)


def test_one_delivery_per_channel() -> None:
    acme = _customer("0", email="billing@acme.test", webhook_url="https://hooks.acme.test/x")
    _post(acme, EntryKind.ADJUSTMENT, "-1")  # 0 -> -1: below 0
    assert sorted(AlertDelivery.objects.values_list("channel", "target")) == [
        ("email", "billing@acme.test"),
        ("webhook", "https://hooks.acme.test/x"),
    ]


def test_an_entry_rolled_back_alerts_nobody() -> None:
    acme = _customer(email="billing@acme.test")
    with pytest.raises(RuntimeError), transaction.atomic():
        _post(acme, EntryKind.ADJUSTMENT, "-1")
        raise RuntimeError("the caller's transaction fails")
    assert not AlertDelivery.objects.exists()


def test_the_email_goes_out_once() -> None:
    acme = _customer("5", email="billing@acme.test")
    _post(acme, EntryKind.TOP_UP, "5")
    _post(acme, EntryKind.ADJUSTMENT, "-1.5")
    assert alerts.deliver_due(T0) == 1
    (message,) = mail.outbox
    assert message.to == ["billing@acme.test"]
    assert message.subject == "Low balance: acme is below 5.000000 EUR"
    assert "3.500000 EUR are left" in message.body
    assert alerts.deliver_due(T0 + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 1
    assert AlertDelivery.objects.get().delivered_at == T0


@override_settings(
    MAILERS={"default": {"BACKEND": "tollguard.web.billing.mail.UnconfiguredBackend"}}
)
def test_without_a_mail_server_the_alert_waits() -> None:
    acme = _customer("0", email="billing@acme.test")
    _post(acme, EntryKind.ADJUSTMENT, "-1")
    assert alerts.deliver_due(T0) == 0
    delivery = AlertDelivery.objects.get()
    assert delivery.delivered_at is None
    assert "no mail server" in delivery.last_error
    assert delivery.next_attempt_at == T0 + timedelta(minutes=1)


def _webhook_customer(receiver: Receiver) -> Customer:
    customer = _customer("0", webhook_url=receiver.url)
    BalanceAlerts.objects.filter(customer=customer).update(webhook_secret=SECRET)
    return customer


def _verified(receiver: Receiver, index: int, now: float, guard: ReplayGuard) -> dict[str, object]:
    headers, body = receiver.requests[index]
    return verify(SECRET, headers[webhooks.SIGNATURE_HEADER], body, now=now, guard=guard)


def test_a_webhook_is_signed_and_verifiable(receiver: Receiver) -> None:
    acme = _webhook_customer(receiver)
    _post(acme, EntryKind.ADJUSTMENT, "-2")
    assert alerts.deliver_due(T0) == 1
    (request,) = receiver.requests
    headers, body = request
    assert headers["Content-Type"] == "application/json"
    assert headers[webhooks.EVENT_HEADER] == "balance.low"
    assert headers[webhooks.SIGNATURE_HEADER].startswith(f"t={int(T0.timestamp())},v1=")
    event = _verified(receiver, 0, T0.timestamp() + 3, ReplayGuard())
    delivery = AlertDelivery.objects.get()
    assert event == {
        "id": str(delivery.event_id),
        "type": "balance.low",
        "created_at": T0.isoformat(),
        "customer": {"id": acme.pk, "name": "acme"},
        "threshold": "0.000000",
        "funds": "-2.000000",
        "currency": "EUR",
    }
    assert json.loads(body) == event


def test_the_receiver_recipe_refuses_forgeries_and_replays(receiver: Receiver) -> None:
    acme = _webhook_customer(receiver)
    _post(acme, EntryKind.ADJUSTMENT, "-2")
    alerts.deliver_due(T0)
    headers, body = receiver.requests[0]
    signature = headers[webhooks.SIGNATURE_HEADER]
    now = T0.timestamp() + 10
    guard = ReplayGuard()
    verify(SECRET, signature, body, now=now, guard=guard)
    refusals = {
        "replayed": (SECRET, signature, body, now + 60),
        "wrong secret": ("whsec_other", signature, body, now),
        "body changed": (SECRET, signature, body.replace(b"-2.0", b"-0.0"), now),
        "too old": (SECRET, signature, body, T0.timestamp() + 301),
        "from the future": (SECRET, signature, body, T0.timestamp() - 301),
        "no signature": (SECRET, "t=1", body, now),
        "garbage": (SECRET, "v1=abc", body, now),
    }
    messages = {}
    for name, (secret, header, payload, at) in refusals.items():
        with pytest.raises(WebhookRejected) as caught:
            verify(secret, header, payload, now=at, guard=guard)
        messages[name] = str(caught.value)
    assert "delivered already" in messages["replayed"]
    assert messages["wrong secret"] == messages["body changed"] == "signature does not match"
    assert messages["too old"] == messages["from the future"] == "time stamp outside the tolerance"
    assert messages["no signature"] == messages["garbage"] == "malformed signature header"


def test_a_replay_guard_forgets_after_twice_the_tolerance() -> None:
    guard = ReplayGuard(tolerance_s=300)
    assert guard.first_time("e1", 1000.0)
    assert not guard.first_time("e1", 1599.0)
    assert guard.first_time("e2", 1601.0)  # drops e1, seen 601 s ago
    assert guard.first_time("e1", 1602.0)


def test_a_failed_webhook_is_retried_with_the_same_event(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    acme = _webhook_customer(receiver)
    _post(acme, EntryKind.ADJUSTMENT, "-2")
    receiver.answers = [500, 503]
    with caplog.at_level(logging.WARNING, logger="tollguard.web.billing.alerts"):
        assert alerts.deliver_due(T0) == 0
    delivery = AlertDelivery.objects.get()
    assert (delivery.attempts, delivery.last_error) == (1, "WebhookFailed: answered 500")
    assert delivery.next_attempt_at == T0 + timedelta(minutes=1)
    assert any("failed (attempt 1)" in r.getMessage() for r in caplog.records)
    assert alerts.deliver_due(T0 + timedelta(seconds=59)) == 0
    assert len(receiver.requests) == 1
    assert alerts.deliver_due(T0 + timedelta(minutes=1)) == 0
    assert AlertDelivery.objects.get().next_attempt_at == T0 + timedelta(minutes=3)
    assert alerts.deliver_due(T0 + timedelta(minutes=3)) == 1
    assert AlertDelivery.objects.get().delivered_at == T0 + timedelta(minutes=3)
    ids = {json.loads(body)["id"] for _, body in receiver.requests}
    assert len(receiver.requests) == 3 and len(ids) == 1
    # Each try is signed when it is sent: the last one verifies at its own time.
    _verified(receiver, 2, (T0 + timedelta(minutes=3)).timestamp(), ReplayGuard())


def test_a_webhook_is_given_up_after_the_last_attempt(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    acme = _webhook_customer(receiver)
    _post(acme, EntryKind.ADJUSTMENT, "-2")
    receiver.answers = [500, 500, 500]
    billing = dataclasses.replace(settings.TOLLGUARD.billing, alert_max_attempts=2)
    with (
        override_settings(TOLLGUARD=dataclasses.replace(settings.TOLLGUARD, billing=billing)),
        caplog.at_level(logging.ERROR, logger="tollguard.web.billing.alerts"),
    ):
        alerts.deliver_due(T0)
        alerts.deliver_due(T0 + timedelta(minutes=1))
        alerts.deliver_due(T0 + timedelta(days=1))
    delivery = AlertDelivery.objects.get()
    assert delivery.failed_at == T0 + timedelta(minutes=1)
    assert len(receiver.requests) == 2
    assert any("given up after 2 attempts" in r.getMessage() for r in caplog.records)


def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver) -> None:
    acme = _webhook_customer(receiver)
    _post(acme, EntryKind.ADJUSTMENT, "-2")
    receiver.answers = [302]
    assert alerts.deliver_due(T0) == 0
    assert AlertDelivery.objects.get().last_error == "WebhookFailed: answered 302"
    assert len(receiver.requests) == 1


def test_no_secret_no_webhook(receiver: Receiver) -> None:
    acme = _customer("0", webhook_url=receiver.url)
    _post(acme, EntryKind.ADJUSTMENT, "-2")
    assert alerts.deliver_due(T0) == 0
    assert "no webhook secret" in AlertDelivery.objects.get().last_error
    assert receiver.requests == []


def test_an_untrusted_certificate_is_a_failure(receiver: Receiver) -> None:
    acme = _webhook_customer(receiver)
    _post(acme, EntryKind.ADJUSTMENT, "-2")
    billing = dataclasses.replace(settings.TOLLGUARD.billing, webhook_ca_file="")
    with override_settings(TOLLGUARD=dataclasses.replace(settings.TOLLGUARD, billing=billing)):
        assert alerts.deliver_due(T0) == 0
    assert "CERTIFICATE_VERIFY_FAILED" in AlertDelivery.objects.get().last_error
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url",
    ["http://hooks.acme.test/x", "file:///etc/passwd", "ftp://hooks.acme.test/x"],
    ids=["http", "file", "ftp"],
)
def test_webhooks_are_https_only(url: str) -> None:
    customer = factories.customer("acme")
    with pytest.raises(ValidationError):
        BalanceAlerts(customer=customer, thresholds="5", webhook_url=url).full_clean()
    with pytest.raises(webhooks.WebhookFailed, match="https only"):
        webhooks.post(url, SECRET, "balance.low", b"{}", timeout_s=1)


def test_charges_are_written_without_waiting_for_any_receiver(receiver: Receiver) -> None:
    acme = _webhook_customer(receiver)
    _post(acme, EntryKind.TOP_UP, "1")
    DbCdrSink().write_batch([make_cdr(1, acme.pk, "2")])  # 1 -> -1
    # Queued with the charge, sent only by the sender.
    assert AlertDelivery.objects.count() == 1
    assert receiver.requests == []
    due = AlertDelivery.objects.get().next_attempt_at
    sender = alerts.AlertSender(interval_s=60, clock=lambda: due)
    assert sender.run_once() == 1
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("text", "ok"),
    [("50, 10, 0", True), ("", True), ("-5", True), ("ten", False), ("1.0000001", False)],
    ids=["list", "none", "negative", "word", "places"],
)
def test_thresholds_are_validated(text: str, ok: bool) -> None:
    alerts_row = BalanceAlerts(customer=factories.customer("acme"), thresholds=text)
    if ok:
        alerts_row.full_clean()
    else:
        with pytest.raises(ValidationError, match="Amounts separated by commas"):
            alerts_row.full_clean()
