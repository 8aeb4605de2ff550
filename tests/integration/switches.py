"""A ``tollguard serve`` with its plan and SIPp gateways.

The session switch (``conftest.py``) is shared by the call tests; the shield and fraud
tests ban addresses, suspend accounts and fill limits, so each of their modules runs a
switch of its own. Both are started by :func:`own_switch`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from tollguard.bench.calls import TollguardServer, sipp_digest_settings
from tollguard.bench.sippctl import LOOPBACK, Sipp, free_udp_ports, wait_until_listening

from .harness import Provider, Switch, close_shell, django_shell, provisioned_ids

SCENARIOS = Path(__file__).with_name("sipp")


@contextlib.contextmanager
def own_switch(
    root: Path,
    gateways: Mapping[str, str] | Mapping[str, Provider],
    plan: Callable[[Mapping[str, int]], dict[str, Any]],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    tcp: bool = False,
) -> Iterator[Switch]:
    """Run SIPp gateways (name -> scenario, or a :class:`Provider` with the keys and
    pause its scenario takes), then a switch loaded with ``plan(ports)``.

    ``settings`` override sections of the data directory's settings; SIPp's digest
    (MD5 offered first) and a fast CDR flush are always set. ``tcp``: the switch also
    listens on TCP, on the port of its UDP listener.
    """
    running: dict[str, Sipp] = {}
    server: TollguardServer | None = None
    try:
        ports = free_udp_ports(len(gateways) + 1)
        for (name, role), port in zip(gateways.items(), ports, strict=False):
            spec = Provider(role, "", Decimal(0)) if isinstance(role, str) else role
            running[name] = Sipp(
                spec.scenario,
                workdir=root / "gateways",
                name=f"gw-{name}",
                local_port=port,
                keys=spec.keys,
                pause_ms=spec.pause_ms,
            ).start()
        for name, gateway in running.items():
            assert wait_until_listening(gateway.local_port), f"gateway {name} did not start"
        overrides: dict[str, dict[str, Any]] = {
            "sip": dict(sipp_digest_settings()["sip"]),
            "cdr": {"flush_interval_s": 0.2},
        }
        for section, values in (settings or {}).items():
            overrides.setdefault(section, {}).update(values)
        if tcp:
            port = ports[-1]
            overrides["sip"]["listen"] = (f"udp:{LOOPBACK}:{port}", f"tcp:{LOOPBACK}:{port}")
        server = TollguardServer(root / "data", sip_port=ports[-1], settings=overrides)
        server.init()
        server.load(plan({name: gw.local_port for name, gw in running.items()}))
        # The shell that reads the database starts while the switch does.
        django_shell(server)
        server.start()
        ids = provisioned_ids(server)
        yield Switch(
            server=server,
            workdir=root / "callers",
            gateways=running,
            provider_ids=ids["providers"],
            gateway_ids=ids["gateways"],
            customer_ids=ids["customers"],
        )
    finally:
        if server is not None:
            server.stop()
            close_shell(server)
        for gateway in running.values():
            gateway.kill()


def card(name: str, kind: str, rates: list[dict[str, Any]]) -> dict[str, Any]:
    """A rate card of the plan, in EUR."""
    return {"name": name, "kind": kind, "currency": "EUR", "rates": rates}


def provider(name: str, port: int, cost_card: str, priority: int = 1) -> dict[str, Any]:
    """A provider whose one gateway is the SIPp gateway on ``port``."""
    gateway = {"name": f"{name}-gw", "host": LOOPBACK, "port": port, "transport": "udp"}
    return {"name": name, "cost_card": cost_card, "priority": priority, "gateways": [gateway]}
