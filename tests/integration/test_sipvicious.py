"""SIPVicious, the stock SIP scanner and cracker, against a real ``tollguard serve``.

Each tool runs as a subprocess from an address of its own on loopback, against the
switch's run-time port, with a time bound. The switch has a digest account ``100`` with
a strong secret: exactly what ``svwar`` looks for and ``svcrack`` attacks. The tools
announce themselves (``User-Agent: friendly-scanner``): the shield drops their first
request unanswered and bans the address, so they find nothing.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.bench.sippctl import LOOPBACK

from .harness import Switch, list_bans, rate
from .switches import card, own_switch, provider

pytestmark = pytest.mark.integration

EXTENSION = "100"
SECRET = secrets.token_urlsafe(24)
MAP_HOST, WAR_HOST, CRACK_HOST = "127.0.0.10", "127.0.0.11", "127.0.0.12"
DISGUISED_HOST, CONTROL_HOST = "127.0.0.13", "127.0.0.14"
REGISTER_WAR_HOST, REGISTER_CRACK_HOST = "127.0.0.15", "127.0.0.16"
PHONE_AGENT = "Yealink SIP-T46S 66.86.0.15"


# svwar and svcrack have a -b option but never pass it on: their socket is bound to
# every address, and packets to 127.0.0.1 leave from 127.0.0.1, a gateway's address
# (allow-listed). This runs the stock tool with its unbound socket bound to ``host``
# and, as an attacker would, optionally with another user agent.
FROM_HOST = """
import importlib, socket, sys
host, agent, tool = sys.argv[1:4]
if agent:
    from sipvicious.libs import svhelper
    svhelper.makeRequest.__defaults__ = tuple(
        agent if value == "friendly-scanner" else value
        for value in svhelper.makeRequest.__defaults__
    )
bind = socket.socket.bind
def bind_to_host(self, address):
    if isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
        address = (host, *address[1:])
    return bind(self, address)
