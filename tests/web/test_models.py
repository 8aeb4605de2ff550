"""Models and services: HA1 digests, ACL networks, the configuration version."""

from __future__ import annotations

import hashlib
import importlib
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from tollguard.domain.plan import Rate
from tollguard.web.core.models import ConfigVersion
from tollguard.web.core.selectors import config_version
from tollguard.web.core.services import bump_config_version, config_batch
from tollguard.web.customers.models import Account, AclEntry, Customer
from tollguard.web.customers.services import ha1_digests, set_sip_password
from tollguard.web.rating.services import RateSync, replace_rates, sync_rates

from . import factories

pytestmark = pytest.mark.usefixtures("db")


def test_ha1_md5_matches_the_rfc_2617_example() -> None:
    # RFC 2617 §3.5: user Mufasa, realm testrealm@host.com, password "Circle Of Life".
    md5, _ = ha1_digests("Mufasa", "testrealm@host.com", "Circle Of Life", md5=True)
    assert md5 == "939e7578ed9e3c518a452acee763bce9"


def test_ha1_sha256_is_over_username_realm_password() -> None:
    _, sha256 = ha1_digests("Mufasa", "http-auth@example.org", "Circle of Life", md5=True)
    assert sha256 == hashlib.sha256(b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
    assert len(sha256) == 64


def test_set_sip_password_stores_only_digests() -> None:
    customer = factories.customer()
    account = Account(customer=customer, username="bob")
    set_sip_password(account, "correct horse", "example.net")
    stored = Account.objects.get(username="bob")
    assert (stored.ha1_md5, stored.ha1_sha256) == ha1_digests(
        "bob", "example.net", "correct horse", md5=False
    )
    assert "correct horse" not in {f for f in vars(stored).values() if isinstance(f, str)}


def test_set_sip_password_keeps_md5_only_when_allowed() -> None:
    customer = factories.customer()
    account = Account(customer=customer, username="dave", allow_md5=True)
    set_sip_password(account, "pw-one", "example.net")
    stored = Account.objects.get(username="dave")
    assert (stored.ha1_md5, stored.ha1_sha256) == ha1_digests(
        "dave", "example.net", "pw-one", md5=True
    )
    assert len(stored.ha1_md5) == 32


def test_account_save_forgets_md5_when_not_allowed() -> None:
    account = factories.account(factories.customer(), "erin", allow_md5=True)
    assert account.ha1_md5
    account.allow_md5 = False
    account.save(update_fields=["allow_md5"])  # the digest goes with it all the same
    assert Account.objects.get(pk=account.pk).ha1_md5 == ""


def test_migration_forgets_unused_md5_digests() -> None:
    from django.apps import apps

    migration = importlib.import_module(
        "tollguard.web.customers.migrations.0003_account_forget_unused_md5"
    )
    customer = factories.customer()
    kept = factories.account(customer, "frank", allow_md5=True)
    unused = factories.account(customer, "grace")
    # A digest stored before this release, past Account.save.
    Account.objects.filter(pk=unused.pk).update(ha1_md5="0" * 32)
    migration.forget_unused_md5(apps, None)
    assert Account.objects.get(pk=unused.pk).ha1_md5 == ""
    assert Account.objects.get(pk=kept.pk).ha1_md5 == kept.ha1_md5


def test_set_sip_password_replaces_the_digests() -> None:
    account = factories.account(factories.customer(), "carol", "old")
    set_sip_password(account, "new", factories.REALM)
    account.refresh_from_db()
    assert account.ha1_sha256 == ha1_digests("carol", factories.REALM, "new", md5=False)[1]


def test_set_sip_password_refuses_an_empty_password() -> None:
    account = factories.account(factories.customer())
    with pytest.raises(ValueError, match="must not be empty"):
        set_sip_password(account, "", factories.REALM)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("10.1.0.0/16", "10.1.0.0/16"),
        ("192.0.2.7", "192.0.2.7/32"),
        (" 198.51.100.0/24 ", "198.51.100.0/24"),
        ("2001:DB8:0:0::/64", "2001:db8::/64"),
        ("2001:db8::1", "2001:db8::1/128"),
    ],
    ids=["v4-net", "v4-host", "spaces", "v6-net", "v6-host"],
)
def test_acl_network_is_stored_normalized(given: str, stored: str) -> None:
    entry = factories.acl(factories.customer(), given)
    assert AclEntry.objects.values_list("network", flat=True).get(pk=entry.pk) == stored
    assert AclEntry.objects.filter(network=given).exists()


