"""Low-balance alerts: queued with the entry that crosses a threshold, sent later.

A customer's *funds* are its balance, plus its credit limit when postpaid. Each of its
thresholds fires once per downward crossing: when an entry takes the funds from at or
above it to below it. They must come back up to it (a top-up) before it fires again.

A crossing writes one :class:`AlertDelivery` per channel in the transaction of the
entry (a transactional outbox: an entry rolled back alerts nobody, and nothing is lost
when the process stops). :class:`AlertSender` sends due deliveries from a thread of
its own, never from a request or the call path: e-mail through Django's mail
framework, webhooks as signed POSTs (:mod:`tollguard.web.billing.webhooks`). A failed
one is tried again after 1, 2, 4, ... minutes (at most an hour apart) until
``[billing] alert_max_attempts``, then given up with an error line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F

from tollguard.domain.plan import BillingMode
from tollguard.web.billing import webhooks
from tollguard.web.billing.models import (
    AlertDelivery,
    BalanceAlerts,
    Channel,
    parse_thresholds,
)
from tollguard.web.core.periodic import Periodic

__all__ = ["EVENT_TYPE", "AlertSender", "deliver_due", "event_body", "queue_crossings"]

logger = logging.getLogger(__name__)

EVENT_TYPE = "balance.low"
# A claimed delivery is left alone by other senders for this long.
_CLAIM = timedelta(minutes=2)
_FIRST_RETRY = timedelta(minutes=1)
_LONGEST_RETRY = timedelta(hours=1)


def queue_crossings(moves: Mapping[int, tuple[Decimal, Decimal]], now: datetime) -> int:
    """Queue the alerts of customers whose balance moved ``(before, after)``; how many.

    Call it inside the transaction that moves the balance.
    """
    falling = {pk: move for pk, move in moves.items() if move[1] < move[0]}
    if not falling:
        return 0
    deliveries: list[AlertDelivery] = []
    rows = BalanceAlerts.objects.filter(customer_id__in=falling).select_related("customer")
    for alerts in rows:
        if not alerts.email and not alerts.webhook_url:
            continue
        try:
            thresholds = parse_thresholds(alerts.thresholds)
        except ValueError as exc:
            logger.error("customer %s: unusable alert thresholds: %s", alerts.customer_id, exc)
            continue
        customer = alerts.customer
        credit = customer.credit_limit if customer.billing_mode == BillingMode.POSTPAID else 0
        before, after = falling[customer.pk]
        for threshold in thresholds:
            if not before + credit >= threshold > after + credit:
                continue
            for channel, target in (
                (Channel.EMAIL, alerts.email),
                (Channel.WEBHOOK, alerts.webhook_url),
            ):
                if target:
                    deliveries.append(
                        AlertDelivery(
                            customer_id=customer.pk,
                            channel=channel,
                            target=target,
                            threshold=threshold,
                            funds=after + credit,
                            currency=customer.currency,
                            created_at=now,
                            next_attempt_at=now,
                        )
                    )
    AlertDelivery.objects.bulk_create(deliveries)
    for delivery in deliveries:
        logger.info(
            "customer %s: funds fell below %s %s; %s alert queued",
            delivery.customer_id,
            delivery.threshold,
            delivery.currency,
            delivery.channel,
        )
    return len(deliveries)


def _amount(value: Decimal) -> str:
    return f"{value:f}"


def event_body(delivery: AlertDelivery, customer_name: str) -> bytes:
    """The JSON of a delivery's webhook event (docs/billing.md shows one)."""
    return json.dumps(
        {
            "id": str(delivery.event_id),
            "type": EVENT_TYPE,
            "created_at": delivery.created_at.isoformat(),
            "customer": {"id": delivery.customer_id, "name": customer_name},
            "threshold": _amount(delivery.threshold),
            "funds": _amount(delivery.funds),
            "currency": delivery.currency,
        },
        separators=(",", ":"),
    ).encode()


