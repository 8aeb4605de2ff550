"""``tollguard load``: valid plans, every validation error (with its line), atomicity, prune,
dry run."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.web import provisioning
from tollguard.web.adapters import PlanChangedError
from tollguard.web.carriers.models import Gateway, Provider
from tollguard.web.core.selectors import config_version
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.customers.services import ha1_digests
from tollguard.web.errors import WebError
from tollguard.web.provisioning import (
    PlanApplyError,
    PlanFileError,
    ProvisioningError,
    load_plan_file,
)
from tollguard.web.provisioning import apply as provisioning_apply
from tollguard.web.rating.models import Rate, RateCard

from . import factories

pytestmark = pytest.mark.usefixtures("db")

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plan.yaml"
REALM = "tollguard.test"

BASE = """
rate_cards:
  - name: retail
    rates:
      - {prefix: "44", price_per_minute: "0.02"}
  - name: cost-a
    kind: cost
    rates:
      - {prefix: "44", price_per_minute: "0.01"}
providers:
  - name: carrier-a
    cost_card: cost-a
    gateways:
      - {name: gw-a1, host: 192.0.2.10}
customers:
  - name: acme
    sell_card: retail
    accounts:
      - {username: alice, password: s3cret}
    acl:
      - {network: 198.51.100.0/24}
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlanFileError) as info:
        load_plan_file(write(tmp_path, text), realm=REALM)
    return list(info.value.errors)


def snapshot() -> dict[str, list[tuple[object, ...]]]:
    return {
        "cards": list(RateCard.objects.values_list("name", "kind", "currency")),
        "rates": list(Rate.objects.values_list("card__name", "prefix", "price_per_minute")),
        "providers": list(Provider.objects.values_list("name", "priority", "cost_card__name")),
        "gateways": list(Gateway.objects.values_list("name", "host", "provider__name")),
        "customers": list(Customer.objects.values_list("name", "enabled", "sell_card__name")),
        "accounts": list(Account.objects.values_list("username", "ha1_sha256")),
        "acl": list(AclEntry.objects.values_list("network", "tech_prefix")),
        "version": [(config_version(),)],
    }


def test_public_names() -> None:
    for name in provisioning.__all__:
        assert hasattr(provisioning, name)
    assert issubclass(PlanFileError, ProvisioningError)
    assert issubclass(PlanApplyError, ProvisioningError)
    assert issubclass(ProvisioningError, WebError)
    assert issubclass(PlanChangedError, WebError)


def test_example_plan_loads_and_is_idempotent() -> None:
    before = config_version()
    report = load_plan_file(EXAMPLE, realm=REALM)
    assert report.changed
    assert report.config_version == before + 1 == config_version()
    assert report.counts["rates"].created == 7
    assert report.counts["dids"].created == 3
    assert report.counts["gateways"].created == 2
    assert report.counts["accounts"].created == 2
    assert report.counts["fraud"].created == 2
    office = Account.objects.get(username="acme-office")
    assert (office.ha1_md5, office.ha1_sha256) == ha1_digests(
        "acme-office", REALM, "change-me-9f2c41", md5=office.allow_md5
    )
    cost = RateCard.objects.get(name="carrier-a-cost")
    assert cost.kind == "cost"
    assert cost.rates.get(prefix="49").effective_from is not None
    acme = Customer.objects.get(name="acme")
    assert list(acme.providers.values_list("name", flat=True)) == ["carrier-a"]
    assert acme.country_code == "44"
    assert (acme.billing_mode, acme.credit_limit, acme.currency) == ("postpaid", 500, "EUR")
    assert report.counts["alerts"].created == 1

    again = load_plan_file(EXAMPLE, realm=REALM)
    assert not again.changed
    assert again.counts["rates"].unchanged == 7
    assert again.counts["dids"].unchanged == 3
    assert again.counts["fraud"].unchanged == 2
    assert config_version() == before + 1
    assert "no change" in again.summary()


def test_summary_lists_counts(tmp_path: Path) -> None:
    report = load_plan_file(write(tmp_path, BASE), realm=REALM)
    text = report.summary()
    assert "customers   1 created, 0 updated, 0 unchanged, 0 deleted" in text
    assert f"configuration version is now {report.config_version}" in text


