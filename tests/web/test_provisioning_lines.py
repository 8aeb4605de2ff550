"""``tollguard load``: every error about an entry names its file and line.

One broken file per section of the plan, each error quoted whole with the line of its
entry or field, the database's refusals included; a refused load changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tollguard.web.core.selectors import config_version
from tollguard.web.customers.models import Account, Customer, Did
from tollguard.web.provisioning import PlanApplyError, PlanFileError, load_plan_file
from tollguard.web.provisioning.errors import Problems
from tollguard.web.rating.models import Rate, RateCard

from . import factories

pytestmark = pytest.mark.usefixtures("db")

REALM = "tollguard.test"

# (id, the plan file from its line 1, the errors). Comments count as lines: they keep
# each case readable without changing what is counted.
CASES = [
    (
        "top-level",
        """\
prune: maybe
customers: []
routes: []
""",
        [
            "plan.yaml:3: (file): unknown key 'routes'",
            "plan.yaml:1: (file).prune: expected true or false, got 'maybe'",
        ],
    ),
    (
        "rate-card",
        """\
rate_cards:
  - name: retail
    currency: EUR
    decimals: 9
  - {name: cost, kind: both}
""",
        [
            "plan.yaml:4: rate_cards[0] 'retail'.decimals: 9 is not between 0 and 6",
            "plan.yaml:5: rate_cards[1] 'cost'.kind: 'both' is not one of sell, cost",
        ],
    ),
    (
        "inline-rates",
        """\
rate_cards:
  - name: retail
    rates:
      - {prefix: "44", price_per_minute: "0.02"}
      - prefix: "33"
        price_per_minute: "abc"
      - {prefix: "44", price_per_minute: "0.03"}
      - {prefix: "49", price_per_minute: "0.1", colour: red}
""",
        [
            "plan.yaml:5: rate_cards[0] 'retail'.rates[1]: price_per_minute 'abc' is not a decimal",
            "plan.yaml:8: rate_cards[0] 'retail'.rates[3]: unknown key 'colour'",
            "plan.yaml:7: rate_cards[0] 'retail'.rates[2].prefix: duplicate '44'",
        ],
    ),
    (
        "provider",
        """\
providers:
  - name: carrier-a
    cost_card: nowhere
    # a lower priority is tried first
    priority: high
""",
        [
            "plan.yaml:5: providers[0] 'carrier-a'.priority: expected an integer, got 'high'",
            "plan.yaml:3: providers[0] 'carrier-a'.cost_card: unknown rate card 'nowhere'",
        ],
    ),
    (
        "gateways",
        """\
providers:
  - name: carrier-a
    gateways:
      - name: gw-1
        host: 192.0.2.1
        port: 70000
      - name: gw-2
        limits:
          max_concurrent: -1
""",
        [
            "plan.yaml:6: providers[0] 'carrier-a'.gateways[0] 'gw-1'.port: 70000 is not "
            "between 1 and 65535",
            "plan.yaml:7: providers[0] 'carrier-a'.gateways[1] 'gw-2'.host: required",
            "plan.yaml:9: providers[0] 'carrier-a'.gateways[1] 'gw-2'.limits.max_concurrent: "
            "-1 is not between 0 and 2147483647",
        ],
    ),
    (
        "customer",
        """\
customers:
  - name: acme
    strategy: cheapest
    sell_card: nowhere
    numbering:
      country_code: 44
    providers: [ghost]
""",
        [
            "plan.yaml:3: customers[0] 'acme'.strategy: 'cheapest' is not one of lcr, "
            "priority, weight",
            "plan.yaml:6: customers[0] 'acme'.numbering.country_code: expected a string, "
            "got 44 (quote it: '44')",
            "plan.yaml:4: customers[0] 'acme'.sell_card: unknown rate card 'nowhere'",
            "plan.yaml:7: customers[0] 'acme'.providers[0]: unknown provider 'ghost'",
        ],
    ),
    (
        "credit-and-alerts",
        """\
customers:
  - name: acme
    credit:
      mode: prepaid
      credit_limit: "50"
    alerts:
      thresholds: ["10"]
      webhook_url: http://example.net/hook
""",
        [
            "plan.yaml:5: customers[0] 'acme'.credit.credit_limit: only a postpaid customer "
            "has a credit limit",
            "plan.yaml:8: customers[0] 'acme'.alerts.webhook_url: 'http://example.net/hook' "
            "is not an https URL",
        ],
    ),
    (
        "accounts",
        """\
