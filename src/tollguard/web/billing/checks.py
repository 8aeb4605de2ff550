"""System checks of the money (``check --deploy``, so ``tollguard check``).

=============  ==============================================================
id             finding
=============  ==============================================================
billing.E001   a customer's cached balance differs from the sum of its ledger
billing.E002   a customer pays in another currency than its sell card prices in
               (its calls are refused: docs/billing.md)
billing.W101   customers have alert e-mail addresses but no mail server is set
billing.W102   credit control is off: calls are neither refused nor cut for money
=============  ==============================================================
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.checks import register as register_system_check
from django.db import DatabaseError

logger = logging.getLogger(__name__)

SHOWN = 10


def _listed(items: list[str]) -> str:
    return ", ".join(items[:SHOWN]) + (", ..." if len(items) > SHOWN else "")


def _money(amount: Decimal) -> str:
    """``11`` for 11.000000, ``0.005`` for 0.005000: no trailing zeros, no exponent."""
    return f"{amount.normalize():f}"


def check_balances(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from tollguard.web.billing.selectors import balance_mismatches

    try:
        rows = balance_mismatches(SHOWN + 1)
    except DatabaseError as exc:
        # A data directory before its first migrate has no ledger to check.
        logger.info("balance check skipped: ledger not readable (%s)", exc)
        return []
    if not rows:
        return []
    return [
        Error(
            "Cached balances differ from the sum of their ledger: "
            + _listed(
                [
                    f"{name} ({_money(cached)} cached, {_money(total)} in the ledger)"
                    for name, cached, total in rows
                ]
            )
            + ".",
            hint=(
                "The ledger is the truth; something wrote the balance table outside the "
                "ledger services. Restore the balance rows from a backup or report a bug."
            ),
            id="billing.E001",
        )
    ]


def check_currencies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from tollguard.web.billing.selectors import currency_mismatches

    try:
        rows = currency_mismatches(SHOWN + 1)
    except DatabaseError as exc:
        logger.info("currency check skipped: customers not readable (%s)", exc)
        return []
    if not rows:
        return []
    return [
        Error(
            "Customers pay in another currency than their sell card prices in (their calls "
            "are refused with 503): "
            + _listed([f"{name} pays {pays}, card {card}" for name, pays, card in rows])
            + ".",
            hint="Give each customer a sell card in its own currency (docs/billing.md).",
            id="billing.E002",
        )
    ]


def check_alert_mail(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from tollguard.web.billing.models import BalanceAlerts

    if settings.TOLLGUARD.mail.host:
        return []
    try:
        count = BalanceAlerts.objects.exclude(email="").count()
    except DatabaseError as exc:
        logger.info("alert mail check skipped: alerts not readable (%s)", exc)
        return []
    if not count:
        return []
    return [
        Warning(
            f"{count} customer(s) have low-balance alert addresses, but no mail server is set: "
            "those alerts are not sent.",
            hint="Set [mail] host and from_address in tollguard.toml (README, Configuration).",
            id="billing.W101",
        )
    ]


def check_credit_control(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.TOLLGUARD.billing.credit_control:
        return []
    return [
        Warning(
            "Credit control is off: calls are neither refused nor cut for money, and a "
            "prepaid balance can go below zero.",
            hint="Set [billing] credit_control = true in tollguard.toml (docs/billing.md).",
            id="billing.W102",
        )
    ]


def register() -> None:
    # They read the database, so they run with check --deploy (tollguard check) only, as
    # security.W101 does. Django's own "database" tag would need check --database.
    for check in (check_balances, check_currencies, check_alert_mail, check_credit_control):
        register_system_check(check, "billing", deploy=True)
