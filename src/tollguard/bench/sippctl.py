"""Run SIPp as a caller (UAC) or a gateway (UAS) on loopback and read back what it did.

A :class:`Sipp` is one SIPp process with its files in a work directory: the statistics
CSV (``-trace_stat``), the ``<log>`` lines of the scenarios (each shipped caller logs
``final <Call-ID> <code>``) and the unexpected-message log. :meth:`Sipp.wait` turns them
into a :class:`SippResult`. Ports are chosen by the caller; :func:`free_udp_ports` finds
free ones by binding to port 0.

Exit codes (SIPp manual, "Exit codes"): 0 every call succeeded, 1 at least one call
failed, 97 stopped by an internal command, 99 normal exit without calls, 255 fatal
error, 254 fatal error binding a socket.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from tollguard.bench.sipp import scenario_path

__all__ = [
    "LOOPBACK",
    "Sipp",
    "SippAuthUnsupported",
    "SippError",
    "SippFatal",
    "SippNotFound",
    "SippResult",
    "SippStats",
    "SippTimeout",
    "free_udp_ports",
    "sipp_binary",
    "status_line",
    "wait_until_listening",
]

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

EXIT_ALL_OK = 0
EXIT_SOME_FAILED = 1
EXIT_INTERNAL_COMMAND = 97
EXIT_NO_CALLS = 99
EXIT_FATAL = 255
EXIT_FATAL_BIND = 254

_FINAL_LINE = re.compile(r"^final (\S+) (\d{3})\s*$")


class SippError(Exception):
    """Root of the errors of this module."""


class SippNotFound(SippError):
    """The ``sipp`` binary is not installed (Debian package ``sip-tester``)."""


class SippFatal(SippError):
    """SIPp could not run the scenario at all (bad scenario, port in use, ...)."""

    def __init__(self, message: str, returncode: int, stderr: str) -> None:
        lines = stderr.strip().splitlines()
        # SIPp prefixes its errors with "date<TAB>time<TAB>epoch: ".
        self.reason = lines[-1].rsplit("\t", 1)[-1].split(": ", 1)[-1] if lines else ""
        super().__init__(f"{message} (exit {returncode}): {self.reason}")
        self.returncode = returncode
        self.stderr = stderr


class SippAuthUnsupported(SippFatal):
    """SIPp met a digest challenge it cannot answer.

    SIPp 3.6 answers only the first challenge of a 401/407 and only with MD5; a server
    following RFC 8760 section 2.4 lists SHA-256 first, and SIPp then gives up.
    """


class SippTimeout(SippError):
    """SIPp did not finish within the time allowed; it has been killed."""


REASONS = {
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    487: "Request Terminated",
    500: "Server Internal Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    603: "Decline",
}


# Scenarios whose requests are REGISTERs (their Request-URI names no user).
_REGISTERING = frozenset({"uac_register", "uac_register_expect_code", "uac_register_wait"})


def status_line(code: int) -> str:
    """The ``-key status`` value that makes ``uas_reject`` answer ``code``."""
    return f"SIP/2.0 {code} {REASONS.get(code, 'Rejected')}"


def sipp_binary() -> str:
    """Path of ``sipp`` (``$SIPP`` overrides); raises :class:`SippNotFound`."""
    path = os.environ.get("SIPP") or shutil.which("sipp")
    if not path:
        raise SippNotFound("sipp is not installed (apt-get install sip-tester)")
    return path


def free_udp_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct UDP ports that were free a moment ago on ``host``.

    Every socket stays bound until all are chosen so the kernel cannot hand out the
    same port twice; another process may still take one before it is used.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True, slots=True)
class SippStats:
    """The cumulative counters of the last line of SIPp's statistics CSV."""

    created: int
    successful: int
    failed: int
    current: int
    retransmissions: int
    failed_unexpected: int
    failed_timeout: int
    failed_max_retrans: int
    failed_check: int  # a scenario check (regexp, strcmp, test) did not hold
    dead_call_msgs: int
    out_of_call_msgs: int
    elapsed_s: float
    call_rate: float  # calls created per second over the whole run

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> SippStats:
        def num(column: str) -> int:
            return int(float(row.get(column) or 0))

        checks = (
            "FailedRegexpDoesntMatch(C)",
            "FailedRegexpShouldntMatch(C)",
            "FailedRegexpHdrNotFound(C)",
            "FailedTestDoesntMatch(C)",
            "FailedTestShouldntMatch(C)",
            "FailedStrcmpDoesntMatch(C)",
            "FailedStrcmpShouldntMatch(C)",
        )
        return cls(
            created=num("TotalCallCreated"),
            successful=num("SuccessfulCall(C)"),
            failed=num("FailedCall(C)"),
            current=num("CurrentCall"),
            retransmissions=num("Retransmissions(C)"),
            failed_unexpected=num("FailedUnexpectedMessage(C)"),
            failed_timeout=num("FailedTimeoutOnRecv(C)"),
            failed_max_retrans=num("FailedMaxUDPRetrans(C)"),
            failed_check=sum(num(c) for c in checks if c in row),
            dead_call_msgs=num("DeadCallMsgs(C)"),
            out_of_call_msgs=num("OutOfCallMsgs(C)"),
            elapsed_s=_hms_seconds(row.get("ElapsedTime(C)", "")),
            call_rate=float(row.get("CallRate(C)") or 0),
        )