@pytest.mark.parametrize(
    "given",
    ["10.0.0.7/24", "300.0.0.0/8", "example.com", "10.0.0.0/33"],
    ids=["host-bits", "bad-octet", "name", "bad-length"],
)
def test_acl_network_rejects_non_networks(given: str) -> None:
    entry = AclEntry(customer=factories.customer(), network=given)
    with pytest.raises(ValidationError, match="not an IP network"):
        entry.full_clean()
    with pytest.raises(ValueError, match="not an IP network"), transaction.atomic():
        entry.save()


def test_acl_network_and_tech_prefix_are_unique() -> None:
    factories.acl(factories.customer("a"), "192.0.2.0/24", "11")
    factories.acl(factories.customer("b"), "192.0.2.0/24", "22")
    entry = AclEntry(customer=factories.customer("c"), network="192.0.2.0/24", tech_prefix="11")
    with pytest.raises(ValidationError, match="already exists"):
        entry.full_clean()


def test_account_username_is_unique() -> None:
    factories.account(factories.customer("a"), "dave")
    duplicate = Account(
        customer=factories.customer("b"), username="dave", ha1_md5="0" * 32, ha1_sha256="0" * 64
    )
    with pytest.raises(ValidationError, match="already exists"):
        duplicate.full_clean()


# The configuration version.


def test_every_configuration_save_and_delete_bumps_the_version() -> None:
    start = config_version()
    card = factories.rate_card()
    factories.rate(card, "44", "0.01")
    provider = factories.provider(cost_card=None)
    gateway = factories.gateway(provider)
    customer = factories.customer(sell_card=card)
    account = factories.account(customer)
    entry = factories.acl(customer, "192.0.2.0/24")
    assert config_version() == start + 7
    for row in (entry, account, gateway):
        row.delete()
    assert config_version() == start + 10


def test_m2m_changes_bump_the_version() -> None:
    customer = factories.customer()
    provider = factories.provider()
    before = config_version()
    customer.providers.add(provider)
    assert config_version() == before + 1
    customer.providers.clear()
    assert config_version() == before + 2


def test_unsaved_reads_do_not_bump_the_version() -> None:
    factories.customer()
    before = config_version()
    list(Account.objects.all())
    assert config_version() == before


def test_config_batch_bumps_once() -> None:
    before = config_version()
    with config_batch():
        card = factories.rate_card()
        factories.customer("a", sell_card=card)
        factories.customer("b", sell_card=card)
        assert config_version() == before
    assert config_version() == before + 1


def test_config_batch_without_changes_does_not_bump() -> None:
    before = config_version()
    with config_batch():
        pass
    assert config_version() == before


def test_config_batch_rolls_back_with_its_changes() -> None:
    before = config_version()
    with pytest.raises(RuntimeError), config_batch():
        factories.customer()
        raise RuntimeError("boom")
    assert config_version() == before
    assert not Customer.objects.exists()


def test_bump_returns_the_new_version() -> None:
    before = config_version()
    assert bump_config_version() == before + 1


def test_bulk_rate_replacement_bumps_once() -> None:
    card = factories.rate_card()
    before = config_version()
    written = replace_rates(card, [Rate(str(p), "", Decimal("0.01")) for p in range(1, 50)])
    assert written == 49
    assert card.rates.count() == 49
    assert config_version() == before + 1


def test_sync_rates_touches_only_changed_rows() -> None:
    card = factories.rate_card()
    kept = factories.rate(card, "44", "0.01")
    factories.rate(card, "33", "0.02")
    before = config_version()
    result = sync_rates(
        card,
        [
            Rate("44", "", Decimal("0.010000")),  # same value, other scale
            Rate("33", "", Decimal("0.03")),
            Rate("49", "", Decimal("0.04")),
        ],
    )
    assert result == RateSync(created=2, deleted=1, unchanged=1)
    assert card.rates.get(prefix="44").pk == kept.pk
    assert dict(card.rates.values_list("prefix", "price_per_minute")) == {
        "44": Decimal("0.01"),
        "33": Decimal("0.03"),
        "49": Decimal("0.04"),
    }
    assert config_version() == before + 1


def test_sync_rates_without_change_does_not_bump() -> None:
    card = factories.rate_card()
    factories.rate(card, "44", "0.01")
    before = config_version()
    assert sync_rates(card, [Rate("44", "", Decimal("0.01"))]) == RateSync(0, 0, 1)
    assert config_version() == before


def test_bump_records_when_the_configuration_changed() -> None:
    first = ConfigVersion.objects.get().changed_at
    bump_config_version()
    assert ConfigVersion.objects.get().changed_at > first


def test_bump_recreates_a_missing_row() -> None:
    ConfigVersion.objects.all().delete()
    assert config_version() == 0
    assert bump_config_version() == 1