def test_updates_by_natural_key(tmp_path: Path) -> None:
    load_plan_file(write(tmp_path, BASE), realm=REALM)
    customer_id = Customer.objects.get(name="acme").pk
    changed = BASE.replace(
        "{username: alice, password: s3cret}", "{username: alice, password: n3w}"
    )
    changed = changed.replace("host: 192.0.2.10", "host: 192.0.2.11")
    changed = changed.replace('price_per_minute: "0.02"', 'price_per_minute: "0.03"')
    report = load_plan_file(write(tmp_path, changed), realm=REALM)
    assert report.counts["accounts"].updated == 1
    assert report.counts["gateways"].updated == 1
    assert report.counts["customers"].unchanged == 1
    assert (report.counts["rates"].created, report.counts["rates"].deleted) == (1, 1)
    assert Customer.objects.get(name="acme").pk == customer_id
    assert Gateway.objects.get(name="gw-a1").host == "192.0.2.11"
    assert (
        Account.objects.get(username="alice").ha1_sha256
        == ha1_digests("alice", REALM, "n3w", md5=False)[1]
    )
    assert RateCard.objects.get(name="retail").rates.get().price_per_minute == Decimal("0.03")


def test_account_without_password_keeps_its_digests(tmp_path: Path) -> None:
    load_plan_file(write(tmp_path, BASE), realm=REALM)
    before = Account.objects.get(username="alice").ha1_sha256
    text = BASE.replace("{username: alice, password: s3cret}", "{username: alice, enabled: false}")
    load_plan_file(write(tmp_path, text), realm=REALM)
    account = Account.objects.get(username="alice")
    assert account.ha1_sha256 == before
    assert account.enabled is False


def test_accounts_accept_sha256_only_unless_the_plan_allows_md5(tmp_path: Path) -> None:
    sha256_only = "{username: bob, ha1_sha256: " + '"' + "ab" * 32 + '"}'
    text = BASE.replace(
        "- {username: alice, password: s3cret}",
        f"- {{username: alice, password: s3cret}}\n      - {sha256_only}",
    )
    load_plan_file(write(tmp_path, text), realm=REALM)
    assert list(Account.objects.order_by("username").values_list("allow_md5", flat=True)) == [
        False,
        False,
    ]
    md5_too = text.replace(
        sha256_only,
        '{username: bob, allow_md5: true, ha1_md5: "' + "cd" * 16 + '", '
        'ha1_sha256: "' + "ab" * 32 + '"}',
    )
    load_plan_file(write(tmp_path, md5_too), realm=REALM)
    alice, bob = Account.objects.order_by("username")
    assert (alice.allow_md5, bob.allow_md5) == (False, True)
    assert bob.ha1_md5 == "cd" * 16


def test_md5_digest_is_kept_only_while_the_plan_allows_md5(tmp_path: Path) -> None:
    load_plan_file(write(tmp_path, BASE), realm=REALM)
    assert Account.objects.get(username="alice").ha1_md5 == ""
    # Allowing MD5 later without the password: the MD5 digest was never made.
    without = BASE.replace(
        "{username: alice, password: s3cret}", "{username: alice, allow_md5: true}"
    )
    with pytest.raises(PlanFileError, match=r"accounts\[0\]\.allow_md5: needs 'password'"):
        load_plan_file(write(tmp_path, without), realm=REALM)
    assert Account.objects.get(username="alice").allow_md5 is False
    with_password = BASE.replace(
        "{username: alice, password: s3cret}",
        "{username: alice, password: s3cret, allow_md5: true}",
    )
    load_plan_file(write(tmp_path, with_password), realm=REALM)
    alice = Account.objects.get(username="alice")
    assert alice.ha1_md5 == ha1_digests("alice", REALM, "s3cret", md5=True)[0]
    # Now kept: a later file may leave the password out and keep MD5 allowed.
    assert not load_plan_file(write(tmp_path, without), realm=REALM).changed
    # Digests given for an account without MD5: the MD5 one is not stored, and loading
    # the same file again changes nothing.
    digests = BASE.replace(
        "{username: alice, password: s3cret}",
        "{username: alice, ha1_md5: " + '"' + "cd" * 16 + '", ha1_sha256: "' + "ab" * 32 + '"}',
    )
    load_plan_file(write(tmp_path, digests), realm=REALM)
    assert Account.objects.get(username="alice").ha1_md5 == ""
    assert not load_plan_file(write(tmp_path, digests), realm=REALM).changed


def test_objects_not_in_the_file_are_left_alone(tmp_path: Path) -> None:
    other = factories.customer("other")
    factories.account(other, "zed")
    load_plan_file(write(tmp_path, BASE), realm=REALM)
    assert Customer.objects.filter(name="other").exists()
    assert Account.objects.filter(username="zed").exists()