def _email(delivery: AlertDelivery, customer_name: str) -> None:
    threshold = f"{_amount(delivery.threshold)} {delivery.currency}"
    funds = f"{_amount(delivery.funds)} {delivery.currency}"
    send_mail(
        subject=f"Low balance: {customer_name} is below {threshold}",
        message=(
            f"The funds of customer {customer_name} fell below {threshold} at "
            f"{delivery.created_at:%Y-%m-%d %H:%M} UTC: {funds} are left.\n\n"
            "Calls are refused once the funds cannot pay for them. A top-up restores "
            "them within a second.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[delivery.target],
    )


def _webhook(delivery: AlertDelivery, customer_name: str, now: datetime) -> None:
    secret = (
        BalanceAlerts.objects.filter(customer_id=delivery.customer_id)
        .values_list("webhook_secret", flat=True)
        .first()
    )
    if not secret:
        raise webhooks.WebhookFailed("no webhook secret: generate one in the admin")
    billing = settings.TOLLGUARD.billing
    webhooks.post(
        delivery.target,
        secret,
        EVENT_TYPE,
        event_body(delivery, customer_name),
        timeout_s=billing.webhook_timeout_s,
        ca_file=billing.webhook_ca_file,
        now=now.timestamp(),
    )


def retry_delay(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failure a delivery is tried again."""
    delay: timedelta = _FIRST_RETRY * 2 ** max(attempts - 1, 0)
    return min(delay, _LONGEST_RETRY)


def deliver_due(now: datetime, *, limit: int = 50) -> int:
    """Send up to ``limit`` deliveries due at ``now``; how many were delivered."""
    pending = AlertDelivery.objects.filter(
        delivered_at__isnull=True, failed_at__isnull=True, next_attempt_at__lte=now
    )
    delivered = 0
    for pk in list(pending.order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit]):
        # Claim it first: another sender (a second process) skips it while it is sent.
        if not pending.filter(pk=pk).update(
            next_attempt_at=now + _CLAIM, attempts=F("attempts") + 1
        ):
            continue
        delivery = AlertDelivery.objects.select_related("customer").get(pk=pk)
        try:
            if delivery.channel == Channel.EMAIL:
                _email(delivery, delivery.customer.name)
            else:
                _webhook(delivery, delivery.customer.name, now)
        except Exception as exc:  # the mail server's or the receiver's failure, any kind
            _failed(delivery, now, exc)
            continue
        AlertDelivery.objects.filter(pk=pk).update(delivered_at=now, last_error="")
        delivered += 1
        logger.info("%s alert %s delivered", delivery.channel, delivery.event_id)
    return delivered


def _failed(delivery: AlertDelivery, now: datetime, exc: Exception) -> None:
    error = f"{type(exc).__name__}: {exc}"[:255]
    if delivery.attempts >= settings.TOLLGUARD.billing.alert_max_attempts:
        AlertDelivery.objects.filter(pk=delivery.pk).update(failed_at=now, last_error=error)
        logger.error(
            "%s alert %s to customer %s given up after %d attempts: %s",
            delivery.channel,
            delivery.event_id,
            delivery.customer_id,
            delivery.attempts,
            error,
        )
        return
    retry_at = now + retry_delay(delivery.attempts)
    AlertDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=retry_at, last_error=error)
    logger.warning(
        "%s alert %s failed (attempt %d), next try at %s: %s",
        delivery.channel,
        delivery.event_id,
        delivery.attempts,
        retry_at.isoformat(),
        error,
    )


@dataclass
class AlertSender(Periodic):
    """Sends due alerts every ``interval_s`` from a daemon thread, until :meth:`stop`."""

    thread_name: ClassVar[str] = "tollguard-alerts"
    what: ClassVar[str] = "alert sender"

    def work(self, now: datetime) -> int:
        return deliver_due(now)
