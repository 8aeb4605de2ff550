"""``tollguard bench relay``: how many G.711 calls a media relay carries, and at what cost.

Each call is a stream each way of 50 RTP packets per second (20 ms of G.711, 172-byte
packets), as a telephone call sends. Two generator processes play the two sides of
every call: the "caller" process sends each call's packets to the relay's customer-side
port and receives the callee's, the "callee" process the other way round; each process
has one socket, so the relay locks every call's two sides to those two addresses. The
sends of every 20 ms are spread over slots (100 of 0.2 ms with the C generator, ten of
2 ms with the Python one), as independent calls' would be. A
packet carries its send time (the system-wide monotonic clock), so the receiving process
measures its one-way latency.

For each number of calls the streams run once straight between the two processes (the
baseline: what the generators and the kernel add by themselves) and once through the
relay. A step passes when the relay loses under 0.1 % of the packets and adds under
5 ms to the 99th-percentile latency; the result for a relay is the largest number of
calls of a passing step. The steps go up until one fails.

Backends: the embedded relay (its engine in its own process, as ``tollguard serve``
runs it, moving the steady state's packets in C when that module was built), the same
relay with every packet on its Python path (``relay_python``: the reference for what
the C path gains, skipped with ``python_reference=False``), and rtpengine (Debian's
``rtpengine-daemon``, userspace) driven by Tollguard's rtpengine backend, started on
loopback for the run. Each backend's CPU time
per relayed packet comes from ``/proc/<pid>/stat`` of its process.

The generators and the relay under test do not share a core when the machine has two or
more (``separate_cpus``, the default): the generators and this process run on the first
CPU the process may use, the relay's process and its threads on the others. Sharing
cores, the scheduler preempts the relay for the generators (and the other way round)
for a few milliseconds at a time, and the added latency measured is then the harness's
as much as the relay's; on separate cores each side's figures are its own. The CPUs
used are reported (``cpus``); ``separate_cpus=False`` (``--shared-cpus``) measures as
the processes fall.

The baseline is the harness's floor: when its generators fall more than the latency
budget behind their schedule it is run once more and the faster run kept, so that a
slow baseline does not excuse the relay's latency.

The generators are C when ``tollguard.bench._rtpgen`` was built at install (each slot's
packets leave in one ``sendmmsg``, arrivals are read by ``recvmmsg``; ``generator`` in
the output says which), else Python, whose two processes fill their one CPU near
100,000 packets a second each way. A step whose generators lagged more than the latency
budget behind their schedule says so (``generators_lagged``): its failure is the
harness's limit, not necessarily the relay's.

The machine's load average is reported with the figures: other work on the cores makes
every number worse.
"""

from __future__ import annotations

import array
import contextlib
import math
import multiprocessing
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from tollguard.bench.rtpengine import RtpengineNotFound, RtpengineProcess
from tollguard.bench.sippctl import free_udp_ports
from tollguard.config import MediaSettings
from tollguard.media import MediaBackend, Party
from tollguard.media.relay import EmbeddedRelay
from tollguard.media.rtpengine import Rtpengine
from tollguard.sip.sdp import parse_sdp

try:
    from tollguard.bench import _rtpgen
except ImportError:  # built without a C compiler: the generators run in Python
    _rtpgen = None  # type: ignore[assignment]

__all__ = ["RELAY_STEPS", "RTPENGINE_STEPS", "run"]

LOOPBACK = "127.0.0.1"
PACKETS_PER_S = 50
_INTERVAL_S = 1 / PACKETS_PER_S
_SLOTS = 10
# The C generator's slots: 0.2 ms apart, closer to independent phones' random phases.
_SLOTS_C = 100
_DRAIN_S = 0.5
_PAYLOAD = b"\xd5" * 148  # 24 header bytes + 148 = 172, a 20 ms PCMA packet
_PACKET = struct.Struct("!BBHIIIq")  # RTP header, then the call index and the send time
MAX_LOSS = 0.001
MAX_ADDED_P99_MS = 5.0
RELAY_STEPS = (100, 250, 500, 750, 1000, 1250, 1500)
RTPENGINE_STEPS = (500, 1000, 1500, 2000, 2500, 3000)
# Port ranges: the embedded relay's and rtpengine's, apart.
_RELAY_PORTS = (20000, 35999)
_RTPENGINE_PORTS = (36000, 59999)
_SDP = "application/sdp"


