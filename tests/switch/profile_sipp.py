"""CPU per call of a switch process under SIPp load (run by hand, not collected by pytest).

    .venv/bin/python -m tests.switch.profile_sipp [--rate 1500] [--seconds 10]
        [--auth acl|digest] [--repeat 2]

Starts the switch in a child process (``run_switch`` with the test plan of
``tests/switch/conftest.py``, an in-memory plan source and a CDR sink that only counts),
a SIPp gateway answering every call (``uas_answer.xml``) and a SIPp caller
(``uac_basic.xml``, or ``uac_auth.xml`` with digest), all on 127.0.0.1 with ports picked
at run time. Prints the switch's CPU time (user + system from ``/proc/<pid>/stat``) per
call and the caller's successful and failed calls. Bounded: ``rate * seconds`` calls,
SIPp's own timeouts, and a kill after ``seconds * 3 + 30`` s. With
``TOLLGUARD_PROFILE_SWITCH=FILE`` in the environment the switch runs under cProfile and
dumps its statistics to FILE when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.switch.conftest import PASSWORD, TECH_PREFIX, plan_data
from tollguard.config import CdrSettings, Settings, SipSettings
from tollguard.domain.cdr import Cdr
from tollguard.domain.plan import PlanData
from tollguard.switch.server import run_switch

SCENARIOS = Path(__file__).resolve().parents[2] / "src" / "tollguard" / "bench" / "sipp"
SIPP = "/usr/bin/sipp"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# How the switch child starts; TOLLGUARD_SERVE_SCRIPT runs a wrapper script instead.
SERVE = (
    [sys.executable, os.environ["TOLLGUARD_SERVE_SCRIPT"]]
    if os.environ.get("TOLLGUARD_SERVE_SCRIPT")
    else [sys.executable, "-m", "tests.switch.profile_sipp", "--serve"]
)


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def write_batch(self, cdrs: list[Cdr]) -> None:
        self.count += len(cdrs)


class StaticSource:
    def __init__(self, data: PlanData) -> None:
        self._data = data

    def current_version(self) -> int:
        return self._data.version

    def load(self) -> PlanData:
        return self._data


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def serve(port: int, gateway_port: int, data_dir: Path) -> None:
    sip = SipSettings(
        listen=(f"udp:127.0.0.1:{port}",),
        advertised_host="127.0.0.1",
        digest_algorithms=("MD5", "SHA-256"),
    )
    settings = Settings(
        data_dir=data_dir, sip=sip, cdr=CdrSettings(batch_size=500, flush_interval_s=1.0)
    )
    source = StaticSource(plan_data((gateway_port, gateway_port + 1)))

    def ready(lines: list[str]) -> None:
        print("ready", *lines, flush=True)

    async def main() -> None:
        await run_switch(settings, source, CountingSink(), on_ready=ready)

    profile_to = os.environ.get("TOLLGUARD_PROFILE_SWITCH")
    profiler = cProfile.Profile() if profile_to else None
    if profiler is not None:
        profiler.enable()
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    if profiler is not None and profile_to:
        profiler.disable()
        profiler.dump_stats(profile_to)


def hold(rate: int, seconds: int, auth: str, workdir: Path) -> tuple[float, float, int, int, int]:
    """One bounded run: (switch user and system CPU ms per call, calls, successful, failed)."""
    port, gateway_port, caller_port = free_port(), free_port(), free_port()
    calls = rate * seconds
    switch = subprocess.Popen(
        [*SERVE, str(port), str(gateway_port)],
        stdout=subprocess.PIPE,
        stderr=(workdir / "switch.err").open("wb"),
        cwd=Path(__file__).resolve().parents[2],
    )
    gateway = caller = None
    try:
        assert switch.stdout is not None
        line = switch.stdout.readline().decode()
        if not line.startswith("ready"):
            raise RuntimeError(f"switch did not start: {(workdir / 'switch.err').read_text()}")
        common = ["-i", "127.0.0.1", "-nostdin", "-timeout", f"{seconds * 3 + 20}s"]
        gateway = subprocess.Popen(
            [SIPP, "-sf", str(SCENARIOS / "uas_answer.xml"), "-p", str(gateway_port), *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
        )
        time.sleep(0.5)
        number = f"{TECH_PREFIX}442070000000" if auth == "acl" else "442070000000"
        scenario = "uac_basic.xml" if auth == "acl" else "uac_auth.xml"
        args = [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario)]
        args += ["-p", str(caller_port), *common, "-s", number, "-key", "caller", "alice"]
        args += ["-m", str(calls), "-r", str(rate), "-d", "0", "-recv_timeout", "10000"]
        if auth == "digest":
            args += ["-au", "alice", "-ap", PASSWORD, "-auth_uri", f"{number}@127.0.0.1:{port}"]
        before = cpu_seconds(switch.pid)
        caller = subprocess.Popen(
            args, stdout=(workdir / "caller.out").open("wb"), stderr=subprocess.STDOUT, cwd=workdir
        )
        caller.wait(timeout=seconds * 3 + 30)
        time.sleep(0.5)
        after = cpu_seconds(switch.pid)
    finally:
        for process in (caller, gateway):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        switch.terminate()
        switch.wait(timeout=30)
    screen = (workdir / "caller.out").read_text(errors="replace")
    successful = _last_count(screen, "Successful call")
    failed = _last_count(screen, "Failed call")
    per_call = 1000 / max(successful, 1)
    user, system = ((a - b) * per_call for a, b in zip(after, before, strict=True))
    return user, system, calls, successful, failed


def _last_count(screen: str, label: str) -> int:
    found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(found[-1]) if found else -1


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        with tempfile.TemporaryDirectory() as data_dir:
            serve(int(sys.argv[2]), int(sys.argv[3]), Path(data_dir))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--auth", choices=("acl", "digest"), default="acl")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not 1 <= args.rate <= 1500 or not 1 <= args.seconds <= 20:
        parser.error("keep runs bounded: --rate 1..1500, --seconds 1..20")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as workdir:
            user, system, calls, ok, failed = hold(
                args.rate, args.seconds, args.auth, Path(workdir)
            )
        print(
            f"auth={args.auth} rate={args.rate}/s calls={calls}: switch CPU "
            f"{user + system:.3f} ms/call (user {user:.3f}, system {system:.3f}), "
            f"successful {ok}, failed {failed}"
        )


if __name__ == "__main__":
    main()
