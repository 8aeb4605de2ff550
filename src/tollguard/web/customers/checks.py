"""System checks of customers: SIP accounts against the digest algorithms the switch
offers, and sell currencies against the providers' cost currencies.

==============  =============================================================
id              finding
==============  =============================================================
security.W101   SIP accounts allow MD5 digest, but ``sip.digest_algorithms`` does
                not offer MD5: their phones fail unless they speak SHA-256
customers.W001  a customer lists providers whose cost card is in another currency
                than its sell card, or no provider it may use is in its currency:
                the switch never routes a call across currencies
==============  =============================================================

W101 keeps the id it had in the security app's table
(:mod:`tollguard.web.security.checks`). Both run, like the other deployment checks
there, only with ``check --deploy`` (``tollguard check``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning
from django.db import DatabaseError

from tollguard.web.customers.models import Account
from tollguard.web.customers.selectors import currency_mismatches
from tollguard.web.security.checks import AppConfigs, register_check

__all__ = ["MD5_ACCOUNTS_SHOWN", "check_currencies", "check_md5_accounts", "register"]

logger = logging.getLogger(__name__)

MD5_ACCOUNTS_SHOWN = 10


def check_md5_accounts(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    if "MD5" in settings.TOLLGUARD.sip.digest_algorithms:
        return []
    try:
        names = list(
            Account.objects.filter(allow_md5=True)
            .order_by("username")
            .values_list("username", flat=True)[: MD5_ACCOUNTS_SHOWN + 1]
        )
    except DatabaseError as exc:
        # A data directory before its first migrate has no accounts to warn about.
        logger.info("MD5 account check skipped: accounts not readable (%s)", exc)
        return []
    if not names:
        return []
    shown = ", ".join(names[:MD5_ACCOUNTS_SHOWN]) + (
        ", ..." if len(names) > MD5_ACCOUNTS_SHOWN else ""
    )
    return [
        Warning(
            f"SIP accounts allow MD5 digest but sip.digest_algorithms does not offer it: {shown}.",
            hint=(
                'Turn allow_md5 off for accounts whose phones speak SHA-256, or add "MD5" '
                "to sip.digest_algorithms for the others (see docs/switch.md)."
            ),
            id="security.W101",
        )
    ]


def check_currencies(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        found = currency_mismatches()
    except DatabaseError as exc:
        logger.info("currency check skipped: configuration not readable (%s)", exc)
        return []
    return [
        Warning(
            f"{mismatch.describe()}.",
            hint=(
                "Give the customer a sell card in the providers' currency, or providers "
                "whose cost card is in its own; calls are never routed across currencies "
                "(docs/provisioning.md, 'Currencies')."
            ),
            id="customers.W001",
        )
        for mismatch in found
    ]


def register() -> None:
    register_check(check_md5_accounts, deploy=True)
    register_check(check_currencies, deploy=True)
