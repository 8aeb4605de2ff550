"""``tollguard load``: DIDs, account extensions and providers' inbound cards."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from tollguard.web.carriers.models import Provider
from tollguard.web.core.selectors import config_version
from tollguard.web.customers.models import Account, Did
from tollguard.web.provisioning import PlanFileError, load_plan_file

from . import factories

pytestmark = pytest.mark.usefixtures("db")

REALM = "tollguard.test"

BASE = """
rate_cards:
  - name: retail
    rates: [{prefix: "44", price_per_minute: "0.02"}]
  - name: inbound-a
    kind: cost
    rates: [{prefix: "44", price_per_minute: "0.001"}]
providers:
  - name: carrier-a
    inbound_card: inbound-a
customers:
  - name: acme
    sell_card: retail
    accounts:
      - {username: alice, password: s3cret-alice, extension: "201"}
      - {username: bob, password: s3cret-bob, extension: "202"}
  - name: other
    accounts:
      - {username: olga, password: s3cret-olga, extension: "201"}
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(text))
    return load_plan_file(path, realm=REALM)


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlanFileError) as info:
        load(tmp_path, text)
    return list(info.value.errors)


def dids_table() -> list[tuple[object, ...]]:
    return list(
        Did.objects.order_by("first").values_list(
            "first",
            "last",
            "customer__name",
            "target",
            "account__username",
            "trunk_host",
            "trunk_port",
            "trunk_transport",
            "failover_host",
            "forward_to",
            "price_per_minute",
            "monthly_price",
            "enabled",
        )
    )


def test_dids_extensions_and_inbound_cards_load(tmp_path: Path) -> None:
    report = load(
        tmp_path,
        BASE
        + """
dids:
  - {number: "442071234567", customer: acme, account: alice,
     price_per_minute: "0.005", monthly_price: "2"}
  - first: "442071239900"
    last: "442071239999"
    customer: acme
    trunk: "pbx.acme.test:5080;transport=tcp"
    failover: "[2001:db8::5]"
  - {number: "442071230000", customer: acme, forward: "442071234567", enabled: false}
""",
    )
    assert report.counts["dids"].created == 3  # type: ignore[attr-defined]
    assert dids_table() == [
        ("442071230000", "", "acme", "did", None, "", 5060, "udp", "", "442071234567",
         Decimal(0), Decimal(0), False),
        ("442071234567", "", "acme", "account", "alice", "", 5060, "udp", "", "",
         Decimal("0.005"), Decimal(2), True),
        ("442071239900", "442071239999", "acme", "trunk", None, "pbx.acme.test", 5080, "tcp",
         "2001:db8::5", "", Decimal(0), Decimal(0), True),
    ]  # fmt: skip
    assert Account.objects.get(username="bob").extension == "202"
    assert Provider.objects.get(name="carrier-a").inbound_card.name == "inbound-a"  # type: ignore[union-attr]


def test_a_did_changes_target_and_the_old_target_fields_are_cleared(tmp_path: Path) -> None:
    load(tmp_path, BASE + 'dids: [{number: "4420", customer: acme, trunk: "192.0.2.1"}]')
    version = config_version()
    report = load(tmp_path, BASE + 'dids: [{number: "4420", customer: acme, account: bob}]')
    assert report.counts["dids"].updated == 1  # type: ignore[attr-defined]
    did = Did.objects.get(first="4420")
    assert (did.target, did.account.username, did.trunk_host) == ("account", "bob", "")  # type: ignore[union-attr]
    assert config_version() == version + 1