customers:
  - name: acme
    accounts:
      - {username: alice, password: s3cret}
      - username: bob
        enabled: true
      - username: alice
        password: again
""",
        [
            "plan.yaml:7: customers[0] 'acme'.accounts[2].username: duplicate 'alice'",
            "plan.yaml:5: customers[0] 'acme'.accounts[1]: a new account needs 'password' "
            "or HA1 digests",
        ],
    ),
    (
        "acl",
        """\
customers:
  - name: acme
    acl:
      - network: 198.51.100.0/24
      - network: 10.0.0.7/24
        tech_prefix: "12"
""",
        [
            "plan.yaml:5: customers[0] 'acme'.acl[1].network: '10.0.0.7/24' is not an IP "
            "network in CIDR form",
        ],
    ),
    (
        "fraud",
        """\
customers:
  - name: acme
    fraud:
      destinations:
        - deny: country CU
        - deny: planet Mars
      quiet_hours:
        - days: "01234"
          start: "25:00"
          end: "06:00"
      velocity: {action: shout}
""",
        [
            "plan.yaml:11: customers[0] 'acme'.fraud.velocity.action: 'shout' is not one of "
            "alert, block, suspend_account, suspend_customer",
            "plan.yaml:6: customers[0] 'acme'.fraud.destinations[1].deny: 'planet': expected "
            "'prefix DIGITS', 'country CODE' or 'kind KIND'",
            "plan.yaml:9: customers[0] 'acme'.fraud.quiet_hours[0].start: expected a time "
            "such as '22:00', got '25:00'",
        ],
    ),
    (
        "dids",
        """\
customers:
  - name: acme
dids:
  - number: "4420"
    customer: acme
    trunk: "pbx:99999"
  - {number: "4421", customer: ghost, forward: "4420"}
""",
        [
            "plan.yaml:6: dids[0] '4420'.trunk: port 99999 is not between 1 and 65535",
            "plan.yaml:7: dids[1] '4421'.customer: unknown customer 'ghost'",
        ],
    ),
    (
        "did-table",
        """\
customers:
  - name: acme
dids:
  - number: "4401"
    customer: acme
    # nothing holds 4409
    forward: "4409"
""",
        ["plan.yaml:7: dids[0] '4401'.forward: forwards to 4409, no DID"],
    ),
    (
        "not-yaml",
        """\
