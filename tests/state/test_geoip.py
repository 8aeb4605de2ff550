"""Source countries from a MaxMind country database written for the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollguard.domain.fraud import SourceCountries
from tollguard.state.geoip import MaxMindCountries


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    for network, iso in (("81.2.69.0/24", "gb"), ("2001:db8::/32", "SE")):
        writer.insert_network(IPSet([network]), {"country": {"iso_code": iso}})
    writer.insert_network(IPSet(["89.160.20.0/24"]), {"registered_country": {"iso_code": "DE"}})
    path = tmp_path_factory.mktemp("geoip") / "country.mmdb"
    writer.to_db_file(str(path))
    return str(path)


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("81.2.69.160", "GB"),
        ("::ffff:81.2.69.160", "GB"),
        ("2001:db8::1", "SE"),
        ("89.160.20.5", "DE"),
        ("192.0.2.1", None),
        ("not-an-address", None),
    ],
)
def test_country_of(database: str, address: str, country: str | None) -> None:
    lookup: SourceCountries = MaxMindCountries(database)
    assert lookup.country(address) == country
    assert lookup.country(address) == country  # remembered


def test_a_missing_database_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        MaxMindCountries(str(tmp_path / "none.mmdb"))