@dataclass(frozen=True, slots=True)
class Flow:
    """What one run of every stream gave: packets, losses and one-way latencies."""

    calls: int
    sent: int
    received: int
    p50_ms: float
    p99_ms: float
    lag_ms: float  # how late the generators' slowest send slot was

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 1.0


# --- the generator processes ------------------------------------------------------------


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, 8 << 20)
            break
        except OSError:
            continue
    sock.bind((LOOPBACK, 0))
    sock.setblocking(False)
    return sock


def _generator(conn: Connection) -> None:
    """One side of every call: serves ``run`` commands until ``stop``."""
    sock = _socket()
    conn.send(sock.getsockname()[1])
    while True:
        command = conn.recv()
        if command[0] == "stop":
            break
        _, dests, start, duration = command
        conn.send(_play(sock, dests, start, duration))
    sock.close()


def _play(
    sock: socket.socket, dests: Sequence[tuple[str, int]], start: float, duration: float
) -> dict[str, Any]:
    if _rtpgen is not None:
        return _rtpgen.play(sock.fileno(), list(dests), start, duration, _SLOTS_C, _INTERVAL_S)
    return _play_python(sock, dests, start, duration)


def generator_kind() -> str:
    """Which generator plays the streams: "C" (built at install) or "Python"."""
    return "C" if _rtpgen is not None else "Python"


def _play_python(
    sock: socket.socket, dests: Sequence[tuple[str, int]], start: float, duration: float
) -> dict[str, Any]:
    calls = len(dests)
    per_slot = math.ceil(calls / _SLOTS)
    seqs = [0] * calls
    samples = array.array("q")
    pack = _PACKET.pack
    unpack_from = _PACKET.unpack_from
    sendto = sock.sendto
    recv = sock.recv
    now_ns = time.monotonic_ns
    clock = time.monotonic
    sent = received = 0
    lag = 0.0
    slot = 0
    due = start
    # Whatever a previous run left in the socket is not this run's.
    while True:
        try:
            recv(2048)
        except BlockingIOError:
            break
    end = start + duration
    while True:
        now = clock()
        if now >= due:
            if due >= end:
                break
            lag = max(lag, now - due)
            low = slot * per_slot
            for index in range(low, min(calls, low + per_slot)):
                seq = seqs[index] = (seqs[index] + 1) & 0xFFFF
                try:  # noqa: SIM105 (suppress() costs a call per packet)
                    sendto(
                        pack(0x80, 8, seq, seq * 160, index, index, now_ns()) + _PAYLOAD,
                        dests[index],
                    )
                except OSError:
                    pass  # counted as lost
                sent += 1
            slot = (slot + 1) % _SLOTS
            due += _INTERVAL_S / _SLOTS
            continue
        readable, _, _ = select.select([sock], [], [], due - now)
        while readable:
            try:
                data = recv(2048)
            except BlockingIOError:
                break
            received += 1
            samples.append(now_ns() - unpack_from(data)[6])
    stop_at = clock() + _DRAIN_S
    while (left := stop_at - clock()) > 0:
        if not select.select([sock], [], [], left)[0]:
            continue
        while True:
            try:
                data = recv(2048)
            except BlockingIOError:
                break
            received += 1
            samples.append(now_ns() - unpack_from(data)[6])
    ordered = sorted(samples)
    return {
        "sent": sent,
        "received": received,
        "p50_ns": _percentile(ordered, 0.50),
        "p99_ns": _percentile(ordered, 0.99),
        "lag_s": lag,
    }


def _percentile(ordered: Sequence[int], fraction: float) -> int:
    if not ordered:
        return 0
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def cpu_split() -> tuple[frozenset[int], frozenset[int]] | None:
    """(the generators' CPUs, the relay's) from the CPUs this process may use, or None
    when there is only one."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return frozenset(cpus[:1]), frozenset(cpus[1:])


def pin(pid: int, cpus: frozenset[int]) -> None:
    """Keep process ``pid`` and every thread it has now on ``cpus``."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(task), cpus)