def test_prune_deletes_what_the_file_does_not_declare(tmp_path: Path) -> None:
    load_plan_file(write(tmp_path, BASE), realm=REALM)
    other = factories.customer("other")
    factories.account(other, "zed")
    factories.acl(other, "192.0.2.0/24")
    stale_card = factories.rate_card("old-cost", kind="cost")
    factories.rate(stale_card, "1", "0.1")
    stale = factories.provider("carrier-z", cost_card=stale_card)
    factories.gateway(stale, "gw-z1")
    before = config_version()
    report = load_plan_file(write(tmp_path, "prune: true\n" + BASE), realm=REALM)
    assert report.pruned
    assert set(Customer.objects.values_list("name", flat=True)) == {"acme"}
    assert set(Account.objects.values_list("username", flat=True)) == {"alice"}
    assert set(Provider.objects.values_list("name", flat=True)) == {"carrier-a"}
    assert set(Gateway.objects.values_list("name", flat=True)) == {"gw-a1"}
    assert set(RateCard.objects.values_list("name", flat=True)) == {"retail", "cost-a"}
    assert list(AclEntry.objects.values_list("network", flat=True)) == ["198.51.100.0/24"]
    deleted = {kind: c.deleted for kind, c in report.counts.items()}
    assert deleted == {
        "rate_cards": 1,
        "rates": 1,
        "providers": 1,
        "gateways": 1,
        "customers": 1,
        "accounts": 1,
        "acl": 1,
        "fraud": 0,
        "alerts": 0,
        "dids": 0,
    }
    assert config_version() == before + 1


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    before = snapshot()
    report = load_plan_file(write(tmp_path, BASE), realm=REALM, dry_run=True)
    assert report.dry_run
    assert report.counts["customers"].created == 1
    assert report.config_version == before["version"][0][0]
    assert snapshot() == before
    assert "dry run, nothing was changed" in report.summary()


def test_csv_rates_file(tmp_path: Path) -> None:
    (tmp_path / "rates.csv").write_text(
        "prefix,destination,price_per_minute,initial_increment,next_increment,effective_from\n"
        "44,UK,0.01,30,6,2026-02-01\n"
        "33,France,0.015,,,\n"
    )
    load_plan_file(write(tmp_path, "rate_cards:\n  - name: c\n    file: rates.csv\n"), realm=REALM)
    rates = {r.prefix: r for r in Rate.objects.filter(card__name="c")}
    assert rates["44"].initial_increment == 30
    assert rates["44"].effective_from is not None
    assert rates["44"].effective_from.isoformat() == "2026-02-01T00:00:00+00:00"
    assert (rates["33"].initial_increment, rates["33"].next_increment) == (60, 60)
    assert rates["33"].price_per_minute == Decimal("0.015")


def test_empty_file_is_a_valid_empty_plan(tmp_path: Path) -> None:
    report = load_plan_file(write(tmp_path, ""), realm=REALM)
    assert not report.changed


# Every error, quoted.

