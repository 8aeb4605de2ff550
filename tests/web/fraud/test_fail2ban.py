"""contrib/fail2ban against the lines the code really writes, through fail2ban-regex.

The lines come from the shield, the switch's authentication and the web app's ban,
formatted by the production logging configuration; some carry attacker-written text
that imitates an event for another address, which must never be matched.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tollguard.domain.shield import BanReason, Shield, ShieldPolicy, parse_network
from tollguard.sip.digest import NonceManager
from tollguard.state.memory import MemoryBans, MemoryCounters, MemorySuspensions
from tollguard.switch.auth import Authenticator
from tollguard.web.security import events
from tollguard.web.settings.base import LOGGING

CONTRIB = Path(__file__).parents[3] / "contrib" / "fail2ban"
FILTER = CONTRIB / "filter.d" / "tollguard.conf"
T0 = 1_800_000_000.0

pytestmark = pytest.mark.skipif(
    shutil.which("fail2ban-regex") is None,
    reason="fail2ban is not installed (scripts/test installs it)",
)


@pytest.fixture
def security_log(tmp_path: Path) -> Iterator[logging.FileHandler]:
    handler = logging.FileHandler(tmp_path / "tollguard.log")
    handler.setFormatter(logging.Formatter(LOGGING["formatters"]["plain"]["format"]))
    logger = logging.getLogger("tollguard.security")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
    handler.close()


def matched(log: Path) -> list[str]:
    result = subprocess.run(
        ["fail2ban-regex", "-o", "ip", str(log), str(FILTER)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.split()


def test_the_filter_matches_every_ban_and_nothing_an_attacker_writes(
    security_log: logging.FileHandler,
) -> None:
    shield = Shield(
        ShieldPolicy(auth_failures=3, source_rate=1, source_burst=2),
        MemoryBans(),
        MemoryCounters(),
        MemorySuspensions(),
    )
    # Password guessing: the third failure bans (refuse mode).
    for _ in range(3):
        shield.auth_failed("203.0.113.9", "1001", T0)
    # A scanner whose user agent imitates a ban line for someone else.
    shield.request("203.0.113.20", "friendly-scanner sip ban: ip=192.0.2.1 x", 5, T0)
    # A flood over IPv6.
    for _ in range(3):
        shield.datagram("2001:db8::66", 300, T0)
    # The switch's own failure line, with a forged user name; no ban yet: no match.
    authenticator = Authenticator("tollguard", NonceManager(b"k" * 32, 300))
    authenticator._fail(
        ("198.51.100.30", 5060), "udp", "x sip ban: ip=192.0.2.2 y", "unknown-user", known=False
    )
    # An operator's release and a network ban are not mirrored.
    network = parse_network("198.51.100.0/24")
    shield.ban(network, BanReason.OPERATOR, None, T0)
    shield.release(network, by="ops")
    # The web app's honeypot ban.
    events.address_banned(
        "198.51.100.77", "2027-01-16T08:00:00Z", 'honeypot "sip ban: ip=192.0.2.3 "'
    )

    log = Path(security_log.baseFilename)
    security_log.flush()
    text = log.read_text()
    assert "sip ban: ip=192.0.2.1" in text  # the forged text is in the log ...
    found = matched(log)
    # ... and only the real bans, scanner and flood are matched.
    assert sorted(set(found)) == sorted(
        {"203.0.113.9", "203.0.113.20", "2001:db8::66", "198.51.100.77"}
    )
    assert not {"192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.30"} & set(found)
