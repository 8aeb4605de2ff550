"""``tollguard bench relay`` run small: every figure is there, and packets really flowed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tollguard.bench import relay as relay_bench

pytestmark = pytest.mark.integration


def test_small_run_reports_both_relays() -> None:
    result = relay_bench.run(duration_s=0.6, relay_steps=(4, 8), rtpengine_steps=(4,))
    assert result["name"] == "relay"
    assert result["packets_per_s_per_call"] == 100
    assert len(result["load_average_before"]) == len(result["load_average_after"]) == 3
    for name, steps in (("relay", [4, 8]), ("rtpengine", [4])):
        figures = result[name]
        if "skipped" in figures:
            pytest.skip(figures["skipped"])
        measured = figures["steps"]
        assert [step["calls"] for step in measured] == steps[: len(measured)]
        first = measured[0]
        # Four calls at 100 packets/s for 0.6 s: about 240 packets, every one delivered.
        assert 200 <= first["packets_per_s"] * 0.6 <= 260
        assert first["loss_pct"] < 1
        assert first["p99_ms"] >= first["p50_ms"] > 0
        assert first["cpu_us_per_packet"] >= 0
        assert isinstance(first["passed"], bool)
        assert figures["calls"] in (0, *steps)


def test_command_line_refuses_a_bad_step_list() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tollguard.cli", "bench", "relay", "--relay-steps", "10,x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "not a comma-separated list of call counts: '10,x'" in done.stderr
    assert done.stdout == ""