customers:
  - name: acme
    accounts: [
""",
        [
            "plan.yaml:4: (file): not valid YAML: expected the node content, but found "
            "'<stream end>'"
        ],
    ),
]


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path, error: type[Exception] = PlanFileError) -> list[str]:
    with pytest.raises(error) as info:
        load_plan_file(path, realm=REALM)
    return list(info.value.errors)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_each_error_names_the_line_of_its_entry_or_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    assert errors_of(write(tmp_path, text)) == expected


def test_a_csv_rate_file_names_its_own_lines(tmp_path: Path) -> None:
    write(tmp_path, "prefix,price_per_minute\n44,0.1\n33,abc\n44,0.2\n", "rates.csv")
    plan = write(tmp_path, "rate_cards:\n  - name: retail\n    file: rates.csv\n")
    assert errors_of(plan) == [
        "rates.csv:3: rate_cards[0] 'retail'.rates: price_per_minute 'abc' is not a decimal",
        "rates.csv:4: rate_cards[0] 'retail'.rates: duplicate prefix '44' (first on line 2)",
    ]
    write(tmp_path, "prefix,cost\n44,0.1\n", "rates.csv")
    assert errors_of(plan) == [
        "rates.csv:1: rate_cards[0] 'retail'.rates: unknown column 'cost'; "
        "missing column 'price_per_minute'"
    ]


def test_a_plan_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_bytes(b"customers:\n  - name: caf\xe9\n")
    assert errors_of(path) == ["plan.yaml:2: (file): not UTF-8 text (invalid continuation byte)"]


def test_the_loader_that_keeps_lines_builds_no_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"customers:\n  - !!python/object/apply:os.system ['touch {marker}']\n"
    (error,) = errors_of(write(tmp_path, text))
    assert error.startswith(
        "plan.yaml:2: (file): not valid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'"
    )
    assert not marker.exists()


def test_aliases_and_merge_keys_keep_lines(tmp_path: Path) -> None:
    text = """\
gateway: &gw
  port: 70000
providers:
  - name: carrier-a
    gateways:
      - <<: *gw
        name: gw-1
        host: 192.0.2.1
"""
    # The merged key is told where it is written: at the anchor.
    assert errors_of(write(tmp_path, text)) == [
        "plan.yaml:1: (file): unknown key 'gateway'",
        "plan.yaml:2: providers[0] 'carrier-a'.gateways[0] 'gw-1'.port: 70000 is not "
        "between 1 and 65535",
    ]


def test_a_currency_mismatch_names_the_customer_providers_line(tmp_path: Path) -> None:
    text = """\
rate_cards:
  - {name: retail-usd, currency: USD}
  - {name: cost-eur, kind: cost, currency: EUR}
providers:
  - {name: carrier-a, cost_card: cost-eur}
customers:
  - name: shop
    sell_card: retail-usd
    providers: [carrier-a]
"""
    (error,) = errors_of(write(tmp_path, text))
    assert error.startswith(
        "plan.yaml:9: customers[0] 'shop'.providers: customer 'shop' sells in USD: lists "
        "providers whose cost card is in another currency"
    )


# The database's own rules, after the file passed every check of its own.


def snapshot() -> dict[str, object]:
    return {
        "cards": sorted(RateCard.objects.values_list("name", "currency")),
        "rates": sorted(Rate.objects.values_list("card__name", "prefix", "price_per_minute")),
        "customers": sorted(Customer.objects.values_list("name", "sell_card__name")),
        "accounts": sorted(Account.objects.values_list("username", "extension")),
        "dids": sorted(Did.objects.values_list("first", "forward_to")),
        "version": config_version(),
    }


def test_a_model_rule_names_the_entry_and_the_load_changes_nothing(tmp_path: Path) -> None:
    acme = factories.customer("acme")
    zed = factories.account(acme, "zed")
    Account.objects.filter(pk=zed.pk).update(extension="201")
    before = snapshot()
    text = """\
rate_cards:
  - name: retail
    rates:
      - {prefix: "44", price_per_minute: "0.02"}
customers:
  - name: acme
    sell_card: retail
    accounts:
      - username: alice
        password: s3cret
        extension: "201"
"""
    # Applied in file order: the rate card and the customer were written first.
    assert errors_of(write(tmp_path, text), PlanApplyError) == [
        "plan.yaml:9: customers[0] 'acme'.accounts[0]: Another account of this customer "
        "has this extension."
    ]
    assert snapshot() == before


def test_a_model_field_rule_names_the_field(tmp_path: Path) -> None:
    card = factories.rate_card("retail", currency="EUR")
    factories.customer("other", sell_card=card, currency="EUR")
    before = snapshot()
    text = """\
customers:
  - name: acme
rate_cards:
  - name: retail
    currency: USD
"""
    (error,) = errors_of(write(tmp_path, text), PlanApplyError)
    assert error.startswith(
        "plan.yaml:5: rate_cards[0] 'retail'.currency: Customers on this card pay in another "
        "currency than USD: other."
    )
    assert snapshot() == before


def test_a_did_rule_found_on_the_whole_table_changes_nothing(tmp_path: Path) -> None:
    acme = factories.customer("acme")
    factories.did(acme, "4400", last="4499", target="trunk", trunk_host="192.0.2.9")
    before = snapshot()
    text = """\
customers:
  - name: acme
    accounts:
      - {username: alice, password: s3cret}
dids:
  - number: "4450"
    customer: acme
    account: alice
"""
    assert errors_of(write(tmp_path, text)) == [
        "plan.yaml:6: dids[0] '4450'.number: number held by range 4400-4499"
    ]
    assert snapshot() == before


def test_problems_find_the_nearest_line() -> None:
    problems = Problems("plan.yaml")
    problems.mark("customers[0] 'a.b'", 3)
    problems.mark("customers[0] 'a.b'.accounts[1]", 7)
    problems.mark("customers[0] 'a.b'", 99)  # the first mark stays
    assert problems.line_of("customers[0] 'a.b'.accounts[1].username") == 7
    assert problems.line_of("customers[0] 'a.b'.acl") == 3
    assert problems.line_of("customers[1]") is None
    problems.add("customers[0] 'a.b'.acl", "wrong")
    problems.add("(prune)", "no line")
    problems.add("customers[0] 'a.b'", "told", line=5)
    assert list(problems) == [
        "plan.yaml:3: customers[0] 'a.b'.acl: wrong",
        "(prune): no line",
        "plan.yaml:5: customers[0] 'a.b': told",
    ]