ERROR_CASES = [
    (
        "duplicate-username",
        """
        customers:
          - name: a
            accounts: [{username: alice, password: x}]
          - name: b
          - name: acme
            accounts: [{username: alice, password: y}]
        """,
        ["plan.yaml:7: customers[2] 'acme'.accounts[0].username: duplicate 'alice'"],
    ),
    (
        "csv-bad-decimal",
        None,  # built from a CSV file in the test
        ["r.csv:3: rate_cards[0] 'c'.rates: price_per_minute 'abc' is not a decimal"],
    ),
    (
        "inline-rate-errors",
        """
        rate_cards:
          - name: r
            rates:
              - {prefix: "4x", price_per_minute: "0.1"}
              - {prefix: "44", price_per_minute: "-1", next_increment: 0}
              - {prefix: "45", price_per_minute: "0.1234567"}
              - {prefix: "46", price_per_minute: "0.1", effective_from: "2026-02-01",
                 effective_until: "2026-01-01"}
              - {prefix: "47", price_per_minute: "0.1", colour: red}
              - {prefix: "47", price_per_minute: "0.1"}
              - {destination: x}
        """,
        [
            "plan.yaml:5: rate_cards[0] 'r'.rates[0]: prefix '4x' is not a string of digits",
            "plan.yaml:6: rate_cards[0] 'r'.rates[1]: price_per_minute '-1' is negative",
            "plan.yaml:6: rate_cards[0] 'r'.rates[1]: next_increment 0 is not a whole number "
            "of seconds >= 1",
            "plan.yaml:7: rate_cards[0] 'r'.rates[2]: price_per_minute '0.1234567' "
            "has more than 6 decimal places",
            "plan.yaml:8: rate_cards[0] 'r'.rates[3]: effective_until is not after effective_from",
            "plan.yaml:10: rate_cards[0] 'r'.rates[4]: unknown key 'colour'",
            "plan.yaml:12: rate_cards[0] 'r'.rates[6]: prefix is required",
            "plan.yaml:12: rate_cards[0] 'r'.rates[6]: price_per_minute is required",
            "plan.yaml:11: rate_cards[0] 'r'.rates[5].prefix: duplicate '47'",
        ],
    ),
    (
        "card-fields",
        """
        rate_cards:
          - name: r
            currency: euro
            rounding: sideways
            decimals: 9
            kind: both
            rates: []
            file: x.csv
          - name: r
          - {currency: EUR}
        """,
        [
            "plan.yaml:4: rate_cards[0] 'r'.currency: 'euro' is not an ISO 4217 code",
            "plan.yaml:5: rate_cards[0] 'r'.rounding: 'sideways' is not one of "
            "half_up, half_even, up, down, ceiling",
            "plan.yaml:6: rate_cards[0] 'r'.decimals: 9 is not between 0 and 6",
            "plan.yaml:7: rate_cards[0] 'r'.kind: 'both' is not one of sell, cost",
            "plan.yaml:3: rate_cards[0] 'r': give either 'rates' or 'file', not both",
            "plan.yaml:11: rate_cards[2].name: required",
            "plan.yaml:10: rate_cards[1] 'r'.name: duplicate 'r'",
        ],
    ),
    (
        "missing-csv",
        """
        rate_cards:
          - {name: r, file: nowhere.csv}
        """,
        [
            "plan.yaml:3: rate_cards[0] 'r'.file: cannot read '{tmp}/nowhere.csv' "
            "(No such file or directory)"
        ],
    ),
    (
        "provider-and-gateways",
        """
        providers:
          - name: p
            cost_card: retail-nowhere
            priority: high
            gateways:
              - {name: g1, host: 192.0.2.1, port: 70000, transport: sctp, add_prefix: "x1"}
              - {name: g1}
          - name: p
            enabled: "yes"
        """,
        [
            "plan.yaml:5: providers[0] 'p'.priority: expected an integer, got 'high'",
            "plan.yaml:7: providers[0] 'p'.gateways[0] 'g1'.port: 70000 is not between 1 and 65535",
            "plan.yaml:7: providers[0] 'p'.gateways[0] 'g1'.transport: 'sctp' is not one of "
            "udp, tcp, tls",
            "plan.yaml:7: providers[0] 'p'.gateways[0] 'g1'.add_prefix: "
            "'x1' is not digits, '#', '*' with an optional '+'",
            "plan.yaml:8: providers[0] 'p'.gateways[1] 'g1'.host: required",
            "plan.yaml:10: providers[1] 'p'.enabled: expected true or false, got 'yes'",
            "plan.yaml:9: providers[1] 'p'.name: duplicate 'p'",
            "plan.yaml:8: providers[0] 'p'.gateways[1] 'g1'.name: duplicate 'g1'",
            "plan.yaml:4: providers[0] 'p'.cost_card: unknown rate card 'retail-nowhere'",
        ],
    ),
    (
        "customer-fields",
        """
        customers:
          - name: c
            strategy: cheapest
            max_call_duration_s: 0
            numbering: {country_code: 44, international_prefix: "0x", area: "1"}
            accounts:
              - {username: "bad user", password: x}
              - {username: u2, password: x, ha1_md5: "00000000000000000000000000000000"}
              - {username: u3, ha1_md5: "00000000000000000000000000000000"}
              - {username: u4, ha1_sha256: "ABC"}
              - {username: u5, password: ""}
            acl:
              - {network: 10.0.0.7/24}
              - {network: 10.0.0.0/24, tech_prefix: 12}
              - {network: 10.1.0.0/24}
              - {network: 10.1.0.0/24}
          - just-a-string
        """,
        [
            "plan.yaml:4: customers[0] 'c'.strategy: 'cheapest' is not one of lcr, priority, "
            "weight",
            "plan.yaml:5: customers[0] 'c'.max_call_duration_s: 0 is not >= 1",
            "plan.yaml:6: customers[0] 'c'.numbering: unknown key 'area'",
            "plan.yaml:6: customers[0] 'c'.numbering.country_code: expected a string, got 44 "
            "(quote it: '44')",
            "plan.yaml:6: customers[0] 'c'.numbering.international_prefix: '0x' is not a "
            "string of digits",
            "plan.yaml:8: customers[0] 'c'.accounts[0].username: 'bad user' is not a valid SIP "
            "user name",
            "plan.yaml:9: customers[0] 'c'.accounts[1]: give either 'password' or HA1 "
            "digests, not both",
            "plan.yaml:10: customers[0] 'c'.accounts[2].ha1_sha256: required with ha1_md5",
            "plan.yaml:11: customers[0] 'c'.accounts[3].ha1_sha256: 'ABC' is not 64 lower-case "
            "hex digits",
            "plan.yaml:12: customers[0] 'c'.accounts[4].password: must not be empty",
            "plan.yaml:14: customers[0] 'c'.acl[0].network: '10.0.0.7/24' is not an IP network "
            "in CIDR form",
            "plan.yaml:15: customers[0] 'c'.acl[1].tech_prefix: expected a string, got 12 "
            "(quote it: '12')",
            "plan.yaml:18: customers[1]: expected a mapping, got 'just-a-string'",
            "plan.yaml:17: customers[0] 'c'.acl[3].network: duplicate '10.1.0.0/24'",
        ],
    ),
    (
        "top-level",
        """
        prune: maybe
        routes: []
        customers: {name: x}
        """,
        [
            "plan.yaml:3: (file): unknown key 'routes'",
            "plan.yaml:2: (file).prune: expected true or false, got 'maybe'",
            "plan.yaml:4: (file).customers: expected a list, got a mapping",
        ],
    ),
    (
        "not-yaml",
        "customers: [\n",
        [
            "plan.yaml:2: (file): not valid YAML: expected the node content, but found "
            "'<stream end>'"
        ],
    ),
    (
        "references",
        """
        rate_cards:
          - {name: sell-card}
          - {name: cost-card, kind: cost}
        providers:
          - {name: p, cost_card: sell-card}
          - {name: q, cost_card: nowhere}
        customers:
          - name: c
            sell_card: cost-card
            providers: [p, ghost]
            accounts: [{username: newbie}]
        """,
        [
            "plan.yaml:6: providers[0] 'p'.cost_card: rate card 'sell-card' is a sell card, "
            "not cost",
            "plan.yaml:7: providers[1] 'q'.cost_card: unknown rate card 'nowhere'",
            "plan.yaml:10: customers[0] 'c'.sell_card: rate card 'cost-card' is a cost card, "
            "not sell",
            "plan.yaml:11: customers[0] 'c'.providers[1]: unknown provider 'ghost'",
            "plan.yaml:12: customers[0] 'c'.accounts[0]: a new account needs 'password' or "
            "HA1 digests",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES]
)
def test_errors_are_reported_with_their_line_and_path(
    tmp_path: Path, text: str | None, expected: list[str]
) -> None:
    if text is None:
        (tmp_path / "r.csv").write_text("prefix,price_per_minute\n44,0.1\n33,abc\n")
        text = "rate_cards:\n  - name: c\n    file: r.csv\n"
    got = errors_of(tmp_path, text)
    assert got == [line.replace("{tmp}", str(tmp_path)) for line in expected]


def test_csv_header_errors(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("prefix,cost\n44,0.1\n")
    got = errors_of(tmp_path, "rate_cards:\n  - name: c\n    file: r.csv\n")
    assert got == [
        "r.csv:1: rate_cards[0] 'c'.rates: unknown column 'cost'; missing column 'price_per_minute'"
    ]


def test_ownership_conflicts_with_the_database(tmp_path: Path) -> None:
    other = factories.customer("other")
    factories.account(other, "alice")
    factories.acl(other, "198.51.100.0/24")
    factories.gateway(factories.provider("carrier-z"), "gw-a1")
    got = errors_of(tmp_path, BASE)
    assert got == [
        "plan.yaml:14: providers[0] 'carrier-a'.gateways[0] 'gw-a1'.name: already belongs to "
        "provider 'carrier-z'",
        "plan.yaml:19: customers[0] 'acme'.accounts[0].username: 'alice' already belongs to "
        "customer 'other'",
        "plan.yaml:21: customers[0] 'acme'.acl[0].network: '198.51.100.0/24' already belongs "
        "to customer 'other'",
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError) as info:
        load_plan_file(tmp_path / "missing.yaml", realm=REALM)
    assert info.value.errors == (
        f"(file): cannot read '{tmp_path / 'missing.yaml'}' (No such file or directory)",
    )


def test_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    load_plan_file(write(tmp_path, BASE), realm=REALM)
    before = snapshot()
    bad = BASE.replace("name: acme", "name: acme\n    enabled: false") + (
        "  - name: broken\n    sell_card: nowhere\n"
    )
    bad = bad.replace('price_per_minute: "0.02"', 'price_per_minute: "0.05"')
    with pytest.raises(PlanFileError, match="unknown rate card 'nowhere'"):
        load_plan_file(write(tmp_path, bad), realm=REALM)
    assert snapshot() == before


def test_a_database_failure_rolls_back_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_plan_file(write(tmp_path, BASE), realm=REALM)
    before = snapshot()
    original = provisioning_apply._upsert

    def failing(
        model: type, lookup: dict[str, object], values: dict[str, object], *args: Any, **kw: Any
    ) -> object:
        # A refusal from no entry of the file (as a prune's could be): no line to tell.
        if model is AclEntry:
            customer = Customer.objects.get(name="acme")
            AclEntry(customer=customer, network="not a network").full_clean()
        return original(model, lookup, values, *args, **kw)

    monkeypatch.setattr(provisioning_apply, "_upsert", failing)
    changed = BASE.replace('price_per_minute: "0.02"', 'price_per_minute: "0.05"').replace(
        "name: acme", "name: acme\n    enabled: false"
    )
    with pytest.raises(PlanApplyError) as info:
        load_plan_file(write(tmp_path, changed), realm=REALM)
    assert info.value.errors[0].startswith("(database): network:")
    assert snapshot() == before


def test_files_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_bytes(b"prefix,price_per_minute\n44,0.1\xff\n")
    got = errors_of(tmp_path, "rate_cards:\n  - name: c\n    file: r.csv\n")
    assert len(got) == 1
    assert got[0].startswith("plan.yaml:3: rate_cards[0] 'c'.file: r.csv is not a UTF-8 CSV file (")
    plan = tmp_path / "latin1.yaml"
    plan.write_bytes(b"customers:\n  - name: caf\xe9\n")
    with pytest.raises(PlanFileError) as info:
        load_plan_file(plan, realm=REALM)
    assert info.value.errors == (
        "latin1.yaml:2: (file): not UTF-8 text (invalid continuation byte)",
    )


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("sip.example.net", True),
        ("192.0.2.1", True),
        ("2001:db8::1", True),
        ("[2001:db8::1]", True),
        ("sip://x", False),
        ("a b", False),
    ],
    ids=["name", "v4", "v6", "v6-brackets", "uri", "space"],
)
def test_gateway_host(tmp_path: Path, host: str, ok: bool) -> None:
    text = f"providers:\n  - name: p\n    gateways:\n      - {{name: g, host: '{host}'}}\n"
    if ok:
        load_plan_file(write(tmp_path, text), realm=REALM)
        assert Gateway.objects.get(name="g").host == host
    else:
        assert errors_of(tmp_path, text) == [
            f"plan.yaml:4: providers[0] 'p'.gateways[0] 'g'.host: {host!r} is not a host name "
            "or IP address"
        ]


def test_value_and_reference_errors_are_reported_together(tmp_path: Path) -> None:
    got = errors_of(
        tmp_path,
        """
        customers:
          - 42
          - name: x
            sell_card: nope
            providers: [7, ghost]
            accounts: [{username: "a b", password: 5}, {username: fresh}]
        """,
    )
    assert got == [
        "plan.yaml:3: customers[0]: expected a mapping, got 42",
        "plan.yaml:6: customers[1] 'x'.providers[0]: expected a string, got 7 (quote it: '7')",
        "plan.yaml:7: customers[1] 'x'.accounts[0].username: 'a b' is not a valid SIP user name",
        "plan.yaml:7: customers[1] 'x'.accounts[0].password: expected a string, got 5 "
        "(quote it: '5')",
        "plan.yaml:5: customers[1] 'x'.sell_card: unknown rate card 'nope'",
        "plan.yaml:6: customers[1] 'x'.providers[1]: unknown provider 'ghost'",
        "plan.yaml:7: customers[1] 'x'.accounts[1]: a new account needs 'password' or HA1 digests",
    ]
