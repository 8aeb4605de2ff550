"""``tollguard bench calls --shield compare``: both figures in one run, and their shape."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
import yaml

from tollguard.bench import calls

from .test_calls_smoke import MAX_RATE, assert_measured, smoke_run

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")


def test_shield_cost_compares_the_two_figures() -> None:
    on: dict[str, Any] = {"cps": 900, "cpu_ms_per_call": 1.1}
    off: dict[str, Any] = {"cps": 1000, "cpu_ms_per_call": 1.0}
    assert calls.shield_cost(on, off) == {"cps_ratio": 0.9, "cpu_ms_per_call_added": 0.1}
    # A system that did not run gives no comparison rather than a made-up one.
    failed: dict[str, Any] = {"cps": None, "cpu_ms_per_call": None}
    assert calls.shield_cost(failed, off) == {"cps_ratio": None, "cpu_ms_per_call_added": None}
    assert calls.shield_cost(on, {"cps": 0, "cpu_ms_per_call": None})["cps_ratio"] is None


def test_an_unknown_shield_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="shield must be one of on, off, compare"):
        calls.run(shield="half", systems=["tollguard"])


def test_the_guarded_plan_sets_every_limit_out_of_reach() -> None:
    plan = calls.bench_plan(5070, auth="digest", username="b", password="p", fraud=True)
    (customer,) = plan["customers"]
    limits = customer["fraud"]["limits"]
    assert set(limits) == {
        "max_concurrent", "calls_per_second", "calls_per_hour", "calls_per_day",
        "spend_per_hour", "spend_per_day", "max_price_per_minute",
    }  # fmt: skip
    assert customer["accounts"][0]["fraud"]["velocity"]["action"] == "alert"
    acl = calls.bench_plan(5070, auth="acl", username="b", password="p", caller_host="127.0.0.2")
    assert acl["customers"][0]["acl"] == [{"network": "127.0.0.2/32"}]
    assert "fraud" not in acl["customers"][0]
    yaml.safe_dump(plan)  # what tollguard load reads


@pytest.mark.integration
@needs_sipp
def test_compare_reports_both_figures_in_one_run() -> None:
    result = smoke_run(systems=["tollguard"], auth="acl", shield="compare")
    json.dumps(result)
    assert (result["shield"], result["auth"]) == ("compare", "acl")
    # The top-level figures are the shield's: calls from an address on no allow-list
    # went through every check, and none was refused.
    assert_measured(result, max_rate=MAX_RATE)
    assert_measured(result["shield_off"], max_rate=MAX_RATE)
    cost = result["shield_cost"]
    assert cost["cps_ratio"] == round(result["cps"] / result["shield_off"]["cps"], 3)
    expected_added = result["cpu_ms_per_call"] - result["shield_off"]["cpu_ms_per_call"]
    assert cost["cpu_ms_per_call_added"] == round(expected_added, 3)