class Generators:
    """The two generator processes (spawned: nothing of this process is inherited)."""

    def __init__(self, cpus: frozenset[int] | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._processes = []
        self.ports: list[int] = []
        for _ in range(2):
            ours, theirs = context.Pipe()
            process = context.Process(target=_generator, args=(theirs,), daemon=True)
            process.start()
            if cpus is not None and process.pid is not None:
                pin(process.pid, cpus)
            theirs.close()
            self._conns.append(ours)
            self._processes.append(process)
            self.ports.append(int(ours.recv()))

    @property
    def caller_port(self) -> int:
        return self.ports[0]

    @property
    def callee_port(self) -> int:
        return self.ports[1]

    def flow(
        self,
        to_callee: Sequence[tuple[str, int]],
        to_caller: Sequence[tuple[str, int]],
        duration: float,
    ) -> Flow:
        """Play every call for ``duration`` seconds: caller sends ``to_callee[i]``..."""
        start = time.monotonic() + 0.2
        self._conns[0].send(("run", list(to_callee), start, duration))
        self._conns[1].send(("run", list(to_caller), start, duration))
        results = [conn.recv() for conn in self._conns]
        return Flow(
            calls=len(to_callee),
            sent=sum(r["sent"] for r in results),
            received=sum(r["received"] for r in results),
            p50_ms=max(r["p50_ns"] for r in results) / 1e6,
            p99_ms=max(r["p99_ns"] for r in results) / 1e6,
            lag_ms=max(r["lag_s"] for r in results) * 1000,
        )

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()


# --- the relays under test --------------------------------------------------------------


def _sdp(port: int) -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    ).encode()