def _hms_seconds(text: str) -> float:
    """SIPp writes elapsed times as ``HH:MM:SS`` or ``HH:MM:SS:micro``."""
    parts = text.split(":")
    if len(parts) < 3:
        return 0.0
    seconds = int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2])
    return seconds + (int(parts[3]) / 1_000_000 if len(parts) > 3 and parts[3] else 0.0)


def read_stats(path: Path) -> SippStats | None:
    """The last line of a ``-trace_stat`` CSV, or None when SIPp wrote none."""
    try:
        text = path.read_text(encoding="latin-1")
    except FileNotFoundError:
        return None
    rows = list(csv.DictReader(text.splitlines(), delimiter=";"))
    return SippStats.from_row(rows[-1]) if rows else None


def read_final_codes(path: Path) -> dict[str, int]:
    """``Call-ID -> final code`` from the ``final <Call-ID> <code>`` log lines."""
    codes: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except FileNotFoundError:
        return codes
    for line in lines:
        match = _FINAL_LINE.match(line)
        if match:
            codes[match.group(1)] = int(match.group(2))
    return codes


@dataclass(frozen=True, slots=True)
class SippResult:
    returncode: int
    stats: SippStats | None
    final_codes: dict[str, int] = field(default_factory=dict)
    errors: str = ""  # the unexpected-message log and stderr, for failure reports

    @property
    def ok(self) -> bool:
        """Every call went through the scenario to its end."""
        return self.returncode == EXIT_ALL_OK

    @property
    def successful(self) -> int:
        return self.stats.successful if self.stats else 0

    @property
    def failed(self) -> int:
        """Failed calls, counting calls still open when SIPp stopped as failed."""
        if self.stats is None:
            return 0
        return self.stats.failed + max(
            0, self.stats.created - self.stats.successful - self.stats.failed
        )


