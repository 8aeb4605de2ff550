"""``tollguard bench relay`` run small: every figure is there, and packets really flowed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tollguard.bench import relay as relay_bench

pytestmark = pytest.mark.integration


def test_small_run_reports_both_relays() -> None:
    before = os.sched_getaffinity(0)
    result = relay_bench.run(duration_s=0.6, relay_steps=(4, 8), rtpengine_steps=(4,))
    assert result["name"] == "relay"
    assert result["packets_per_s_per_call"] == 100
    assert len(result["load_average_before"]) == len(result["load_average_after"]) == 3
    split = relay_bench.cpu_split()
    if split is None:
        assert result["cpu_split"] is None
    else:
        assert result["cpu_split"] == {"generators": sorted(split[0]), "relay": sorted(split[1])}
    # The bench pinned itself to the generators' CPU for the run only.
    assert os.sched_getaffinity(0) == before
    assert result["generator"] == "C"
    assert result["relay"]["packet_path"] == "C"
    assert result["relay_python"]["packet_path"] == "Python"
    for name, steps in (("relay", [4, 8]), ("relay_python", [4, 8]), ("rtpengine", [4])):
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
        assert first["generators_lagged"] is (first["generator_lag_ms"] > 5.0)
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


def test_cpu_split_keeps_the_generators_off_the_relays_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 1, 2})
    assert relay_bench.cpu_split() == (frozenset({1}), frozenset({2, 3}))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert relay_bench.cpu_split() is None


def test_pin_moves_every_thread_of_a_process() -> None:
    if relay_bench.cpu_split() is None:
        pytest.skip("one CPU: nothing to pin apart")
    target = frozenset(sorted(os.sched_getaffinity(0))[-1:])
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(30,)).start()\n"
            "time.sleep(30)",
        ]
    )
    try:
        # Wait until the child has started its second thread.
        for _ in range(200):
            if len(os.listdir(f"/proc/{child.pid}/task")) >= 2:
                break
            time.sleep(0.05)
        relay_bench.pin(child.pid, target)
        tasks = os.listdir(f"/proc/{child.pid}/task")
        assert len(tasks) >= 2
        assert all(os.sched_getaffinity(int(task)) == target for task in tasks)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("kind", ["C", "Python"])
def test_a_generator_sending_to_itself_measures_every_packet(kind: str) -> None:
    """Both generators, each looped back on its own socket: what was sent comes back, with
    a latency for every packet."""
    assert relay_bench.generator_kind() == "C"  # built by the test command's install
    play = relay_bench._play if kind == "C" else relay_bench._play_python
    sock = relay_bench._socket()
    try:
        result = play(sock, [sock.getsockname()] * 20, time.monotonic() + 0.05, 0.4)
    finally:
        sock.close()
    # 20 calls at 50 packets/s for 0.4 s (a slot more where the Python clock rounds).
    assert 400 <= result["sent"] <= 402
    assert result["received"] == result["sent"]
    assert 0 < result["p50_ns"] <= result["p99_ns"] < 1e9
    assert 0 <= result["lag_s"] < 0.4
