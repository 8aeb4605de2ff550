"""``tollguard load`` and money: credit terms, currencies, balance alerts, and prune."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from tollguard.web.billing import services
from tollguard.web.billing.models import BalanceAlerts, EntryKind
from tollguard.web.customers.models import Customer
from tollguard.web.provisioning import PlanFileError, load_plan_file

from . import factories

pytestmark = pytest.mark.usefixtures("db")

REALM = "tollguard.test"

CARDS = """
rate_cards:
  - {name: retail-eur, currency: EUR}
  - {name: retail-usd, currency: USD}
"""


def _load(tmp_path: Path, text: str, **kwargs: bool) -> object:
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(text))
    return load_plan_file(path, realm=REALM, **kwargs)


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlanFileError) as info:
        _load(tmp_path, text)
    return list(info.value.errors)


def _terms(name: str) -> tuple[str, Decimal, str]:
    row = Customer.objects.get(name=name)
    return row.billing_mode, row.credit_limit, row.currency


def test_credit_terms_and_alerts_are_declared(tmp_path: Path) -> None:
    _load(
        tmp_path,
        CARDS
        + """
customers:
  - name: acme
    sell_card: retail-usd
    credit: {mode: postpaid, credit_limit: "250.50"}
    alerts:
      thresholds: ["10", 50, "-20"]
      email: billing@acme.example
      webhook_url: https://hooks.acme.example/tollguard
""",
    )
    # No currency given: the sell card's.
    assert _terms("acme") == ("postpaid", Decimal("250.5"), "USD")
    alerts = BalanceAlerts.objects.get(customer__name="acme")
    assert (alerts.thresholds, alerts.email) == ("50, 10, -20", "billing@acme.example")
    assert alerts.webhook_url == "https://hooks.acme.example/tollguard"
    assert alerts.webhook_secret == ""  # generated in the admin, shown once there
    again = _load(
        tmp_path,
        CARDS
        + """
customers:
  - name: acme
    sell_card: retail-usd
    credit: {mode: postpaid, credit_limit: "250.500000"}
    alerts:
      thresholds: [50, "10", "-20"]
      email: billing@acme.example
      webhook_url: https://hooks.acme.example/tollguard
""",
    )
    assert not again.changed  # type: ignore[attr-defined]


def test_undeclared_credit_terms_are_left_alone(tmp_path: Path) -> None:
    card = factories.rate_card("retail-eur")
    factories.customer("acme", sell_card=card, billing_mode="postpaid", credit_limit=Decimal(40))
    _load(tmp_path, CARDS + "customers:\n  - {name: acme, sell_card: retail-eur}\n")
    assert _terms("acme") == ("postpaid", Decimal(40), "EUR")


def test_moving_to_a_card_in_another_currency_moves_the_customer_along(tmp_path: Path) -> None:
    _load(tmp_path, CARDS + "customers:\n  - {name: acme, sell_card: retail-eur}\n")
    _load(tmp_path, CARDS + "customers:\n  - {name: acme, sell_card: retail-usd}\n")
    assert _terms("acme")[2] == "USD"


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        (
            "{name: acme, sell_card: retail-eur, credit: {currency: USD}}",
            "customers[0] 'acme'.credit.currency: 'USD' is not the currency of sell card "
            "'retail-eur' (EUR); a customer pays in its sell card's currency",
        ),
        (
            "{name: acme, credit: {mode: prepaid, credit_limit: 10}}",
            "customers[0] 'acme'.credit.credit_limit: only a postpaid customer has a credit limit",
        ),
        (
            "{name: acme, credit: {mode: monthly}}",
            "customers[0] 'acme'.credit.mode: 'monthly' is not one of prepaid, postpaid",
        ),
        (
            "{name: acme, credit: {mode: postpaid, credit_limit: 0.1}}",
            "customers[0] 'acme'.credit.credit_limit: 0.1 is not an amount (quote it: '1.50')",
        ),
        (
            "{name: acme, credit: {mode: postpaid, credit_limit: '-5'}}",
            "customers[0] 'acme'.credit.credit_limit: '-5' is not an amount "
            "(amount -5 is negative)",
        ),
        (
            "{name: acme, credit: {currency: euro}}",
            "customers[0] 'acme'.credit.currency: 'euro' is not an ISO 4217 code",
        ),
        (
            "{name: acme, alerts: {thresholds: [ten]}}",
            "customers[0] 'acme'.alerts.thresholds[0]: 'ten' is not an amount",
        ),
        (
            "{name: acme, alerts: {email: not-an-address}}",
            "customers[0] 'acme'.alerts.email: 'not-an-address' is not an e-mail address",
        ),
        (
            "{name: acme, alerts: {webhook_url: 'http://hooks.acme.example/'}}",
            "customers[0] 'acme'.alerts.webhook_url: 'http://hooks.acme.example/' is not an "
            "https URL",
        ),
        (
            "{name: acme, credit: {limit: 5}}",
            "customers[0] 'acme'.credit: unknown key 'limit'",
        ),
    ],
    ids=[
        "currency-differs",
        "prepaid-limit",
        "mode",
        "float-limit",
        "negative-limit",
        "currency-code",
        "threshold",
        "email",
        "http-webhook",
        "unknown-key",
    ],
)
def test_credit_errors_name_their_entry(tmp_path: Path, customer: str, expected: str) -> None:
    # The customer is on the file's line 6.
    assert _errors(tmp_path, CARDS + f"customers:\n  - {customer}\n") == [
        f"plan.yaml:6: {expected}"
    ]
    assert not Customer.objects.exists()


def test_a_customer_with_a_ledger_keeps_its_currency(tmp_path: Path) -> None:
    _load(tmp_path, CARDS + "customers:\n  - {name: acme, sell_card: retail-eur}\n")
    services.post_entry(Customer.objects.get(name="acme"), EntryKind.TOP_UP, Decimal(5))
    assert _errors(tmp_path, CARDS + "customers:\n  - {name: acme, sell_card: retail-usd}\n") == [
        "plan.yaml:6: customers[0] 'acme': customer 'acme' has a ledger in EUR; its currency "
        "is fixed (not USD)"
    ]
    assert _terms("acme")[2] == "EUR"


def test_prune_never_deletes_a_customer_with_a_ledger(tmp_path: Path) -> None:
    _load(tmp_path, CARDS + "customers:\n  - {name: acme}\n  - {name: gone}\n")
    services.post_entry(Customer.objects.get(name="gone"), EntryKind.TOP_UP, Decimal(5))
    assert _errors(tmp_path, "prune: true\n" + CARDS + "customers:\n  - {name: acme}\n") == [
        "(prune): customer 'gone' has ledger entries and cannot be deleted; keep it in the "
        "file (enabled: false to stop its calls)"
    ]
    assert Customer.objects.filter(name="gone").exists()
