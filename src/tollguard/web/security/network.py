"""Client addresses and address rules: CIDR allow-lists and optional country rules.

The web process is served directly (no reverse proxy), so ``REMOTE_ADDR`` is the
peer's address; no forwarding header is ever trusted.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    import geoip2.database

logger = logging.getLogger(__name__)

type Address = ipaddress.IPv4Address | ipaddress.IPv6Address
type Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRuleError(ValueError):
    """A CIDR or country code in the settings that cannot be used; names the setting."""


def client_address(request: HttpRequest) -> str:
    """The peer's address as text (``"-"`` when the server did not give one)."""
    return str(request.META.get("REMOTE_ADDR") or "-")


def parse_address(text: str) -> Address | None:
    """``text`` as an address, IPv4-mapped IPv6 unwrapped; ``None`` when it is not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str], setting: str) -> tuple[Network, ...]:
    """Parse CIDR entries (a bare address means a single host)."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise AddressRuleError(f"{setting}: {entry!r} is not a CIDR network") from exc
    return tuple(networks)


def parse_countries(entries: Iterable[str], setting: str) -> frozenset[str]:
    codes: set[str] = set()
    for entry in entries:
        code = entry.strip().upper()
        if len(code) != 2 or not code.isalpha():
            raise AddressRuleError(f"{setting}: {entry!r} is not a two-letter country code")
        codes.add(code)
    return frozenset(codes)


@dataclass(frozen=True, slots=True)
class CountryRules:
    """Country rules: a deny list, then an allow list (empty: every country)."""

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, country: str | None) -> bool:
        # An address the database does not know (None) passes only when no allow list
        # is set: with an allow list, unknown means "not shown to be allowed".
        if country is not None and country in self.deny:
            return False
        if self.allow:
            return country is not None and country in self.allow
        return True


@dataclass(frozen=True, slots=True)
class AddressRule:
    """Who may reach one area (the admin or the API)."""

    networks: tuple[Network, ...]
    countries: CountryRules = CountryRules()

    def permits(self, address: Address | None, country: str | None = None) -> bool:
        if address is None:
            return False
        if not any(address in network for network in self.networks):
            return False
        return self.countries.permits(country)


class CountryLookup:
    """Country of an address from a MaxMind country database (GeoIP2/GeoLite2)."""

    def __init__(self, path: str) -> None:
        import geoip2.database

        self._reader: geoip2.database.Reader = geoip2.database.Reader(path)

    def country(self, address: Address) -> str | None:
        import geoip2.errors

        try:
            iso = self._reader.country(str(address)).country.iso_code
        except geoip2.errors.AddressNotFoundError:
            return None
        return iso.upper() if iso else None

    def close(self) -> None:
        self._reader.close()


@lru_cache(maxsize=4)
def country_lookup(path: str) -> CountryLookup:
    """One reader per database file for the life of the process."""
    logger.info("country database %s opened", path)
    return CountryLookup(path)