socket.socket.bind = bind_to_host
sys.argv = [tool.rpartition(".")[2], *sys.argv[4:]]
importlib.import_module(tool).main()
"""


def plan(ports: Mapping[str, int]) -> dict[str, Any]:
    return {
        "rate_cards": [
            card("sell", "sell", [rate("44", Decimal("0.6000"))]),
            card("cost", "cost", [rate("44", Decimal("0.3000"))]),
        ],
        "providers": [provider("alpha", ports["alpha"], "cost")],
        "customers": [
            {
                "name": "office",
                "sell_card": "sell",
                "credit": {"mode": "postpaid", "credit_limit": "1000000"},
                "numbering": {"country_code": "44"},
                "accounts": [{"username": EXTENSION, "password": SECRET, "allow_md5": True}],
            }
        ],
    }


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switch]:
    root = tmp_path_factory.mktemp("sipvicious")
    with own_switch(root, {"alpha": "uas_answer"}, plan) as switch:
        yield switch


def run(switch: Switch, home: Path, name: str, host: str, *args: str, agent: str = "") -> str:
    """Run a SIPVicious tool from ``host`` against the switch, to its end (bounded);
    ``agent`` replaces its ``friendly-scanner`` user agent."""
    home.mkdir(parents=True, exist_ok=True)
    target = ("-p", str(switch.port), LOOPBACK)
    done = subprocess.run(
        [sys.executable, "-c", FROM_HOST, host, agent, f"sipvicious.{name}", *args, *target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=home,
        env={**os.environ, "HOME": str(home)},  # its session files stay in the test's
    )
    return done.stdout + done.stderr


def banned(switch: Switch, address: str, timeout_s: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    listed: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        listed = list_bans(switch.server)
        for ban in listed:
            if ban["network"] in {address, f"{address}/32"}:
                return ban
        time.sleep(0.1)
    raise AssertionError(f"{address} is not banned: {listed}")


def assert_banned_as_scanner(switch: Switch, host: str) -> None:
    ban = banned(switch, host)
    assert (ban["reason"], ban["mode"]) == ("scanner", "drop"), ban
    # One line on the security log, the one fail2ban reads.
    assert f'sip scanner: ip={host} agent="friendly-scanner"' in switch.server.log()


def test_svmap_finds_nothing_and_is_banned(scanned: Switch, tmp_path: Path) -> None:
    out = run(scanned, tmp_path, "svmap", MAP_HOST, "-b", MAP_HOST)
    assert "found nothing" in out, out
    assert "Tollguard" not in out, out
    assert_banned_as_scanner(scanned, MAP_HOST)


def test_svwar_enumerates_no_extension(scanned: Switch, tmp_path: Path) -> None:
    out = run(scanned, tmp_path, "svwar", WAR_HOST, "-e", "90-110", "-m", "INVITE")
    assert "found nothing" in out, out
    assert f"| {EXTENSION} " not in out, out
    assert_banned_as_scanner(scanned, WAR_HOST)


def test_svcrack_finds_no_password_and_is_banned(scanned: Switch, tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("\n".join(["1234", "password", EXTENSION, "secret", SECRET[:-1]]) + "\n")
    out = run(scanned, tmp_path, "svcrack", CRACK_HOST, "-u", EXTENSION, "-d", str(words))
    assert "found nothing" in out, out
    assert SECRET not in out, out
    assert_banned_as_scanner(scanned, CRACK_HOST)


def test_svcrack_in_disguise_is_banned_after_five_guesses(scanned: Switch, tmp_path: Path) -> None:
    """With a phone's user agent svcrack is no scanner by name: its wrong passwords ban
    it (5 within 10 minutes) in refuse mode, so that afterwards even the right password
    fails, without a sign that anything changed."""
    words = tmp_path / "words.txt"
    wrong = [f"guess{n}" for n in range(8)]
    words.write_text("\n".join(wrong) + "\n")
    out = run(
        scanned, tmp_path, "svcrack", DISGUISED_HOST, "-u", EXTENSION, "-d", str(words),
        "-m", "INVITE", agent=PHONE_AGENT,
    )  # fmt: skip
    assert "found nothing" in out, out
    ban = banned(scanned, DISGUISED_HOST)
    assert (ban["reason"], ban["mode"]) == ("auth-failures", "refuse"), ban
    log = scanned.server.log()
    assert f"sip scanner: ip={DISGUISED_HOST}" not in log
    # Every guess was answered, as to any wrong password: the guesser sees no ban.
    failures = [line for line in log.splitlines() if f"auth failure: ip={DISGUISED_HOST} " in line]
    assert len(failures) == len(wrong), failures
    # The right password from the banned address: the same 403.
    _, result = scanned.call(
        "uac_auth_expect_code", "00442079460000", host=DISGUISED_HOST,
        auth=(EXTENSION, SECRET), keys={"caller": EXTENSION, "expected": "403"},
    )  # fmt: skip
    assert result.ok, result.errors
    # From an address of its own, the same password places the call: the ban, not the
    # password, refused it.
    _, result = scanned.call(
        "uac_auth", "00442079460000", host=CONTROL_HOST, auth=(EXTENSION, SECRET),
        keys={"caller": EXTENSION},
    )  # fmt: skip
    assert result.ok, result.errors


def test_svwar_over_register_in_disguise_enumerates_no_extension(
    scanned: Switch, tmp_path: Path
) -> None:
    """svwar's REGISTER mode with a phone's user agent: every extension, real or not,
    gets the same 401 from the registrar, so svwar finds nothing to tell apart."""
    out = run(
        scanned, tmp_path, "svwar", REGISTER_WAR_HOST, "-e", "90-110", "-m", "REGISTER",
        agent=PHONE_AGENT,
    )  # fmt: skip
    assert f"| {EXTENSION} " not in out, out
    assert "found nothing" in out or "same response" in out.lower(), out


def test_svcrack_over_register_in_disguise_is_banned_after_five_guesses(
    scanned: Switch, tmp_path: Path
) -> None:
    """svcrack's default method is REGISTER: the registrar counts its wrong passwords
    towards the shield's ban exactly as wrong passwords on calls."""
    words = tmp_path / "words.txt"
    wrong = [f"reg-guess{n}" for n in range(8)]
    words.write_text("\n".join(wrong) + "\n")
    out = run(
        scanned, tmp_path, "svcrack", REGISTER_CRACK_HOST, "-u", EXTENSION, "-d", str(words),
        agent=PHONE_AGENT,
    )  # fmt: skip
    assert "found nothing" in out, out
    assert SECRET not in out, out
    ban = banned(scanned, REGISTER_CRACK_HOST)
    assert (ban["reason"], ban["mode"]) == ("auth-failures", "refuse"), ban
    failures = [
        line
        for line in scanned.server.log().splitlines()
        if f"auth failure: ip={REGISTER_CRACK_HOST} " in line
    ]
    assert len(failures) == len(wrong), failures
