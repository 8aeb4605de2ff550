"""``tollguard bench lcr``: longest-prefix lookups over a large synthetic rate deck.

The deck mimics a carrier's: a few hundred country codes of 1 to 3 digits, each split
into area and mobile ranges of up to 12 digits. Called numbers have 8 to 15 digits;
most start with a country code of the deck, some do not (hit_ratio says how many
found a prefix). Memory is the growth of the process's resident set while the index is
built, so it counts every object the index creates (keys, tables, dict slots) but not
the prefixes and values it is given.
"""

from __future__ import annotations

import gc
import random
import resource
import time
from pathlib import Path
from typing import Any

from tollguard.domain.prefix import PrefixIndex

__all__ = ["run"]

_LONGEST_PREFIX = 12


def run(prefixes: int = 5_000_000, lookups: int = 1_000_000, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    countries = _country_codes(rng)
    deck = _prefixes(rng, countries, prefixes)
    # The prefixes and their values are the index's input, made before measuring.
    pairs = [(prefix, position) for position, prefix in enumerate(deck)]
    numbers = _numbers(rng, countries, lookups)
    gc.collect()
    rss_before = _rss_bytes()
    started = time.perf_counter()
    index: PrefixIndex[int] = PrefixIndex(pairs)
    build_s = time.perf_counter() - started
    gc.collect()
    index_bytes = _rss_bytes() - rss_before
    get = index.get
    hits = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for number in numbers:
        if get(number) is not None:
            hits += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "name": "lcr",
        "prefixes": len(index),
        "lookup_us": round(elapsed / max(lookups, 1) * 1e6, 3),
        # CPU time alone: what the lookup costs when other processes share the cores.
        "lookup_cpu_us": round(cpu / max(lookups, 1) * 1e6, 3),
        "index_mb": round(index_bytes / 1e6, 1),
        "build_s": round(build_s, 2),
        "lookups": lookups,
        "hit_ratio": round(hits / max(lookups, 1), 4),
    }


def _country_codes(rng: random.Random) -> list[str]:
    # Country codes form a prefix-free set: "1", "7", "44", "358".
    codes: list[str] = ["1", "7"]
    while len(codes) < 220:
        code = str(rng.randrange(20, 1000))
        if not any(code.startswith(c) or c.startswith(code) for c in codes):
            codes.append(code)
    return codes


def _prefixes(rng: random.Random, countries: list[str], count: int) -> list[str]:
    deck = dict.fromkeys(countries)
    while len(deck) < count:
        country = rng.choice(countries)
        extra = rng.randint(1, _LONGEST_PREFIX - len(country))
        deck[country + str(rng.randrange(10**extra)).zfill(extra)] = None
    return list(deck)[:count]


def _numbers(rng: random.Random, countries: list[str], count: int) -> list[str]:
    numbers = []
    for _ in range(count):
        size = rng.randint(8, 15)
        # One call in ten goes to a number no country code of the deck covers.
        lead = rng.choice(countries) if rng.random() < 0.9 else str(rng.randint(1, 9))
        rest = size - len(lead)
        numbers.append(lead + str(rng.randrange(10**rest)).zfill(rest))
    return numbers


def _rss_bytes() -> int:
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * resource.getpagesize()
    # Elsewhere only the peak is known; an over-estimate rather than an under-one.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
