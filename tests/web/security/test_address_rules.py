"""Address rules: CIDR allow-lists for the admin and the API, and country rules from a
MaxMind country database (a tiny one written here in the GeoIP2-Country layout)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tollguard.web.security.network import (
    AddressRule,
    AddressRuleError,
    CountryLookup,
    CountryRules,
    parse_address,
    parse_countries,
    parse_networks,
)

from .conftest import ADMIN, tollguard_settings

# The addresses MaxMind's own test database uses for these countries.
SWEDEN = "89.160.20.112"
BRITAIN = "81.2.69.142"
UNKNOWN = "198.51.100.1"


@pytest.fixture(scope="module")
def country_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    for network, iso in (("89.160.20.0/24", "SE"), ("81.2.69.0/24", "GB")):
        writer.insert_network(
            IPSet([network]), {"country": {"iso_code": iso, "names": {"en": iso}}}
        )
    path = tmp_path_factory.mktemp("geoip") / "GeoIP2-Country-Test.mmdb"
    writer.to_db_file(str(path))
    return str(path)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("10.20.30.40", True),
        ("172.31.255.1", True),
        ("192.168.1.1", True),
        ("::1", True),
        ("fd00::1", True),
        ("::ffff:10.0.0.1", True),
        ("203.0.113.5", False),
        ("172.32.0.1", False),
        ("2001:db8::1", False),
        ("not-an-address", False),
    ],
    ids=str,
)
def test_default_admin_allow_list(address: str, allowed: bool) -> None:
    from tollguard.config import WebSettings

    rule = AddressRule(parse_networks(WebSettings().admin_allow, "web.admin_allow"))
    assert rule.permits(parse_address(address)) is allowed


@pytest.mark.parametrize(
    ("rules", "country", "allowed"),
    [
        (CountryRules(), None, True),
        (CountryRules(allow=frozenset({"SE"})), "SE", True),
        (CountryRules(allow=frozenset({"SE"})), "GB", False),
        (CountryRules(allow=frozenset({"SE"})), None, False),
        (CountryRules(deny=frozenset({"GB"})), "GB", False),
        (CountryRules(deny=frozenset({"GB"})), None, True),
        (CountryRules(allow=frozenset({"GB"}), deny=frozenset({"GB"})), "GB", False),
    ],
    ids=[
        "none",
        "allow-hit",
        "allow-miss",
        "allow-unknown",
        "deny-hit",
        "deny-unknown",
        "deny-wins",
    ],
)
def test_country_rules(rules: CountryRules, country: str | None, allowed: bool) -> None:
    assert rules.permits(country) is allowed


def test_bad_entries_name_the_setting() -> None:
    with pytest.raises(AddressRuleError, match=re.escape("web.admin_allow: '10.0.0.0/33'")):
        parse_networks(["10.0.0.0/33"], "web.admin_allow")
    with pytest.raises(AddressRuleError, match=re.escape("web.deny_countries: 'Sweden'")):
        parse_countries(["Sweden"], "web.deny_countries")
    assert parse_countries([" se "], "x") == frozenset({"SE"})


def test_lookup_reads_the_database(country_db: str) -> None:
    lookup = CountryLookup(country_db)
    assert lookup.country(ipaddress.ip_address(SWEDEN)) == "SE"
    assert lookup.country(ipaddress.ip_address(BRITAIN)) == "GB"
    assert lookup.country(ipaddress.ip_address(UNKNOWN)) is None
    lookup.close()


def test_admin_is_refused_outside_the_allow_list(
    hardened: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="tollguard.security"):
        refused = Client(REMOTE_ADDR="203.0.113.5").get(f"{ADMIN}login/")
    assert refused.status_code == 403
    assert Client(REMOTE_ADDR="10.0.0.5").get(f"{ADMIN}login/").status_code == 200
    # The honeypot and other pages are not the admin: reachable from anywhere.
    assert Client(REMOTE_ADDR="203.0.113.5").get("/admin/login/").status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "tollguard.security"]
    assert lines == ["address refused: ip=203.0.113.5 area=admin country=-"]


def test_api_allow_list(hardened: None) -> None:
    narrow = tollguard_settings(api_allow=("192.0.2.0/24",))
    with override_settings(TOLLGUARD=narrow):
        assert Client(REMOTE_ADDR="198.51.100.9").get("/api/v1/").status_code == 403
        assert Client(REMOTE_ADDR="192.0.2.9").get("/api/v1/").status_code == 404


@pytest.mark.parametrize(
    ("countries", "address", "status"),
    [
        ({"allow_countries": ("SE",)}, SWEDEN, 200),
        ({"allow_countries": ("SE",)}, BRITAIN, 403),
        ({"allow_countries": ("SE",)}, UNKNOWN, 403),
        ({"deny_countries": ("GB",)}, BRITAIN, 403),
        ({"deny_countries": ("GB",)}, SWEDEN, 200),
        ({"deny_countries": ("GB",)}, UNKNOWN, 200),
    ],
    ids=["allow-se", "allow-gb", "allow-unknown", "deny-gb", "deny-se", "deny-unknown"],
)
def test_country_rules_on_the_admin(
    hardened: None,
    country_db: str,
    countries: dict[str, tuple[str, ...]],
    address: str,
    status: int,
) -> None:
    web = tollguard_settings(admin_allow=("0.0.0.0/0",), geoip_database=country_db, **countries)
    with override_settings(TOLLGUARD=web):
        assert Client(REMOTE_ADDR=address).get(f"{ADMIN}login/").status_code == status


def test_database_path_must_exist_when_countries_are_set(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CountryLookup(str(tmp_path / "missing.mmdb"))
