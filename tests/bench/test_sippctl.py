"""The SIPp runner: file parsing, and every shipped scenario played against its peer."""

from __future__ import annotations

import shutil
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tollguard.bench import sippctl
from tollguard.bench.sipp import SCENARIOS, scenario_path
from tollguard.bench.sippctl import LOOPBACK, Sipp, free_udp_ports, wait_until_listening

HEADER = (
    "StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;"
    "CallRate(P);CallRate(C);IncomingCall(P);IncomingCall(C);OutgoingCall(P);"
    "OutgoingCall(C);TotalCallCreated;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);"
    "FailedCall(P);FailedCall(C);FailedUnexpectedMessage(P);FailedUnexpectedMessage(C);"
    "FailedTimeoutOnRecv(P);FailedTimeoutOnRecv(C);Retransmissions(P);Retransmissions(C);"
)


def row(created: int, ok: int, failed: int, elapsed: str = "00:00:02:500000") -> str:
    return (
        f"a;b;c;00:00:01;{elapsed};10;9.5;9.8;0;0;{created};{created};{created};"
        f"{created - ok - failed};{ok};{ok};{failed};{failed};0;{failed};0;0;1;3;"
    )


def test_read_stats_takes_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text("\n".join([HEADER, row(5, 5, 0), row(20, 17, 2)]) + "\n")
    stats = sippctl.read_stats(path)
    assert stats is not None
    assert (stats.created, stats.successful, stats.failed, stats.current) == (20, 17, 2, 1)
    assert stats.failed_unexpected == 2
    assert stats.retransmissions == 3
    assert stats.elapsed_s == pytest.approx(2.5)
    assert stats.call_rate == pytest.approx(9.8)


def test_open_calls_count_as_failed(tmp_path: Path) -> None:
    path = tmp_path / "stats.csv"
    path.write_text(f"{HEADER}\n{row(20, 17, 2)}\n")
    result = sippctl.SippResult(returncode=1, stats=sippctl.read_stats(path))
    assert not result.ok
    assert result.failed == 3  # 2 failed + 1 still open when SIPp stopped


def test_missing_files_mean_no_data(tmp_path: Path) -> None:
    assert sippctl.read_stats(tmp_path / "none.csv") is None
    assert sippctl.read_final_codes(tmp_path / "none.log") == {}


def test_final_codes_from_log_lines(tmp_path: Path) -> None:
    path = tmp_path / "calls.log"
    path.write_text(
        "final 1-42@127.0.0.1 200\n"
        "checked 2-42@127.0.0.1 want 486 got 486 mismatch 0\n"
        "final 2-42@127.0.0.1 486\n"
    )
    assert sippctl.read_final_codes(path) == {"1-42@127.0.0.1": 200, "2-42@127.0.0.1": 486}


@pytest.mark.parametrize(
    ("code", "line"),
    [(503, "SIP/2.0 503 Service Unavailable"), (486, "SIP/2.0 486 Busy Here"), (499, None)],
    ids=["503", "486", "unlisted"],
)
def test_status_line(code: int, line: str | None) -> None:
    assert sippctl.status_line(code) == (line or f"SIP/2.0 {code} Rejected")


def test_free_udp_ports_are_distinct_and_bindable() -> None:
    ports = free_udp_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK, port))


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios_are_installed_and_well_formed(name: str) -> None:
    root = ET.parse(scenario_path(name)).getroot()
    assert root.tag == "scenario"
    assert scenario_path(f"{name}.xml") == scenario_path(name)


def test_unknown_scenario() -> None:
    with pytest.raises(KeyError, match="unknown SIPp scenario"):
        scenario_path("uac_nonsense")


PAIRS = [
    ("uac_basic", {}, "uas_answer", {}, 0, {200}, True),
    ("uac_expect_code", {"expected": "486"}, "uas_reject",
     {"status": sippctl.status_line(486)}, 0, {486}, True),
    ("uac_expect_code", {"expected": "404"}, "uas_reject",
     {"status": sippctl.status_line(503)}, 0, {503}, False),
    ("uac_cancel", {}, "uas_ring_cancel", {}, 0, {487}, True),
    ("uac_callee_hangup", {}, "uas_hangup", {}, 200, {200}, True),
]  # fmt: skip


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
@pytest.mark.parametrize(
    ("caller", "caller_keys", "gateway", "gateway_keys", "gateway_pause", "codes", "ok"),
    PAIRS,
    ids=["answer", "expected-486", "unexpected-503-fails", "cancel", "callee-hangup"],
)
def test_scenario_pairs_back_to_back(
    tmp_path: Path,
    caller: str,
    caller_keys: dict[str, str],
    gateway: str,
    gateway_keys: dict[str, str],
    gateway_pause: int,
    codes: set[int],
    ok: bool,
) -> None:
    gateway_port, caller_port = free_udp_ports(2)
    with Sipp(
        gateway, workdir=tmp_path, local_port=gateway_port, keys=gateway_keys,
        pause_ms=gateway_pause,
    ) as uas:  # fmt: skip
        assert wait_until_listening(gateway_port)
        result = Sipp(
            caller, workdir=tmp_path, local_port=caller_port, remote=(LOOPBACK, gateway_port),
            service="00442079460000", keys=caller_keys, calls=3, rate=20, pause_ms=100,
            recv_timeout_ms=3000,
        ).start().wait(20)  # fmt: skip
        assert uas.running()
    assert result.ok is ok, result.errors
    assert result.stats is not None
    assert result.stats.created == 3
    assert (result.successful, result.failed) == ((3, 0) if ok else (0, 3))
    assert len(result.final_codes) == 3
    assert set(result.final_codes.values()) == codes


CHALLENGE = Path(__file__).parent / "scenarios" / "uas_challenge.xml"


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
@pytest.mark.parametrize(
    ("caller", "password", "expected", "codes"),
    [
        ("uac_auth", "secret", None, {200}),
        ("uac_auth_expect_code", "wrong", "403", {403}),
    ],
    ids=["right-password", "wrong-password"],
)
def test_digest_md5_against_a_challenging_gateway(
    tmp_path: Path, caller: str, password: str, expected: str | None, codes: set[int]
) -> None:
    gateway_port, caller_port = free_udp_ports(2)
    with Sipp(
        CHALLENGE, workdir=tmp_path, local_port=gateway_port,
        keys={"user": "alice", "password": "secret"},
    ):  # fmt: skip
        assert wait_until_listening(gateway_port)
        result = Sipp(
            caller, workdir=tmp_path, local_port=caller_port, remote=(LOOPBACK, gateway_port),
            service="00442079460000", auth=("alice", password),
            keys={"caller": "alice", **({"expected": expected} if expected else {})},
            calls=2, rate=10, recv_timeout_ms=3000,
        ).start().wait(20)  # fmt: skip
    assert result.ok, result.errors
    assert result.successful == 2
    assert set(result.final_codes.values()) == codes


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (
            "Resolving remote host '127.0.0.1'... Done.\n2026-11-22\t01:09:19.178280\t"
            "1795309759.178280: createAuthHeader: authentication must use MD5 or AKAv1-MD5\n",
            "createAuthHeader: authentication must use MD5 or AKAv1-MD5",
        ),
        ("", ""),
    ],
    ids=["timestamped", "empty"],
)
def test_fatal_error_reason_drops_sipp_timestamp(stderr: str, reason: str) -> None:
    error = sippctl.SippAuthUnsupported("caller", 255, stderr)
    assert error.reason == reason
    assert error.returncode == 255
    assert str(error).endswith(f"(exit 255): {reason}")
