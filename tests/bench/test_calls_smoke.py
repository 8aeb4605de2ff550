"""A quick run of ``tollguard bench calls``: the JSON shape, and calls really completed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.bench import calls, references

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")

MAX_RATE = 10


def smoke_run(**options: Any) -> dict[str, Any]:
    """Two-second holds at 5 and 10 calls a second: about 10 s per system."""
    return calls.run(duration_s=2, start_rate=5, max_rate=MAX_RATE, step=5, settle_s=0.3, **options)


def assert_measured(entry: dict[str, Any], *, max_rate: float) -> None:
    assert "error" not in entry, entry.get("error")
    assert isinstance(entry["cps"], int | float)
    assert 0 < entry["cps"] <= max_rate
    assert entry["failed"] == 0
    assert entry["calls"] == round(entry["cps"] * entry["duration_s"])
    assert entry["cpu_ms_per_call"] is not None
    assert entry["cpu_ms_per_call"] >= 0
    # The user and kernel parts add up to the total (each rounded to the microsecond).
    parts = entry["cpu_user_ms_per_call"] + entry["cpu_system_ms_per_call"]
    assert abs(parts - entry["cpu_ms_per_call"]) <= 0.002
    assert entry["cpu_user_ms_per_call"] >= 0
    assert entry["cpu_system_ms_per_call"] >= 0
    held = [hold for hold in entry["search"] if hold["held"]]
    assert held, entry["search"]
    assert all(hold["successful"] == hold["calls"] for hold in held)


@pytest.mark.integration
@needs_sipp
def test_references_smoke() -> None:
    result = smoke_run(systems=["sippy", "kamailio"])
    json.dumps(result)  # what the CLI prints must be plain JSON
    assert result["name"] == "calls"
    assert result["cps"] is None  # Tollguard was not asked for
    assert set(result["references"]) == {"sippy", "kamailio"}
    for entry in result["references"].values():
        assert_measured(entry, max_rate=MAX_RATE)


@pytest.mark.integration
@needs_sipp
@pytest.mark.parametrize("auth", ["digest", "acl"], ids=["digest-md5", "acl"])
def test_tollguard_smoke(auth: str) -> None:
    result = smoke_run(systems=["tollguard"], auth=auth, credit="off")
    json.dumps(result)
    assert result["name"] == "calls"
    assert result["references"] == {}
    assert_measured(result, max_rate=MAX_RATE)
    assert "auth_fallback" not in result
    assert result["auth"] == auth
    assert result["credit"] == "off"
    assert "prepaid" not in result
    assert result["hold_retries"] == 1


def _ledger(data_dir: Path) -> dict[str, Any]:
    """The bench customer's balance and call charges, read back from its ledger."""
    code = (
        "import json\n"
        "from tollguard.web.billing.models import LedgerEntry\n"
        "from tollguard.web.billing.selectors import balance_of\n"
        "from tollguard.web.customers.models import Customer\n"
        f"c = Customer.objects.get(name={calls.BENCH_CUSTOMER!r})\n"
        "print(json.dumps({'balance': str(balance_of(c.pk)), 'charges': "
        "[str(e.amount) for e in LedgerEntry.objects.filter(customer=c, kind='call')]}))\n"
    )
    done = subprocess.run(
        [*calls.tollguard_command(), "--data-dir", str(data_dir), "manage", "shell", "-c", code],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    ledger: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return ledger


@pytest.mark.integration
@needs_sipp
def test_tollguard_with_and_without_credit_control_in_one_run(tmp_path: Path) -> None:
    result = smoke_run(systems=["tollguard"], auth="acl", credit="both", workdir=tmp_path)
    json.dumps(result)
    assert result["credit"] == "both"
    assert_measured(result, max_rate=MAX_RATE)  # without credit control
    assert_measured(result["prepaid"], max_rate=MAX_RATE)
    overhead = result["credit_overhead"]
    assert set(overhead) == {"cps_pct", "cpu_ms_per_call_pct"}
    assert all(isinstance(value, float) for value in overhead.values()), overhead
    off = tmp_path / "credit-off" / "tollguard-acl-on"
    prepaid = tmp_path / "credit-prepaid" / "tollguard-acl-on"
    # The first switch ran without credit control and said so; the second with it.
    assert "credit control is off" in (off / "tollguard" / "data-serve.log").read_text()
    assert "credit control is off" not in (prepaid / "tollguard" / "data-serve.log").read_text()
    # Every call of the prepaid run was paid from the balance, to the last micro-unit.
    ledger = _ledger(prepaid / "tollguard" / "data")
    charged = sum((Decimal(amount) for amount in ledger["charges"]), Decimal(0))
    assert len(ledger["charges"]) >= result["prepaid"]["calls"]
    assert Decimal(ledger["balance"]) == Decimal(calls.PREPAID_FUNDS) + charged


@pytest.mark.integration
@needs_sipp
def test_cli_prints_one_json_object_with_its_options() -> None:
    command = [sys.executable, "-m", "tollguard.cli", "bench", "calls", "--json"]
    command += ["--no-references", "--auth", "acl", "--duration", "2", "--max-rate", "10"]
    command += ["--credit", "off"]
    result = subprocess.run(
        [*command, "--hold-retries", "0"], capture_output=True, text=True, timeout=180, check=True
    )
    figures = json.loads(result.stdout)
    assert (figures["auth"], figures["hold_retries"], figures["references"]) == ("acl", 0, {})
    assert figures["credit"] == "off"
    assert_measured(figures, max_rate=MAX_RATE)
    refused = subprocess.run(
        [*command, "--hold-retries", "9"], check=False, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "--hold-retries" in refused.stderr


def test_search_stops_at_first_failure_and_bisects() -> None:
    # The rate search alone, against a fake system that holds up to 37 calls a second.
    tried: list[tuple[float, float]] = []

    def hold(rate: float, seconds: float) -> calls.Hold:
        tried.append((rate, seconds))
        ok = rate <= 37
        n = round(rate * seconds)
        return calls.Hold(rate, seconds, n, n if ok else n - 1, 0 if ok else 1, seconds, 0.1, ok)

    search = calls.search_rate(
        hold, duration_s=10, start_rate=5, max_rate=100, step=5, ramp_s=2, refine_holds=3
    )
    assert search.best is not None
    assert search.best.rate == 35
    assert search.best.seconds == 10
    assert tried[:4] == [(5, 2), (10, 2), (20, 2), (40, 2)]  # ramp, stops at 40
    assert all(seconds == 10 for _, seconds in tried[4:])  # confirm and refine hold fully
    assert len(tried) <= 4 + 1 + 3


def test_search_reports_nothing_when_the_first_rate_fails() -> None:
    def hold(rate: float, seconds: float) -> calls.Hold:
        n = round(rate * seconds)
        return calls.Hold(rate, seconds, n, 0, n, seconds, 0.0, held=False)

    search = calls.search_rate(hold, duration_s=10, start_rate=5, max_rate=100, step=5, ramp_s=2)
    assert search.best is None
    assert len(search.holds) == 1
    shown = search.as_dict(10)
    assert (shown["cps"], shown["failed"], shown["calls"]) == (0, 10, 0)


def test_search_confirms_lower_when_the_full_hold_fails() -> None:
    # Short holds pass up to 40, full holds only up to 12.
    def hold(rate: float, seconds: float) -> calls.Hold:
        ok = rate <= (40 if seconds < 10 else 12)
        n = round(rate * seconds)
        return calls.Hold(rate, seconds, n, n if ok else 0, 0 if ok else n, seconds, 0.0, ok)

    search = calls.search_rate(
        hold, duration_s=10, start_rate=5, max_rate=40, step=1, ramp_s=2, refine_holds=5
    )
    assert search.best is not None
    assert search.best.seconds == 10
    assert search.best.rate <= 12
    assert search.best.rate >= 10  # halved from 40 to 20, then 10, then bisected upwards


def test_search_runs_a_failed_full_hold_again() -> None:
    # A fake system that holds up to 30 calls a second but fails the first full-length
    # hold at every rate, as a pause of the host would make it.
    tried: list[tuple[float, float]] = []

    def hold(rate: float, seconds: float) -> calls.Hold:
        first_try = (rate, seconds) not in tried
        tried.append((rate, seconds))
        ok = rate <= 30 and not (seconds == 10 and first_try)
        n = round(rate * seconds)
        return calls.Hold(rate, seconds, n, n if ok else n - 1, 0 if ok else 1, seconds, 0.1, ok)

    search = calls.search_rate(
        hold, duration_s=10, start_rate=5, max_rate=100, step=5, ramp_s=2, retries=1
    )
    assert search.best is not None
    assert search.best.rate == 30
    full = [hold for hold in search.holds if hold.seconds == 10]
    # Every full-length rate was tried twice; each listed, the failed tries too.
    assert [h.rate for h in full] == [
        r for r in dict.fromkeys(h.rate for h in full) for _ in (1, 2)
    ]
    assert not full[0].held and full[1].held
    ramps = [hold for hold in search.holds if hold.seconds == 2]
    assert len(ramps) == len({hold.rate for hold in ramps})  # short ramp holds: no retries

    # Without retries the first failure decides: the search ends lower or empty.
    tried.clear()
    strict = calls.search_rate(hold, duration_s=10, start_rate=5, max_rate=100, step=5, ramp_s=2)
    assert strict.best is None or strict.best.rate < 30


def test_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="auth must be"):
        calls.run(auth="cleartext", systems=[])


def test_unknown_credit_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="credit must be one of off, prepaid, both"):
        calls.run(credit="postpaid", systems=[])