def _open_calls(
    backend: MediaBackend, calls: int, generators: Generators
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Set up ``calls`` calls; the relay addresses each side sends to."""
    party = Party(LOOPBACK, 5060, "udp")
    to_callee: list[tuple[str, int]] = []
    to_caller: list[tuple[str, int]] = []
    for index in range(calls):
        session = f"bench-{index}"
        offer = backend.offer(session, _sdp(generators.caller_port), _SDP, party)
        answer = backend.answer(session, _sdp(generators.callee_port), _SDP, party)
        # The caller sends to the port in the answer, the callee to the one in the offer.
        to_callee.append((LOOPBACK, parse_sdp(answer).media[0].port))
        to_caller.append((LOOPBACK, parse_sdp(offer).media[0].port))
    return to_callee, to_caller


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` (and its threads)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _steps(
    name: str,
    backend: MediaBackend,
    pid: int,
    *,
    steps: Sequence[int],
    generators: Generators,
    baseline: Callable[[int], Flow],
    duration: float,
    log: Callable[[str], None],
    cpus: frozenset[int] | None = None,
) -> dict[str, Any]:
    if cpus is not None:
        pin(pid, cpus)
    to_callee, to_caller = _open_calls(backend, max(steps), generators)
    results: list[dict[str, Any]] = []
    best = 0
    try:
        for calls in steps:
            direct = baseline(calls)
            cpu_before = _cpu_s(pid)
            flow = generators.flow(to_callee[:calls], to_caller[:calls], duration)
            cpu = _cpu_s(pid) - cpu_before
            added = flow.p99_ms - direct.p99_ms
            passed = flow.loss < MAX_LOSS and added < MAX_ADDED_P99_MS
            step = {
                "calls": calls,
                "packets_per_s": round(flow.sent / duration),
                "loss_pct": round(flow.loss * 100, 4),
                "p50_ms": round(flow.p50_ms, 3),
                "p99_ms": round(flow.p99_ms, 3),
                "baseline_p99_ms": round(direct.p99_ms, 3),
                "baseline_loss_pct": round(direct.loss * 100, 4),
                "added_p99_ms": round(added, 3),
                "cpu_us_per_packet": round(cpu / max(flow.received, 1) * 1e6, 2),
                "relay_cpu_pct": round(cpu / duration * 100, 1),
                "generator_lag_ms": round(flow.lag_ms, 1),
                "generators_lagged": flow.lag_ms > MAX_ADDED_P99_MS,
                "passed": passed,
            }
            log(f"{name}: {step}")
            results.append(step)
            if not passed:
                break
            best = calls
    finally:
        for index in range(max(steps)):
            backend.end(f"bench-{index}")
    return {"calls": best, "steps": results}


def run(
    duration_s: float = 5.0,
    relay_steps: Sequence[int] = RELAY_STEPS,
    rtpengine_steps: Sequence[int] = RTPENGINE_STEPS,
    rtpengine: bool = True,
    log: Callable[[str], None] = lambda line: None,
    *,
    separate_cpus: bool = True,
    python_reference: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; returns the figures (see the module docstring)."""
    split = cpu_split() if separate_cpus else None
    own_cpus = os.sched_getaffinity(0)
    harness, relay_cpus = split if split is not None else (None, None)
    if harness is not None:
        os.sched_setaffinity(0, harness)
    try:
        return _run(
            duration_s,
            relay_steps,
            rtpengine_steps,
            (rtpengine, python_reference),
            log,
            relay_cpus,
            harness,
        )
    finally:
        os.sched_setaffinity(0, own_cpus)


def _run(  # noqa: PLR0917 (run's arguments, with the CPUs chosen)
    duration_s: float,
    relay_steps: Sequence[int],
    rtpengine_steps: Sequence[int],
    references: tuple[bool, bool],
    log: Callable[[str], None],
    relay_cpus: frozenset[int] | None,
    harness: frozenset[int] | None,
) -> dict[str, Any]:
    rtpengine, python_reference = references
    load_before = os.getloadavg()
    generators = Generators(harness)
    baselines: dict[int, Flow] = {}

    def baseline(calls: int) -> Flow:
        if calls not in baselines:
            to_callee = [(LOOPBACK, generators.callee_port)] * calls
            to_caller = [(LOOPBACK, generators.caller_port)] * calls
            flow = generators.flow(to_callee, to_caller, duration_s)
            log(f"baseline {calls}: {flow}")
            if flow.lag_ms > MAX_ADDED_P99_MS:
                # The generators fell behind by themselves: a baseline that slow would
                # excuse the relay's own latency. Once more, keeping the faster run.
                again = generators.flow(to_callee, to_caller, duration_s)
                log(f"baseline {calls} again: {again}")
                flow = min(flow, again, key=lambda run: run.p99_ms)
            baselines[calls] = flow
        return baselines[calls]

    result: dict[str, Any] = {
        "name": "relay",
        "packets_per_s_per_call": 2 * PACKETS_PER_S,
        "max_loss_pct": MAX_LOSS * 100,
        "max_added_p99_ms": MAX_ADDED_P99_MS,
        "duration_s": duration_s,
        "cpus": os.cpu_count(),
        "generator": generator_kind(),
        "cpu_split": None
        if harness is None or relay_cpus is None
        else {"generators": sorted(harness), "relay": sorted(relay_cpus)},
    }

    def measure(name: str, backend: MediaBackend, pid: int, steps: Sequence[int]) -> dict[str, Any]:
        return _steps(
            name,
            backend,
            pid,
            steps=steps,
            generators=generators,
            baseline=baseline,
            duration=duration_s,
            log=log,
            cpus=relay_cpus,
        )

    try:
        engines = [("relay", True)] + ([("relay_python", False)] if python_reference else [])
        for name, native in engines:
            result[name] = _embedded(name, native, relay_steps, measure)
        if rtpengine:
            result["rtpengine"] = _rtpengine(rtpengine_steps, measure)
    finally:
        generators.close()
    result["load_average_before"] = [round(value, 2) for value in load_before]
    result["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    return result


# One backend's run of _steps: (name, backend, its process id, steps) -> figures.
type Measure = Callable[[str, MediaBackend, int, Sequence[int]], dict[str, Any]]


def _embedded(name: str, native: bool, steps: Sequence[int], measure: Measure) -> dict[str, Any]:
    relay = EmbeddedRelay(
        MediaSettings(
            relay_host=LOOPBACK,
            port_min=_RELAY_PORTS[0],
            port_max=_RELAY_PORTS[1],
            timeout_s=0,
            relay_native=native,
        )
    )
    relay.start(process=True)
    try:
        assert relay.engine_pid is not None
        figures = measure(name, relay, relay.engine_pid, steps)
    finally:
        relay.close()
    return {"packet_path": "C" if relay.native else "Python", **figures}


def _rtpengine(steps: Sequence[int], measure: Measure) -> dict[str, Any]:
    (ng_port,) = free_udp_ports(1)
    try:
        process = RtpengineProcess(ng_port, *_RTPENGINE_PORTS)
    except RtpengineNotFound as exc:
        return {"skipped": str(exc)}
    with process:
        backend = Rtpengine(process.address, process.media_settings(timeout_s=0))
        backend.start()
        try:
            assert process.pid is not None
            return measure("rtpengine", backend, process.pid, steps)
        finally:
            backend.close()
