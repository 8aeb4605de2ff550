"""``tollguard bench calls``: the highest call rate a SIP system holds with no failed call.

Setup, the same for every system: a SIPp caller sends calls to the system under test on
127.0.0.1, which relays them to a SIPp gateway answering every call. Each call is
INVITE, 100, 180, 200, ACK, a short hold (``pause_ms``), BYE, 200. Tollguard runs from a
throw-away data directory (``tollguard init`` + ``load`` of a one-customer, one-gateway
plan, then ``tollguard serve --no-web``), with its customer authenticated by digest (MD5,
so each call also carries a 407 challenge and a second INVITE) or by source address
(``auth="acl"``). The references (:mod:`tollguard.bench.references`) get the plain call.
SIPp 3.6 answers only an MD5 challenge listed first, so the benchmark's data directory
sets ``sip.digest_algorithms`` to MD5 first (:func:`sipp_digest_settings`); should SIPp
still give up on the challenge, the run measures the ACL customer instead and says so
in ``auth_fallback``.

Rate search, per system:

1. *ramp*: hold ``start_rate``, then double it, up to ``max_rate``, each for ``ramp_s``
   seconds, until a hold fails;
2. *confirm*: hold the last good ramp rate for ``duration_s``; if it fails, halve it
   (at most ``confirm_tries`` holds);
3. *refine*: bisect between the confirmed rate and the first failed rate, on multiples
   of ``step``, each candidate held for ``duration_s`` (at most ``refine_holds``).

A full-length hold (confirm or refine) that fails is run once more (``hold_retries``)
before its rate counts as failed: on a shared virtual machine a pause of the host now
and then costs a few calls at any rate, and one such pause must not decide the figure.
The result lists every hold, the failed ones too.

A hold succeeds when every call completed, none failed, and SIPp created them all
within ``duration * 1.25 + 3 s`` (so a system that slows the caller down does not pass).
Between holds the system gets ``settle_s`` to drain. The time per system is bounded by
``ramp holds * (ramp_s + pause + settle_s + 1) + (confirm_tries + refine_holds) *
(duration_s + pause + settle_s + 1)`` plus the drain of a failing hold (at most
``recv_timeout_ms`` more), each full-length hold counted ``1 + hold_retries`` times;
with the defaults (``duration_s=20``, 8 ramp steps) three to six minutes per system.

Shield (``shield``): ``on`` (the default) measures Tollguard as it ships, the caller on
127.0.0.1, which is on the shield's allow-list (the gateway's address); ``off`` sets
``shield.enabled: false``; ``compare`` measures Tollguard twice in one run, first with
the shield and the fraud engine doing their full work on every call, then with the
shield off and the customer without a fraud policy:

* *on*: the caller sends from 127.0.0.2, an address on no allow-list
  (``shield.trust_acl: false``, only the gateway's 127.0.0.1 in ``shield.allow``), so
  every datagram passes the ban, size, per-source and global rate checks and every call
  the per-source call count; the rates are raised out of reach
  (:data:`SHIELD_ON_SETTINGS`) so that the run measures what the checks cost, not a
  flood ban. The customer has a fraud policy with every call and spend limit set, out
  of reach too, and its digest account velocity rules (:data:`BENCH_FRAUD`);
* *off*: ``shield.enabled: false``; the caller on 127.0.0.1; no fraud policy. The fraud
  engine cannot be switched off (the default destination list always applies): this
  is its least work.

The result's top-level figures are then those of *on*; ``shield_off`` holds the same
keys for *off*, and ``shield_cost`` compares them: ``cps_ratio`` (on / off) and
``cpu_ms_per_call_added`` (on - off), None when either was not measured.

CPU time is user + system time of the system's process tree (``/proc/<pid>/stat``,
children included), measured over the reported hold and its settle time, divided by the
calls of that hold.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import yaml

from tollguard import config
from tollguard.bench import references as refs
from tollguard.bench.sippctl import (
    LOOPBACK,
    Sipp,
    SippAuthUnsupported,
    SippError,
    SippResult,
    free_udp_ports,
    wait_until_listening,
)

__all__ = [
    "BenchError",
    "CpuTimes",
    "Hold",
    "RateSearch",
    "TollguardServer",
    "bench_plan",
    "credit_overhead",
    "process_tree_cpu",
    "process_tree_cpu_s",
    "run",
    "search_rate",
    "shield_cost",
    "sipp_digest_settings",
]

logger = logging.getLogger(__name__)

CALLED_NUMBER = "00442079460000"  # a UK number dialled internationally
SHIELD_MODES = ("on", "off", "compare")
SHIELD_CALLER = "127.0.0.2"  # on no allow-list in the "on" half of a comparison
_OUT_OF_REACH = 1_000_000

# The shield's settings for the "on" half of a comparison: every check runs, no limit binds.
SHIELD_ON_SETTINGS: dict[str, Any] = {
    "enabled": True,
    "trust_acl": False,
    "allow": (f"{LOOPBACK}/32",),  # the gateway, as trust_acl would have it
    "source_rate": float(_OUT_OF_REACH),
    "source_burst": float(_OUT_OF_REACH),
    "global_rate": float(_OUT_OF_REACH),
    "global_burst": float(_OUT_OF_REACH),
    "max_transactions": _OUT_OF_REACH,
}
SHIELD_OFF_SETTINGS: dict[str, Any] = {"enabled": False}

# The customer's fraud policy in the "on" half: every limit counted, none reached.
BENCH_FRAUD: dict[str, Any] = {
    "limits": {
        "max_concurrent": _OUT_OF_REACH,
        "calls_per_second": _OUT_OF_REACH,
        "calls_per_hour": _OUT_OF_REACH * 1000,
        "calls_per_day": _OUT_OF_REACH * 1000,
        "spend_per_hour": "10000000",  # the most the database holds: 8 digits
        "spend_per_day": "10000000",
        "max_price_per_minute": "10",
    }
}
# And its digest account's velocity rules, alerting only, minimums out of reach.
BENCH_VELOCITY: dict[str, Any] = {
    "velocity": {
        "action": "alert",
        "destinations_min": _OUT_OF_REACH,
        "new_countries": _OUT_OF_REACH,
        "spend_min": "10000000",
    }
}
BENCH_CUSTOMER = "bench-customer"
# The prepaid customer's balance: far more than any run spends (a 100-ms call costs
# 0.0008 at the plan's 0.05 a minute, so a million calls cost 800).
PREPAID_FUNDS = "1000000"
# ``credit``: how Tollguard is measured. "off": credit control turned off
# (billing.credit_control = false); "prepaid": a prepaid customer, every call reserved,
# extended and settled against its balance; "both": the two, one after the other.
CREDIT_MODES = ("off", "prepaid", "both")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A system under test could not be set up or stopped."""


