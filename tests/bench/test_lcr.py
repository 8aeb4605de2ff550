from __future__ import annotations

import pytest

from tollguard.bench import lcr
from tollguard.bench import rating as rating_bench


def test_lcr_small_run_reports_every_field() -> None:
    result = lcr.run(prefixes=3_000, lookups=2_000, seed=3)
    assert result["name"] == "lcr"
    assert result["prefixes"] == 3_000
    assert result["lookups"] == 2_000
    # Nine numbers in ten start with a country code of the deck, whose bare code is a prefix.
    assert 0.85 <= result["hit_ratio"] <= 1.0
    assert result["lookup_us"] > 0
    assert result["lookup_cpu_us"] >= 0
    assert result["build_s"] >= 0
    assert isinstance(result["index_mb"], float)


def test_lcr_is_reproducible_for_a_seed() -> None:
    first = lcr.run(prefixes=500, lookups=500, seed=9)
    second = lcr.run(prefixes=500, lookups=500, seed=9)
    assert first["hit_ratio"] == second["hit_ratio"]


@pytest.mark.parametrize("calls", [1, 500], ids=["one", "some"])
def test_rating_bench(calls: int) -> None:
    result = rating_bench.run(calls=calls)
    assert result["name"] == "rating"
    assert result["calls"] == calls
    assert result["ratings_per_s"] > 0
