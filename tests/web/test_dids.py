"""DID validation: Did.clean applies the switch's DID table rules, by field."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from tollguard.web.customers.dids import delete_errors, did_errors
from tollguard.web.customers.models import Did

from . import factories

pytestmark = pytest.mark.usefixtures("db")


def _errors(did: Did) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        did.full_clean()
    return caught.value.message_dict


def test_a_valid_did_of_each_target_saves() -> None:
    acme = factories.customer()
    alice = factories.account(acme)
    factories.did(acme, "442071234567", account=alice)
    factories.did(
        acme,
        "442071234500",
        last="442071234509",
        target="trunk",
        account=None,
        trunk_host="pbx.acme.test",
        failover_host="192.0.2.7",
        failover_transport="tcp",
    )
    factories.did(acme, "442071234599", target="did", forward_to="442071234567")
    assert Did.objects.count() == 3


_TRUNK = {"target": "trunk", "trunk_host": "pbx.acme.test"}


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"target": "account"}, "account", "Choose the account"),
        ({"target": "trunk"}, "trunk_host", "address of the customer's trunk"),
        ({"target": "did"}, "forward_to", "number to forward to"),
        ({"target": "did", "forward_to": "1x"}, "forward_to", "digits"),
        ({"target": "trunk", "failover_host": "192.0.2.8"}, "trunk_host", "failover"),
        ({"target": "did", "forward_to": "449", "trunk_host": "h"}, "target", "no trunk"),
        ({"last": "44207123450", **_TRUNK}, "last", "as long as its first"),
        ({"last": "442071234500", "first": "442071234599", **_TRUNK}, "last", "not below"),
        ({"target": "did", "forward_to": "449999"}, "forward_to", "no DID"),
    ],
    ids=[
        "account-missing",
        "trunk-missing",
        "forward-missing",
        "forward-not-digits",
        "failover-alone",
        "stray-trunk",
        "short-range",
        "range-backwards",
        "forward-nowhere",
    ],
)
def test_a_bad_target_or_range_is_reported_on_its_field(
    values: dict[str, object], field: str, words: str
) -> None:
    acme = factories.customer()
    did = Did(customer=acme, **{"first": "442071234567", **values})  # type: ignore[arg-type]
    errors = _errors(did)
    assert field in errors, errors
    assert words.lower() in " ".join(errors[field]).lower()


def test_an_account_of_another_customer_is_refused() -> None:
    acme, other = factories.customer("acme"), factories.customer("other")
    bob = factories.account(other, "bob")
    errors = _errors(Did(customer=acme, first="442071234567", account=bob))
    assert errors["account"] == ["Account 'bob' belongs to another customer."]


def test_a_number_inside_another_range_is_refused() -> None:
    acme = factories.customer()
    factories.did(acme, "442071234500", last="442071234599", target="trunk", trunk_host="h")
    single = Did(customer=acme, first="442071234550", target="trunk", trunk_host="h")
    assert "held by range 442071234500-442071234599" in _errors(single)["first"][0]
    overlapping = Did(
        customer=acme, first="442071234590", last="442071234610", target="trunk", trunk_host="h"
    )
    assert "overlaps another did range" in " ".join(_errors(overlapping)["first"]).lower()


def test_a_forward_loop_is_refused_and_the_table_stays_loadable() -> None:
    acme = factories.customer()
    alice = factories.account(acme)
    first = factories.did(acme, "4420700001", account=alice)
    factories.did(acme, "4420700002", target="did", forward_to="4420700001")
    # Turning the first into a forward to the second closes a loop.
    first.target, first.account, first.forward_to = "did", None, "4420700002"
    assert "loop" in " ".join(_errors(first)["forward_to"])


def test_a_chain_of_more_than_four_forwards_is_refused() -> None:
    acme = factories.customer()
    alice = factories.account(acme)
    factories.did(acme, "4420700000", account=alice)
    for n in range(1, 5):
        factories.did(acme, f"442070000{n}", target="did", forward_to=f"442070000{n - 1}")
    fifth = Did(customer=acme, first="4420700005", target="did", forward_to="4420700004")
    assert _errors(fifth)["forward_to"] == ["More than 4 forwards."]


def test_the_same_number_twice_is_refused_by_the_unique_constraint_too() -> None:
    acme = factories.customer()
    factories.did(acme, "4420700001", target="trunk", trunk_host="h")
    errors = _errors(Did(customer=acme, first="4420700001", target="trunk", trunk_host="h"))
    assert errors.get("first") or errors.get(NON_FIELD_ERRORS)


def test_editing_a_did_is_checked_without_its_old_self() -> None:
    acme = factories.customer()
    did = factories.did(acme, "442071234500", last="442071234599", target="trunk", trunk_host="h")
    did.last = "442071234598"
    did.monthly_price = Decimal("3.50")
    assert did_errors(did) == {}


def test_deleting_a_did_another_forwards_to_is_refused() -> None:
    acme = factories.customer()
    alice = factories.account(acme)
    target = factories.did(acme, "4420700001", account=alice)
    forward = factories.did(acme, "4420700002", target="did", forward_to="4420700001")
    assert delete_errors([target]) == ["DID 4420700002 forwards to 4420700001, no DID"]
    assert delete_errors([target, forward]) == []
