"""DIDs through the API: operators' CRUD with the table rules; customers read their own."""

from __future__ import annotations

from django.test import Client

from tollguard.web.api.models import Scope
from tollguard.web.core.selectors import config_version
from tollguard.web.customers.models import Did

from .. import factories
from . import people


def test_operator_creates_changes_and_deletes_a_did(api: Client) -> None:
    w = people.world()
    before = config_version()
    body = {"customer": w.a.pk, "first": "4930100", "account": w.account_a.pk}
    response = people.send(api, "post", "/api/v1/dids/", body)
    assert response.status_code == 201, response.content
    did = Did.objects.get(first="4930100")
    assert config_version() > before
    path = f"/api/v1/dids/{did.pk}/"
    response = people.send(
        api, "patch", path, {"target": "trunk", "account": None, "trunk_host": "192.0.2.44"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["trunk_host"] == "192.0.2.44"
    assert people.send(api, "delete", path).status_code == 204
    assert not Did.objects.exists()


def test_the_api_applies_the_table_rules(api: Client) -> None:
    w = people.world()
    factories.did(w.a, "4930100", last="4930199", target="trunk", trunk_host="h")
    cases = [
        ({"first": "4930150", "target": "trunk", "trunk_host": "h"}, "first", "held by range"),
        ({"first": "4931", "account": w.account_b.pk}, "account", "belongs to another customer"),
        ({"first": "4932", "target": "did", "forward_to": "4999"}, "forward_to", "no DID"),
    ]
    for values, field, words in cases:
        response = people.send(api, "post", "/api/v1/dids/", {"customer": w.a.pk, **values})
        assert response.status_code == 400, response.content
        assert words in " ".join(response.json()[field]), response.json()
    assert Did.objects.count() == 1


def test_a_did_another_forwards_to_is_not_deleted(api: Client) -> None:
    w = people.world()
    target = factories.did(w.a, "4930", account=w.account_a)
    factories.did(w.a, "4931", target="did", forward_to="4930")
    response = people.send(api, "delete", f"/api/v1/dids/{target.pk}/")
    assert response.status_code == 409
    assert Did.objects.filter(pk=target.pk).exists()


def test_a_customer_key_reads_only_its_own_dids_and_writes_none() -> None:
    w = people.world()
    own = factories.did(w.a, "4930", account=w.account_a, monthly_price="3")
    theirs = factories.did(w.b, "1212", account=w.account_b)
    owner = people.customer_user("cust-a", w.a)
    issued = people.key(owner, Scope.READ_PROVISIONING)
    client = Client(**people.bearer(issued))
    listed = people.send(client, "get", "/api/v1/dids/").json()["results"]
    assert [row["first"] for row in listed] == ["4930"]
    assert listed[0]["monthly_price"] == "3.000000"
    assert people.send(client, "get", f"/api/v1/dids/{theirs.pk}/").status_code == 404
    response = people.send(client, "patch", f"/api/v1/dids/{own.pk}/", {"monthly_price": "0"})
    assert response.status_code == 403
    body = {"customer": w.a.pk, "first": "4939", "account": w.account_a.pk}
    assert people.send(client, "post", "/api/v1/dids/", body).status_code == 403
    assert Did.objects.count() == 2