# --- CPU accounting -------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces (proc(5)).
    return text[text.rindex(")") + 2 :].split()


class CpuTimes(NamedTuple):
    """CPU seconds spent in user space and in the kernel."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def since(self, before: CpuTimes) -> CpuTimes:
        """The CPU time spent between ``before`` and this reading."""
        return CpuTimes(self.user - before.user, self.system - before.system)


def process_tree_cpu(pid: int) -> CpuTimes:
    """User and system CPU seconds of ``pid``, its reaped children and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    user_ticks = system_ticks = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        fields = _stat_fields(current)
        if fields is None:
            continue
        # Fields 14-17 of proc(5) (utime, stime, cutime, cstime) are 11-14 after the name.
        user_ticks += int(fields[11]) + int(fields[13])
        system_ticks += int(fields[12]) + int(fields[14])
        stack.extend(children.get(current, ()))
    return CpuTimes(user_ticks / CLOCK_TICKS, system_ticks / CLOCK_TICKS)


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (see :func:`process_tree_cpu`)."""
    return process_tree_cpu(pid).total


# --- systems under test ---------------------------------------------------------------------


class System(Protocol):
    name: str

    def start(self, workdir: Path, gateway_port: int) -> int:
        """Start relaying calls to the gateway; return the SIP port to call."""
        ...

    @property
    def pid(self) -> int: ...

    def stop(self) -> None: ...


def _stop_process(process: subprocess.Popen[bytes] | None, grace_s: float = 10.0) -> int | None:
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("pid %s ignored SIGTERM for %s s; killing it", process.pid, grace_s)
            process.kill()
            process.wait()
    return process.returncode


def _wait_ready(process: subprocess.Popen[bytes], port: int, what: str, log: Path) -> None:
    if not wait_until_listening(port, timeout_s=15.0) or process.poll() is not None:
        _stop_process(process)
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise BenchError(f"{what} did not start listening on udp:{LOOPBACK}:{port}: {tail}")


@dataclass
class _Reference:
    name: str
    _process: subprocess.Popen[bytes] | None = None

    def start(self, workdir: Path, gateway_port: int) -> int:
        (port,) = free_udp_ports(1)
        starter = refs.start_kamailio if self.name == "kamailio" else refs.start_sippy
        self._process = starter(
            workdir,
            listen_host=LOOPBACK,
            listen_port=port,
            gateway_host=LOOPBACK,
            gateway_port=gateway_port,
        )
        _wait_ready(self._process, port, self.name, workdir / f"{self.name}.log")
        return port

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def stop(self) -> None:
        _stop_process(self._process)


def bench_plan(
    gateway_port: int,
    *,
    auth: str,
    username: str,
    password: str,
    caller_host: str = LOOPBACK,
    fraud: bool = False,
    prepaid: bool = False,
) -> dict[str, Any]:
    """A one-customer, one-provider plan whose gateway is the SIPp UAS; with ``fraud``,
    the customer (and its account) get :data:`BENCH_FRAUD` (and :data:`BENCH_VELOCITY`).

    The customer is postpaid with a limit no run reaches, or ``prepaid`` (its balance
    is :data:`PREPAID_FUNDS`, posted by :meth:`TollguardServer.top_up`).
    """
    credit = {"mode": "postpaid", "credit_limit": "1000000000"}
    customer: dict[str, Any] = {
        "name": BENCH_CUSTOMER,
        "sell_card": "bench-sell",
        "strategy": "lcr",
        "numbering": {"country_code": "44"},
        "credit": {"mode": "prepaid"} if prepaid else credit,
    }
    if fraud:
        customer["fraud"] = BENCH_FRAUD
    if auth == "acl":
        customer["acl"] = [{"network": f"{caller_host}/32"}]
    else:
        account = {"username": username, "password": password, "allow_md5": True}
        if fraud:
            account["fraud"] = BENCH_VELOCITY
        customer["accounts"] = [account]

    def card(name: str, kind: str, price: str) -> dict[str, Any]:
        rate = {
            "prefix": "44",
            "destination": "United Kingdom",
            "price_per_minute": price,
            "connect_fee": "0",
            "initial_increment": 1,
            "next_increment": 1,
        }
        return {"name": name, "kind": kind, "currency": "EUR", "rates": [rate]}

    return {
        "rate_cards": [card("bench-sell", "sell", "0.0500"), card("bench-cost", "cost", "0.0200")],
        "providers": [
            {
                "name": "bench-carrier",
                "cost_card": "bench-cost",
                "priority": 10,
                "gateways": [
                    {"name": "bench-gw", "host": LOOPBACK, "port": gateway_port, "transport": "udp"}
                ],
            }
        ],
        "customers": [customer],
    }


def sipp_digest_settings() -> dict[str, dict[str, Any]]:
    """Settings that let SIPp answer the switch's digest challenge.

    SIPp answers only the first challenge and only with MD5 (see
    :class:`~tollguard.bench.sippctl.SippAuthUnsupported`), so the benchmark's data
    directory offers MD5 first.
    """
    return {"sip": {"digest_algorithms": ("MD5", "SHA-256")}}


def tollguard_command() -> list[str]:
    """How to run the ``tollguard`` command of this installation."""
    script = Path(sys.executable).with_name("tollguard")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from tollguard.cli import main; sys.exit(main())"]


class TollguardServer:
    """A ``tollguard serve --no-web`` subprocess on its own data directory.

    ``init()`` creates the data directory (UDP only, on ``sip_port``) and applies
    ``settings`` overrides (``{"sip": {"gateway_setup_timeout_s": 1.0}}``); ``load()``
    provisions a plan; ``start()`` waits for the "switch listening" line; ``stop()``
    sends SIGTERM so the switch flushes its CDRs; ``cdrs()`` exports them as JSON.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        sip_port: int,
        host: str = LOOPBACK,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.sip_port = sip_port
        self.host = host
        self.settings_overrides = dict(settings or {})
        self.command = list(command or tollguard_command())
        self.log_path = data_dir.parent / f"{data_dir.name}-serve.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _cli(self, *args: str, timeout_s: float = 120.0) -> str:
        command = [*self.command, "--data-dir", str(self.data_dir), *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"tollguard {' '.join(args)}: no answer in {timeout_s} s") from exc
        if done.returncode != 0:
            raise BenchError(
                f"tollguard {' '.join(args)} exited {done.returncode}: "
                f"{(done.stderr or done.stdout)[-2000:]}"
            )
        return done.stdout

    def init(self) -> None:
        # serve --no-web never binds the web port, but init wants one.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((self.host, 0))
            web_port = probe.getsockname()[1]
        self._cli(
            "init", "--bind", self.host, "--sip-port", str(self.sip_port),
            "--web-port", str(web_port),
        )  # fmt: skip
        settings = config.load(self.data_dir)
        # UDP only: the TCP/TLS ports init picks were never checked to be free.
        sip = replace(settings.sip, listen=(f"udp:{self.host}:{self.sip_port}",))
        sections: dict[str, Any] = {"sip": sip}
        for section, values in self.settings_overrides.items():
            sections[section] = replace(sections.get(section, getattr(settings, section)), **values)
        settings = replace(settings, **sections)
        settings.settings_path.write_text(config.dump(settings))

    def load(self, plan: Mapping[str, Any]) -> str:
        path = self.data_dir / "plan.yaml"
        path.write_text(yaml.safe_dump(dict(plan), sort_keys=False))
        return self._cli("load", str(path))

    def top_up(self, customer: str, amount: str, reference: str) -> None:
        """Post a top-up to ``customer``'s ledger, as the admin and the API do."""
        code = (
            "from decimal import Decimal\n"
            "from tollguard.web.billing import services\n"
            "from tollguard.web.customers.models import Customer\n"
            f"services.post_entry(Customer.objects.get(name={customer!r}), 'top_up', "
            f"Decimal({amount!r}), reference={reference!r})\n"
        )
        self._cli("manage", "shell", "-c", code)

    def start(self, timeout_s: float = 60.0) -> None:
        ready = f"switch listening on udp:{self.host}:{self.sip_port}"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [*self.command, "--data-dir", str(self.data_dir), "serve", "--no-web"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready in self.log_path.read_text(errors="replace"):
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise BenchError(f"tollguard serve did not print {ready!r}: {self.log()[-2000:]}")

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchError("tollguard serve is not running")
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (the switch flushes every CDR), then SIGKILL after ``timeout_s``."""
        return _stop_process(self._process, timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cdrs(self) -> list[dict[str, Any]]:
        exported = json.loads(self._cli("cdr", "export", "--format", "json") or "[]")
        if not isinstance(exported, list):
            raise BenchError("tollguard cdr export --format json did not print a JSON array")
        return exported


@dataclass
class _Tollguard:
    auth: str = "digest"
    credit: str = "off"  # "off" or "prepaid" (CREDIT_MODES)
    name: str = "tollguard"
    username: str = "bench"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    server: TollguardServer | None = None
    # "on" as shipped, "off", or the "on" half of a comparison ("guarded").
    shield: str = "on"

    @property
    def caller_host(self) -> str:
        return SHIELD_CALLER if self.shield == "guarded" else LOOPBACK

    def start(self, workdir: Path, gateway_port: int) -> int:
        (port,) = free_udp_ports(1)
        settings: dict[str, Mapping[str, Any]] = dict(sipp_digest_settings())
        if self.shield == "guarded":
            settings["shield"] = SHIELD_ON_SETTINGS
        elif self.shield == "off":
            settings["shield"] = SHIELD_OFF_SETTINGS
        prepaid = self.credit == "prepaid"
        if not prepaid:
            settings["billing"] = {"credit_control": False}
        self.server = TollguardServer(workdir / "data", sip_port=port, settings=settings)
        self.server.init()
        plan = bench_plan(
            gateway_port,
            auth=self.auth,
            username=self.username,
            password=self.password,
            caller_host=self.caller_host,
            fraud=self.shield == "guarded",
            prepaid=prepaid,
        )
        self.server.load(plan)
        if prepaid:
            self.server.top_up(BENCH_CUSTOMER, PREPAID_FUNDS, "bench")
        self.server.start()
        return port

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


# --- rate search ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    rate: float
    seconds: float
    calls: int
    successful: int
    failed: int
    elapsed_s: float
    cpu_s: float
    held: bool
    # The kernel's share of cpu_s (system calls: mostly sending and receiving).
    cpu_system_s: float = 0.0

    def cpu_per_call(self) -> dict[str, float | None]:
        """CPU milliseconds per call: the total, and its user and system parts."""
        if not self.calls:
            return {
                "cpu_ms_per_call": None,
                "cpu_user_ms_per_call": None,
                "cpu_system_ms_per_call": None,
            }
        user_s = self.cpu_s - self.cpu_system_s
        return {
            "cpu_ms_per_call": round(1000 * self.cpu_s / self.calls, 3),
            "cpu_user_ms_per_call": round(1000 * user_s / self.calls, 3),
            "cpu_system_ms_per_call": round(1000 * self.cpu_system_s / self.calls, 3),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": _plain(self.rate),
            "seconds": _plain(self.seconds),
            "calls": self.calls,
            "successful": self.successful,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "held": self.held,
            **self.cpu_per_call(),
        }


@dataclass(frozen=True, slots=True)
class RateSearch:
    best: Hold | None  # the highest rate held for the full duration
    holds: tuple[Hold, ...]

    def as_dict(self, duration_s: float) -> dict[str, Any]:
        best = self.best
        if best is None:
            lowest = min(self.holds, key=lambda h: h.rate) if self.holds else None
            return {
                "cps": 0,
                "failed": lowest.failed if lowest else None,
                "cpu_ms_per_call": None,
                "calls": 0,
                "duration_s": duration_s,
                "search": [h.as_dict() for h in self.holds],
            }
        return {
            "cps": _plain(best.rate),
            "failed": best.failed,
            **best.cpu_per_call(),
            "calls": best.calls,
            "duration_s": _plain(best.seconds),
            "search": [h.as_dict() for h in self.holds],
        }


def _plain(value: float) -> int | float:
    """Whole numbers print as integers in the JSON (400, not 400.0)."""
    return int(value) if float(value).is_integer() else value


HoldFn = Callable[[float, float], Hold]


def search_rate(
    hold: HoldFn,
    *,
    duration_s: float,
    start_rate: float,
    max_rate: float,
    step: float,
    ramp_s: float,
    confirm_tries: int = 3,
    refine_holds: int = 3,
    retries: int = 0,
) -> RateSearch:
    """Find the highest rate ``hold(rate, seconds)`` sustains; see the module docstring.

    A full-length hold that fails is run again up to ``retries`` times before its rate
    counts as failed.
    """
    holds: list[Hold] = []

    def run_hold(rate: float, seconds: float) -> Hold:
        tries = 1 + (retries if seconds >= duration_s else 0)
        for _ in range(tries):
            result = hold(rate, seconds)
            holds.append(result)
            logger.info(
                "rate %s for %s s: %s/%s calls, %s failed, %.1f s elapsed: %s",
                rate, seconds, result.successful, result.calls, result.failed, result.elapsed_s,
                "held" if result.held else "not held",
            )  # fmt: skip
            if result.held:
                break
        return result

    ramp_s = min(ramp_s, duration_s)
    good: float | None = None
    bad: float | None = None
    rate = min(start_rate, max_rate)
    while True:
        if run_hold(rate, ramp_s).held:
            good = rate
        else:
            bad = rate
            break
        if rate >= max_rate:
            break
        rate = min(max_rate, rate * 2)
    if good is None:
        return RateSearch(best=None, holds=tuple(holds))

    best: Hold | None = None
    if ramp_s >= duration_s:
        best = next(h for h in reversed(holds) if h.rate == good and h.held)
    else:
        candidate: float = good
        for _ in range(confirm_tries):
            result = run_hold(candidate, duration_s)
            if result.held:
                best = result
                break
            bad = candidate
            candidate = max(1.0, _on_grid(candidate / 2, step))
            if candidate >= bad:
                break
        if best is None:
            return RateSearch(best=None, holds=tuple(holds))

    for _ in range(refine_holds):
        if bad is None or bad - best.rate <= step:
            break
        middle = _on_grid((best.rate + bad) / 2, step)
        if middle <= best.rate or middle >= bad:
            break
        result = run_hold(middle, duration_s)
        if result.held:
            best = result
        else:
            bad = middle
    return RateSearch(best=best, holds=tuple(holds))


def _on_grid(rate: float, step: float) -> float:
    return float(max(step, math.floor(rate / step) * step))


@dataclass
class _Caller:
    """Runs one hold of SIPp calls against a system and accounts for its CPU."""

    workdir: Path
    target_port: int
    pid: int
    scenario: str
    pause_ms: int
    auth: tuple[str, str] | None
    recv_timeout_ms: int
    settle_s: float
    host: str = LOOPBACK
    runs: int = 0

    def __call__(self, rate: float, seconds: float) -> Hold:
        calls = max(1, round(rate * seconds))
        self.runs += 1
        (port,) = free_udp_ports(1, host=self.host)
        sipp = Sipp(
            self.scenario,
            workdir=self.workdir,
            name=f"hold{self.runs:02d}-{rate:g}cps",
            local_host=self.host,
            local_port=port,
            remote=(LOOPBACK, self.target_port),
            service=CALLED_NUMBER,
            auth=self.auth,
            calls=calls,
            rate=rate,
            # Ten seconds' worth of calls: far above what a 100 ms call needs, so SIPp
            # never throttles a slow system; capped below SIPp's open-file limit.
            limit=min(int(rate * 10) + 100, 15_000),
            pause_ms=self.pause_ms,
            recv_timeout_ms=self.recv_timeout_ms,
            log_codes=False,
        )
        budget_s = seconds * 1.25 + 3 + self.pause_ms / 1000
        cpu_before = process_tree_cpu(self.pid)
        sipp.start()
        try:
            result: SippResult | None = sipp.wait(budget_s + self.recv_timeout_ms / 1000 + 10)
        except SippAuthUnsupported:
            raise
        except SippError as exc:
            logger.warning("hold at %s cps: %s", rate, exc)
            result = None
        time.sleep(self.settle_s)
        cpu = process_tree_cpu(self.pid).since(cpu_before)
        if result is None or result.stats is None:
            return Hold(rate, seconds, calls, 0, calls, 0.0, cpu.total, False, cpu.system)
        stats = result.stats
        failed = result.failed + max(0, calls - stats.created)
        held = (
            failed == 0
            and stats.successful == calls
            and stats.elapsed_s <= budget_s + self.pause_ms / 1000 + 1
        )
        return Hold(
            rate,
            seconds,
            calls,
            stats.successful,
            failed,
            stats.elapsed_s,
            cpu.total,
            held,
            cpu.system,
        )


def _measure(
    system: System,
    workdir: Path,
    *,
    scenario: str,
    auth: tuple[str, str] | None,
    duration_s: float,
    start_rate: float,
    max_rate: float,
    step: float,
    ramp_s: float,
    pause_ms: int,
    recv_timeout_ms: int,
    settle_s: float,
    hold_retries: int,
    caller_host: str = LOOPBACK,
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    (gateway_port,) = free_udp_ports(1)
    gateway = Sipp("uas_answer", workdir=workdir, name="gateway", local_port=gateway_port)
    try:
        gateway.start()
        if not wait_until_listening(gateway_port):
            raise BenchError(f"the SIPp gateway did not start: {gateway.result().errors}")
        port = system.start(workdir / system.name, gateway_port)
        try:
            caller = _Caller(
                workdir=workdir / "caller",
                target_port=port,
                pid=system.pid,
                scenario=scenario,
                pause_ms=pause_ms,
                auth=auth,
                recv_timeout_ms=recv_timeout_ms,
                settle_s=settle_s,
                host=caller_host,
            )
            search = search_rate(
                caller,
                duration_s=duration_s,
                start_rate=start_rate,
                max_rate=max_rate,
                step=step,
                ramp_s=ramp_s,
                retries=hold_retries,
            )
        finally:
            system.stop()
    except SippAuthUnsupported:
        raise
    except (BenchError, SippError, refs.ReferenceUnavailable, OSError) as exc:
        logger.warning("%s: %s", system.name, exc)
        return {"cps": None, "failed": None, "cpu_ms_per_call": None, "error": str(exc)}
    finally:
        gateway.kill()
    return search.as_dict(duration_s)


def _measure_tollguard(
    auth: str,
    workdir: Path,
    common: Mapping[str, Any],
    shield: str = "on",
    credit: str = "off",
) -> dict[str, Any]:
    system = _Tollguard(auth=auth, shield=shield, credit=credit)
    return _measure(
        system,
        workdir,
        scenario="uac_auth" if auth == "digest" else "uac_basic",
        auth=(system.username, system.password) if auth == "digest" else None,
        caller_host=system.caller_host,
        **common,
    )


def shield_cost(on: Mapping[str, Any], off: Mapping[str, Any]) -> dict[str, float | None]:
    """What the shield and the fraud engine cost: the rate kept, the CPU added per call."""
    ratio = None
    if on.get("cps") is not None and off.get("cps"):
        ratio = round(on["cps"] / off["cps"], 3)
    added = None
    if on.get("cpu_ms_per_call") is not None and off.get("cpu_ms_per_call") is not None:
        added = round(on["cpu_ms_per_call"] - off["cpu_ms_per_call"], 3)
    return {"cps_ratio": ratio, "cpu_ms_per_call_added": added}


def _measure_tollguard_modes(
    auth: str, root: Path, common: Mapping[str, Any], shield: str, credit: str = "off"
) -> dict[str, Any]:
    """Tollguard's figures for ``shield`` (see the module docstring), with credit
    control ``credit`` (``off`` or ``prepaid``)."""
    root = root / f"credit-{credit}"
    if shield != "compare":
        return _measure_tollguard(auth, root / f"tollguard-{auth}-{shield}", common, shield, credit)
    on = _measure_tollguard(auth, root / f"tollguard-{auth}-guarded", common, "guarded", credit)
    off = _measure_tollguard(auth, root / f"tollguard-{auth}-off", common, "off", credit)
    return {**on, "shield_off": off, "shield_cost": shield_cost(on, off)}


def credit_overhead(off: Mapping[str, Any], prepaid: Mapping[str, Any]) -> dict[str, Any]:
    """How much lower the rate and how much higher the CPU per call are with credit
    control than without, in per cent (None where a figure is missing)."""

    def change(key: str) -> float | None:
        before, after = off.get(key), prepaid.get(key)
        if not before or after is None:
            return None
        return round(100 * (float(after) - float(before)) / float(before), 1)

    return {"cps_pct": change("cps"), "cpu_ms_per_call_pct": change("cpu_ms_per_call")}


def run(
    duration_s: float = 20,
    start_rate: float = 25,
    max_rate: float = 3000,
    step: float = 25,
    references: bool = True,
    *,
    auth: str = "digest",
    pause_ms: int = 100,
    ramp_s: float = 3.0,
    recv_timeout_ms: int = 5000,
    settle_s: float = 1.0,
    hold_retries: int = 1,
    credit: str = "off",
    systems: Sequence[str] | None = None,
    workdir: Path | None = None,
    keep_workdir: bool = False,
    shield: str = "on",
) -> dict[str, Any]:
    """Measure Tollguard (and the references) and return the benchmark's JSON object.

    Rates are calls per second; ``pause_ms`` is how long each call stays up;
    ``recv_timeout_ms`` fails a call waiting longer for a message; a failed full-length
    hold is run again ``hold_retries`` times before its rate counts as failed; ``systems``
    limits the run to some of ``tollguard``, ``sippy``, ``kamailio``; ``auth`` is ``digest`` (MD5
    challenge on every call) or ``acl``; ``shield`` is ``on``, ``off`` or ``compare`` (the
    module docstring). ``credit`` (:data:`CREDIT_MODES`) measures Tollguard without credit
    control (``off``), with a prepaid customer (``prepaid``), or both in the same run
    (``both``: the figures without credit control at the top, those with it under
    ``prepaid``, and their difference in ``credit_overhead``). A quick smoke run:
    ``duration_s=2, start_rate=5, max_rate=10``.
    """
    if auth not in {"digest", "acl"}:
        raise ValueError(f"auth must be 'digest' or 'acl', not {auth!r}")
    if shield not in SHIELD_MODES:
        raise ValueError(f"shield must be one of {', '.join(SHIELD_MODES)}, not {shield!r}")
    if credit not in CREDIT_MODES:
        raise ValueError(f"credit must be one of {', '.join(CREDIT_MODES)}, not {credit!r}")
    wanted = set(systems or ("tollguard", "sippy", "kamailio"))
    if not references:
        wanted &= {"tollguard"}
    root = workdir or Path(tempfile.mkdtemp(prefix="tollguard-bench-calls-"))
    common: dict[str, Any] = {
        "duration_s": duration_s,
        "start_rate": start_rate,
        "max_rate": max_rate,
        "step": step,
        "ramp_s": ramp_s,
        "pause_ms": pause_ms,
        "recv_timeout_ms": recv_timeout_ms,
        "settle_s": settle_s,
        "hold_retries": hold_retries,
    }
    result: dict[str, Any] = {"name": "calls"}
    try:
        modes = ("off", "prepaid") if credit == "both" else (credit,)
        figures: dict[str, dict[str, Any]] = {}
        for mode in modes if "tollguard" in wanted else ():
            try:
                figures[mode] = _measure_tollguard_modes(auth, root, common, shield, mode)
            except SippAuthUnsupported as exc:
                logger.warning("digest not measurable with this SIPp (%s); using the ACL", exc)
                result["auth_fallback"] = f"SIPp cannot answer the digest challenge: {exc.reason}"
                auth = "acl"
                figures[mode] = _measure_tollguard_modes(auth, root, common, shield, mode)
        skipped = {"cps": None, "failed": None, "cpu_ms_per_call": None, "skipped": True}
        result.update(figures.get(modes[0], skipped))
        result.setdefault("duration_s", duration_s)
        result["auth"] = auth
        result["shield"] = shield
        result["credit"] = credit
        if credit == "both":
            result["prepaid"] = figures.get("prepaid", skipped)
            result["credit_overhead"] = credit_overhead(result, result["prepaid"])
        result["pause_ms"] = pause_ms
        result["hold_retries"] = hold_retries
        result["references"] = {
            name: _measure(_Reference(name), root / name, scenario="uac_basic", auth=None, **common)
            for name in ("sippy", "kamailio")
            if name in wanted
        }
    finally:
        if not keep_workdir and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return result
