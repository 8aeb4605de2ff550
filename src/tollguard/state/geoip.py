"""The country of a source address from the MaxMind database the web app already uses
(``web.geoip_database``: GeoIP2 or GeoLite2 Country, or City, ``.mmdb``).

Implements :class:`tollguard.domain.fraud.SourceCountries`. The database is memory-mapped
by ``maxminddb`` (a look-up is a few microseconds, no I/O once the pages are warm), and
answers are remembered per address, since a trunk calls from few addresses.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import maxminddb

__all__ = ["MaxMindCountries"]

logger = logging.getLogger(__name__)

_REMEMBERED = 8192


class MaxMindCountries:
    __slots__ = ("_reader", "_seen")

    def __init__(self, path: str) -> None:
        self._reader = maxminddb.open_database(path, maxminddb.MODE_MMAP)
        self._seen: dict[str, str | None] = {}
        logger.info("country database %s opened for the switch", path)

    def country(self, address: str) -> str | None:
        try:
            return self._seen[address]
        except KeyError:
            pass
        country = self._lookup(address)
        if len(self._seen) >= _REMEMBERED:
            self._seen.clear()
        self._seen[address] = country
        return country

    def _lookup(self, address: str) -> str | None:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return None
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        record: Any = self._reader.get(parsed)
        if not isinstance(record, dict):
            return None
        country = record.get("country") or record.get("registered_country") or {}
        iso = country.get("iso_code") if isinstance(country, dict) else None
        return iso.upper() if isinstance(iso, str) else None

    def close(self) -> None:
        self._reader.close()
