"""``tollguard check`` on the money: balances that lie, currencies that differ, alerts
that cannot be mailed."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.conf import settings
from django.core.checks import registry
from django.test import override_settings

from tollguard.config import MailSettings
from tollguard.web.billing import checks, services
from tollguard.web.billing.models import Balance, BalanceAlerts, EntryKind
from tollguard.web.customers.models import Customer

from .. import factories


def test_they_run_in_tollguard_check_only() -> None:
    deploy = {id(c) for c in registry.registry.get_checks(include_deployment_checks=True)}
    start = {id(c) for c in registry.registry.get_checks(include_deployment_checks=False)}
    for check in (
        checks.check_balances,
        checks.check_currencies,
        checks.check_alert_mail,
        checks.check_credit_control,
    ):
        assert id(check) in deploy - start


def test_a_cached_balance_that_is_not_the_sum() -> None:
    acme = factories.customer("acme")
    services.post_entry(acme, EntryKind.TOP_UP, Decimal(10))
    assert checks.check_balances() == []
    Balance.objects.filter(pk=acme.pk).update(amount=Decimal(11))
    (found,) = checks.check_balances()
    assert found.id == "billing.E001"
    assert "acme (11 cached, 10 in the ledger)" in found.msg


def test_many_small_entries_sum_exactly() -> None:
    # SQLite keeps decimals as doubles: summed as they are, 0.905 less 90 charges of
    # 0.01 is 0.0049999999999994, and the check reported a balance that was right.
    acme = factories.customer("acme")
    services.post_entry(acme, EntryKind.TOP_UP, Decimal("0.905"))
    for _ in range(90):
        services.post_entry(acme, EntryKind.ADJUSTMENT, Decimal("-0.01"), reason="a call")
    assert Balance.objects.get(pk=acme.pk).amount == Decimal("0.005")
    assert checks.check_balances() == []
    Balance.objects.filter(pk=acme.pk).update(amount=Decimal("0.004999"))
    (found,) = checks.check_balances()
    assert "acme (0.004999 cached, 0.005 in the ledger)" in found.msg


def test_a_customer_paying_in_another_currency_than_its_card() -> None:
    card = factories.rate_card("usd", currency="USD")
    factories.customer("acme", sell_card=card, currency="USD")
    assert checks.check_currencies() == []
    Customer.objects.filter(name="acme").update(currency="EUR")
    (found,) = checks.check_currencies()
    assert found.id == "billing.E002"
    assert "acme pays EUR, card USD" in found.msg


def test_alert_addresses_without_a_mail_server() -> None:
    BalanceAlerts.objects.create(customer=factories.customer("acme"), email="ops@acme.test")
    (found,) = checks.check_alert_mail()
    assert found.id == "billing.W101"
    mail = MailSettings(host="smtp.example.net", from_address="tollguard@example.net")
    with override_settings(TOLLGUARD=dataclasses.replace(settings.TOLLGUARD, mail=mail)):
        assert checks.check_alert_mail() == []


def test_credit_control_turned_off() -> None:
    assert checks.check_credit_control() == []
    billing = dataclasses.replace(settings.TOLLGUARD.billing, credit_control=False)
    with override_settings(TOLLGUARD=dataclasses.replace(settings.TOLLGUARD, billing=billing)):
        (found,) = checks.check_credit_control()
    assert found.id == "billing.W102"