def test_credit_overhead_in_per_cent() -> None:
    off = {"cps": 1000, "cpu_ms_per_call": 0.8}
    assert calls.credit_overhead(off, {"cps": 950, "cpu_ms_per_call": 0.86}) == {
        "cps_pct": -5.0,
        "cpu_ms_per_call_pct": 7.5,
    }
    # A system that held no rate has nothing to compare.
    missing = {"cps": None, "cpu_ms_per_call": None}
    assert calls.credit_overhead(missing, off) == {"cps_pct": None, "cpu_ms_per_call_pct": None}
    assert calls.credit_overhead(off, missing) == {"cps_pct": None, "cpu_ms_per_call_pct": None}


def test_process_tree_cpu_counts_children() -> None:
    before = calls.process_tree_cpu_s(os.getpid())
    # A child burning CPU for a bounded loop; it is reaped before the second reading.
    subprocess.run(
        [sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True, timeout=60
    )
    after = calls.process_tree_cpu_s(os.getpid())
    assert after - before > 0.05
    assert calls.process_tree_cpu_s(2**22 + 12345) == 0.0  # no such process


def test_process_tree_cpu_tells_user_from_system_time() -> None:
    before = calls.process_tree_cpu(os.getpid())
    # A child doing pure computation spends its time in user space.
    subprocess.run(
        [sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True, timeout=60
    )
    computed = calls.process_tree_cpu(os.getpid()).since(before)
    assert computed.user > 0.05
    assert computed.user > computed.system
    assert computed.total == computed.user + computed.system
    assert calls.process_tree_cpu(2**22 + 12345) == calls.CpuTimes(0.0, 0.0)


def test_hold_reports_cpu_per_call_in_parts() -> None:
    hold = calls.Hold(100, 10, 1000, 1000, 0, 10.0, 0.9, True, cpu_system_s=0.2)
    assert hold.cpu_per_call() == {
        "cpu_ms_per_call": 0.9,
        "cpu_user_ms_per_call": 0.7,
        "cpu_system_ms_per_call": 0.2,
    }
    assert hold.as_dict()["cpu_user_ms_per_call"] == 0.7
    empty = calls.Hold(100, 0, 0, 0, 0, 0.0, 0.0, False)
    assert empty.cpu_per_call()["cpu_ms_per_call"] is None


def test_kamailio_config_fills_every_placeholder() -> None:
    text = references.kamailio_config(
        listen_host="127.0.0.1", listen_port=40001, gateway_host="127.0.0.1",
        gateway_port=40002, children=3, module_path="/modules",
    )  # fmt: skip
    assert "listen=udp:127.0.0.1:40001" in text
    assert '$du = "sip:127.0.0.1:40002";' in text
    assert "children=3" in text
    assert 'mpath="/modules"' in text
    assert "@" not in text.replace("@...@", "")


def test_bench_plan_by_auth_mode() -> None:
    digest = calls.bench_plan(40002, auth="digest", username="bench", password="pw")
    (customer,) = digest["customers"]
    assert customer["accounts"] == [{"username": "bench", "password": "pw", "allow_md5": True}]
    assert "acl" not in customer
    acl = calls.bench_plan(40002, auth="acl", username="bench", password="pw")
    (customer,) = acl["customers"]
    assert customer["acl"] == [{"network": "127.0.0.1/32"}]
    (provider,) = acl["providers"]
    assert provider["gateways"][0]["port"] == 40002
    assert customer["credit"] == {"mode": "postpaid", "credit_limit": "1000000000"}
    prepaid = calls.bench_plan(40002, auth="acl", username="b", password="pw", prepaid=True)
    assert prepaid["customers"][0]["credit"] == {"mode": "prepaid"}
