"""The portal's Numbers page: a customer's own DIDs, never another customer's."""

from __future__ import annotations

from django.test import Client

from .. import factories
from ..api import people


def test_numbers_lists_own_dids_with_targets_and_prices_in_the_currency() -> None:
    w = people.world()
    w.account_a.extension = "201"
    w.account_a.save()
    factories.did(w.a, "4930100", account=w.account_a, price_per_minute="0.0075", monthly_price="2")
    factories.did(
        w.a,
        "4930200",
        last="4930299",
        target="trunk",
        trunk_host="pbx.alpha.test",
        failover_host="192.0.2.9",
        failover_transport="tcp",
    )
    factories.did(w.a, "4930300", target="did", forward_to="4930100", enabled=False)
    factories.did(w.b, "1212555", account=w.account_b, monthly_price="9.99")
    client = Client()
    client.force_login(people.customer_user("cust-a", w.a))
    page = client.get("/portal/numbers/").content.decode()
    for expected in (
        "+4930100",
        "SIP account alice (extension 201)",
        "0.0075",
        "2.00",
        "+4930200 to +4930299",
        "trunk pbx.alpha.test:5060 (UDP), then 192.0.2.9:5060 (TCP)",
        "number +4930100",
        "disabled",
        "Per minute (EUR)",
    ):
        assert expected in page, expected
    # Bravo's number, account and price appear nowhere on alpha's page.
    for foreign in ("1212555", "bob", "9.99", "USD"):
        assert foreign not in page, foreign


def test_a_customer_without_dids_is_told_so() -> None:
    w = people.world()
    factories.did(w.b, "1212555", account=w.account_b)
    client = Client()
    client.force_login(people.customer_user("cust-a", w.a))
    page = client.get("/portal/numbers/").content.decode()
    assert "You have no numbers." in page
    assert "1212555" not in page