class Sipp:
    """One SIPp process running a scenario on loopback.

    ``scenario`` names a shipped scenario (:func:`tollguard.bench.sipp.scenario_path`)
    or is the path of another scenario file.

    ``remote`` is ``(host, port)`` for a caller and None for a gateway. ``keys`` become
    ``-key name value`` (the scenarios' ``[name]`` fields). ``pause_ms`` is ``-d``.
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        workdir: Path,
        local_port: int,
        remote: tuple[str, int] | None = None,
        local_host: str = LOOPBACK,
        service: str = "",
        keys: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        calls: int | None = None,
        rate: float | None = None,
        limit: int | None = None,
        pause_ms: int = 0,
        recv_timeout_ms: int | None = None,
        call_id: str | None = None,
        log_codes: bool = True,
        extra_args: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        self.scenario = scenario
        path = scenario if isinstance(scenario, Path) else scenario_path(scenario)
        self.name = name or f"{path.stem}-{local_port}"
        self.workdir = workdir
        self.stat_path = workdir / f"{self.name}.csv"
        self.log_path = workdir / f"{self.name}.log"
        self.error_path = workdir / f"{self.name}.errors"
        self.stderr_path = workdir / f"{self.name}.stderr"
        self.local_port = local_port
        args = [
            sipp_binary(),
            "-sf",
            str(path),
            "-i",
            local_host,
            "-p",
            str(local_port),
            "-nostdin",
            "-trace_stat",
            "-stf",
            str(self.stat_path),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            str(self.error_path),
            "-d",
            str(pause_ms),
        ]
        if log_codes:
            args += ["-trace_logs", "-log_file", str(self.log_path)]
        # Every shipped scenario's key gets a value so any scenario runs with any keys.
        all_keys = {
            "caller": "sipp",
            "expected": "0",
            "status": status_line(503),
            "rtp_port": "40002",
        }
        all_keys.update(keys or {})
        for key, value in all_keys.items():
            args += ["-key", key, value]
        if service:
            args += ["-s", service]
        if auth is not None:
            args += ["-au", auth[0], "-ap", auth[1]]
            if remote is not None and service and path.stem not in _REGISTERING:
                # SIPp would put sip:host:port in the digest's uri; RFC 3261 section
                # 22.4 wants the Request-URI, which the shipped callers build like this.
                # SIPp adds the "sip:" itself. A REGISTER's Request-URI is the domain
                # alone (RFC 3261 section 10.2), which is what SIPp puts there anyway.
                args += ["-auth_uri", f"{service}@{remote[0]}:{remote[1]}"]
        if calls is not None:
            args += ["-m", str(calls)]
        if rate is not None:
            args += ["-r", _rate_text(rate)]
        if limit is not None:
            args += ["-l", str(limit)]
        if recv_timeout_ms is not None:
            args += ["-recv_timeout", str(recv_timeout_ms)]
        if call_id is not None:
            args += ["-cid_str", call_id]
        args += list(extra_args)
        if remote is not None:
            args.append(f"{remote[0]}:{remote[1]}")
        self.args = args
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        logger.debug("starting %s", " ".join(self.args))
        with self.stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                self.args,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        return self

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout_s: float) -> SippResult:
        """Wait for SIPp to finish; on timeout kill it and raise :class:`SippTimeout`."""
        process = self._require()
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise SippTimeout(f"{self.name}: sipp still running after {timeout_s} s") from exc
        return self._result(returncode)

    def stop(self, grace_s: float = 5.0) -> SippResult:
        """Stop a running SIPp (SIGTERM, then SIGKILL) and read what it did."""
        process = self._require()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %s s; killing it", self.name, grace_s)
                self.kill()
        return self._result(process.returncode if process.returncode is not None else -9)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def result(self) -> SippResult:
        """What SIPp has done so far (statistics are written every second)."""
        process = self._require()
        return self._result(process.returncode if process.returncode is not None else -1)

    def _require(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise SippError(f"{self.name} was never started")
        return self._process

    def _result(self, returncode: int) -> SippResult:
        stderr = _read_text(self.stderr_path)
        if returncode in (EXIT_FATAL, EXIT_FATAL_BIND):
            if "authentication must use MD5" in stderr:
                raise SippAuthUnsupported(
                    f"{self.name}: sipp cannot answer the challenge", returncode, stderr
                )
            raise SippFatal(f"{self.name}: sipp failed", returncode, stderr)
        errors = _read_text(self.error_path)[-4000:] + stderr[-1000:]
        return SippResult(
            returncode=returncode,
            stats=read_stats(self.stat_path),
            final_codes=read_final_codes(self.log_path),
            errors=errors,
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


def _rate_text(rate: float) -> str:
    return str(int(rate)) if float(rate).is_integer() else f"{rate:.3f}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="latin-1")
    except FileNotFoundError:
        return ""


def wait_until_listening(port: int, host: str = LOOPBACK, timeout_s: float = 5.0) -> bool:
    """Whether something has bound UDP ``host:port`` within ``timeout_s``.

    UDP has no handshake, so this asks the kernel: binding the port fails once it is
    taken.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return True
        time.sleep(0.05)
    return False