def test_forwards_may_come_before_their_target_in_the_file(tmp_path: Path) -> None:
    load(
        tmp_path,
        BASE
        + """
dids:
  - {number: "4401", customer: acme, forward: "4402"}
  - {number: "4402", customer: acme, forward: "4403"}
  - {number: "4403", customer: acme, account: alice}
""",
    )
    assert Did.objects.count() == 3


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (
            "{number: 4420, customer: acme, account: alice}",
            "dids[0].number: expected a string, got 4420 (quote it: '4420')",
        ),
        (
            '{number: "44x", customer: acme, account: alice}',
            "dids[0] '44x'.number: '44x' is not a number of 1 to 20 digits (E.164 without '+')",
        ),
        (
            '{number: "4420", customer: acme}',
            "dids[0] '4420': give exactly one target: 'account', 'trunk' or 'forward'",
        ),
        (
            '{number: "4420", customer: acme, account: alice, forward: "4421"}',
            "dids[0] '4420': give exactly one target: 'account', 'trunk' or 'forward'",
        ),
        (
            '{number: "4420", first: "4420", customer: acme, account: alice}',
            "dids[0] '4420': give either 'number' or 'first' and 'last', not both",
        ),
        (
            '{first: "4420", last: "442", customer: acme, trunk: "h"}',
            "dids[0] '4420'.last: '442' is not a number as long as '4420' and not below it",
        ),
        (
            '{number: "4420", customer: acme, trunk: "pbx:99999"}',
            "dids[0] '4420'.trunk: port 99999 is not between 1 and 65535",
        ),
        (
            '{number: "4420", customer: acme, trunk: "pbx;transport=sctp"}',
            "dids[0] '4420'.trunk: 'pbx;transport=sctp' is not host[:port][;transport=udp|tcp|tls]",
        ),
        (
            '{number: "4420", customer: acme, account: alice, failover: "h"}',
            "dids[0] '4420'.failover: only a 'trunk' target has a failover",
        ),
        (
            '{number: "4420", customer: acme, account: alice, monthly_price: 1.5}',
            "dids[0] '4420'.monthly_price: 1.5 is not an amount (quote it: '1.50')",
        ),
        (
            '{number: "4420", customer: ghost, account: alice}',
            "dids[0] '4420'.customer: unknown customer 'ghost'",
        ),
        (
            '{number: "4420", customer: acme, account: nobody}',
            "dids[0] '4420'.account: unknown account 'nobody'",
        ),
        (
            '{number: "4420", customer: acme, account: olga}',
            "dids[0] '4420'.account: 'olga' belongs to customer 'other', not 'acme'",
        ),
        (
            '{number: "4420", customer: acme, account: alice, colour: red}',
            "dids[0] '4420': unknown key 'colour'",
        ),
    ],
    ids=[
        "unquoted",
        "not-digits",
        "no-target",
        "two-targets",
        "number-and-range",
        "short-range",
        "bad-port",
        "bad-transport",
        "failover-without-trunk",
        "float-price",
        "unknown-customer",
        "unknown-account",
        "account-of-another",
        "unknown-key",
    ],
)
def test_did_errors_are_reported_with_their_path(tmp_path: Path, entry: str, error: str) -> None:
    # The entry is on the file's line 20, after BASE's 19.
    assert errors_of(tmp_path, BASE + f"dids: [{entry}]") == [f"plan.yaml:20: {error}"]


def test_table_errors_name_the_file_entry_and_change_nothing(tmp_path: Path) -> None:
    acme = factories.customer("keep")
    factories.did(acme, "4430", target="trunk", trunk_host="192.0.2.9")
    version = config_version()
    cases = {
        '[{number: "4401", customer: acme, forward: "4409"}]': (
            "dids[0] '4401'.forward: forwards to 4409, no DID"
        ),
        '[{number: "4401", customer: acme, forward: "4402"},'
        ' {number: "4402", customer: acme, forward: "4401"}]': "forwards in a loop",
        '[{first: "4400", last: "4499", customer: acme, trunk: "h"}]': (
            "number held by range 4400-4499"
        ),
    }
    for dids, error in cases.items():
        found = errors_of(tmp_path, BASE + f"dids: {dids}")
        assert len(found) == 1 and error in found[0], found
    # Nothing of the file was written: not its customers, not its DIDs.
    assert config_version() == version
    assert list(Did.objects.values_list("first", flat=True)) == ["4430"]
    assert not Account.objects.filter(username="alice").exists()


def test_duplicate_numbers_and_extensions_in_the_file(tmp_path: Path) -> None:
    text = BASE.replace('extension: "202"', 'extension: "201"') + (
        'dids: [{number: "4420", customer: acme, account: alice},'
        ' {number: "4420", customer: acme, account: bob}]'
    )
    assert errors_of(tmp_path, text) == [
        "plan.yaml:16: customers[0] 'acme'.accounts[1].extension: duplicate '201'",
        "plan.yaml:20: dids[1] '4420'.number: duplicate '4420'",
    ]


def test_inbound_card_must_be_a_cost_card(tmp_path: Path) -> None:
    text = BASE.replace("inbound_card: inbound-a", "inbound_card: retail")
    assert errors_of(tmp_path, text) == [
        "plan.yaml:10: providers[0] 'carrier-a'.inbound_card: rate card 'retail' is a sell "
        "card, not cost"
    ]


def test_prune_deletes_dids_the_file_leaves_out(tmp_path: Path) -> None:
    load(tmp_path, BASE + 'dids: [{number: "4420", customer: acme, account: alice}]')
    report = load(tmp_path, "prune: true\n" + BASE)
    assert report.counts["dids"].deleted == 1  # type: ignore[attr-defined]
    assert not Did.objects.exists()
