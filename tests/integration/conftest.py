"""The shared switch: a real ``tollguard serve`` between SIPp callers and SIPp gateways.

See ``harness.py`` for the plan. It lives for the tests of this package (not the whole
session: its gateways and the switch would idle through the rest of the run). Every
subprocess is killed on the way out, also when a test fails; the switch is stopped with
SIGTERM so it flushes its CDRs. The shells that read the data directories
(``harness.DjangoShell``) are stopped then too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import (
    PROVIDERS,
    REGISTER_MIN_EXPIRES_S,
    SESSION_MIN_SE_S,
    SETUP_TIMEOUT_S,
    Switch,
    build_plan,
    close_shells,
)
from .switches import own_switch


@pytest.fixture(scope="package")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switch]:
    root = tmp_path_factory.mktemp("sipp-calls")
    settings = {
        "sip": {
            "gateway_setup_timeout_s": SETUP_TIMEOUT_S,
            # Short session intervals may be asked for (RFC 4028 says 90 s at
            # least), so that a vanished caller is seen within seconds.
            "session_min_se_s": SESSION_MIN_SE_S,
            # Bindings short enough to watch one expire.
            "register_min_expires_s": REGISTER_MIN_EXPIRES_S,
        },
    }
    with own_switch(root, PROVIDERS, build_plan, settings) as running:
        yield running


@pytest.fixture(scope="package", autouse=True)
def _shells() -> Iterator[None]:
    yield
    close_shells()
