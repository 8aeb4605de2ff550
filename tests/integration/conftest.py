"""Session fixture: a real ``tollguard serve`` between SIPp callers and SIPp gateways.

See ``harness.py`` for the plan. Every subprocess is killed on the way out, also when a
test fails; the switch is stopped with SIGTERM so it flushes its CDRs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tollguard.bench.calls import TollguardServer, sipp_digest_settings
from tollguard.bench.sippctl import Sipp, free_udp_ports, wait_until_listening

from .harness import (
    PROVIDERS,
    REGISTER_MIN_EXPIRES_S,
    SESSION_MIN_SE_S,
    SETUP_TIMEOUT_S,
    Switch,
    build_plan,
    provisioned_ids,
)


@pytest.fixture(scope="session")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switch]:
    root = tmp_path_factory.mktemp("sipp-calls")
    gateways: dict[str, Sipp] = {}
    server: TollguardServer | None = None
    try:
        ports = free_udp_ports(len(PROVIDERS) + 1)
        for (name, provider), port in zip(PROVIDERS.items(), ports, strict=False):
            gateways[name] = Sipp(
                provider.scenario,
                workdir=root / "gateways",
                name=f"gw-{name}",
                local_port=port,
                keys=provider.keys,
                pause_ms=provider.pause_ms,
            ).start()
        for name, gateway in gateways.items():
            assert wait_until_listening(gateway.local_port), f"gateway {name} did not start"
        server = TollguardServer(
            root / "data",
            sip_port=ports[-1],
            settings={
                "sip": {
                    "gateway_setup_timeout_s": SETUP_TIMEOUT_S,
                    # Short session intervals may be asked for (RFC 4028 says 90 s at
                    # least), so that a vanished caller is seen within seconds.
                    "session_min_se_s": SESSION_MIN_SE_S,
                    # Bindings short enough to watch one expire.
                    "register_min_expires_s": REGISTER_MIN_EXPIRES_S,
                    **sipp_digest_settings().get("sip", {}),
                },
                "cdr": {"flush_interval_s": 0.2},
            },
        )
        server.init()
        server.load(build_plan({name: gw.local_port for name, gw in gateways.items()}))
        ids = provisioned_ids(server)
        server.start()
        yield Switch(
            server=server,
            workdir=root / "callers",
            gateways=gateways,
            provider_ids=ids["providers"],
            gateway_ids=ids["gateways"],
            customer_ids=ids["customers"],
        )
    finally:
        if server is not None:
            server.stop()
        for gateway in gateways.values():
            gateway.kill()
