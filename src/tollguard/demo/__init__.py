"""``tollguard demo``: a throw-away switch with sample data and simulated peers.

It initialises a temporary data directory, loads a plan with one customer, two
providers and their rate cards, and starts the switch. When SIPp is installed it also
plays both sides of the network on loopback — a carrier that answers 503 (the cheapest,
so every call fails over), a carrier that answers, and a customer placing a few
digest-authenticated calls — and prints the rated CDRs. The switch then keeps serving
until Ctrl-C, and the directory is deleted.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DemoPlan", "demo_plan", "run"]

DEMO_CALLS = 5
DEMO_NUMBER = "00447700900123"  # Ofcom's drama range: never a real subscriber


@dataclass(frozen=True, slots=True)
class DemoPlan:
    document: dict[str, Any]
    username: str
    password: str


def demo_plan(cheap_port: int, backup_port: int) -> DemoPlan:
    """The demo's provisioning document; the account password is generated each time."""
    password = secrets.token_urlsafe(12)
    username = "demo-office"
    document = {
        "rate_cards": [
            {
                "name": "demo-retail",
                "kind": "sell",
                "currency": "EUR",
                "rounding": "up",
                "decimals": 4,
                "rates": [
                    {
                        "prefix": "44",
                        "destination": "United Kingdom",
                        "price_per_minute": "0.0200",
                        "initial_increment": 60,
                        "next_increment": 60,
                    },
                    {
                        "prefix": "447",
                        "destination": "United Kingdom mobile",
                        "price_per_minute": "0.0900",
                        "connect_fee": "0.0100",
                        "initial_increment": 30,
                        "next_increment": 6,
                    },
                    {"prefix": "33", "destination": "France", "price_per_minute": "0.0250"},
                ],
            },
            {
                "name": "cheapcarrier-cost",
                "kind": "cost",
                "rates": [
                    {
                        "prefix": "44",
                        "destination": "United Kingdom",
                        "price_per_minute": "0.0050",
                        "initial_increment": 1,
                        "next_increment": 1,
                    },
                    {
                        "prefix": "447",
                        "destination": "United Kingdom mobile",
                        "price_per_minute": "0.0300",
                        "initial_increment": 1,
                        "next_increment": 1,
                    },
                ],
            },
            {
                "name": "backupcarrier-cost",
                "kind": "cost",
                "rates": [
                    {
                        "prefix": "44",
                        "destination": "United Kingdom",
                        "price_per_minute": "0.0080",
                        "initial_increment": 1,
                        "next_increment": 1,
                    },
                    {
                        "prefix": "447",
                        "destination": "United Kingdom mobile",
                        "price_per_minute": "0.0450",
                        "initial_increment": 1,
                        "next_increment": 1,
                    },
                    {
                        "prefix": "33",
                        "destination": "France",
                        "price_per_minute": "0.0100",
                        "initial_increment": 1,
                        "next_increment": 1,
                    },
                ],
            },
        ],
        "providers": [
            {
                "name": "cheapcarrier",
                "cost_card": "cheapcarrier-cost",
                "gateways": [
                    {
                        "name": "cheapcarrier-gw",
                        "host": "127.0.0.1",
                        "port": cheap_port,
                        "transport": "udp",
                    }
                ],
            },
            {
                "name": "backupcarrier",
                "cost_card": "backupcarrier-cost",
                "gateways": [
                    {
                        "name": "backupcarrier-gw",
                        "host": "127.0.0.1",
                        "port": backup_port,
                        "transport": "udp",
                    }
                ],
            },
        ],
        "customers": [
            {
                "name": "demo-customer",
                "sell_card": "demo-retail",
                "strategy": "lcr",
                # Postpaid on credit: calls are reserved against the limit and charged.
                "credit": {"mode": "postpaid", "credit_limit": "100"},
                "numbering": {
                    "country_code": "44",
                    "national_prefix": "0",
                    "international_prefix": "00",
                },
                "accounts": [{"username": username, "password": password, "allow_md5": True}],
            },
        ],
    }
    return DemoPlan(document, username, password)


@contextmanager
def _switch(data_dir: Path, *, web: bool) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run ``tollguard serve``; yield the process and the UDP port it listens on."""
    command = [sys.executable, "-m", "tollguard.cli", "--data-dir", str(data_dir), "serve"]
    if not web:
        command.append("--no-web")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = 0
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("switch listening on udp:"):
                port = int(line.rsplit(":", 1)[1])
                break
        if not port:
            raise RuntimeError("the switch stopped before it listened on UDP")
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _print_cdrs() -> int:
    from rich.console import Console
    from rich.table import Table

    from tollguard.web.carriers.models import Provider
    from tollguard.web.cdr.models import Cdr

    table = Table(title="CDRs written by the switch")
    for column in (
        "callee",
        "destination",
        "code",
        "attempts",
        "provider",
        "billed s",
        "sell",
        "cost",
        "margin",
    ):
        table.add_column(column)
    providers = dict(Provider.objects.values_list("id", "name"))
    cdrs = list(Cdr.objects.order_by("started_at"))
    for cdr in cdrs:
        table.add_row(
            cdr.callee,
            cdr.destination,
            str(cdr.sip_code),
            str(len(cdr.attempts or [])),
            providers.get(cdr.provider_id or 0, "-"),
            str(cdr.billed_s),
            str(cdr.sell_amount),
            str(cdr.cost_amount),
            str(cdr.margin),
        )
    Console(width=140).print(table)
    return len(cdrs)


def run(*, sip_port: int, web_port: int, web: bool, once: bool = False) -> int:
    """Run the demo; with ``once``, exit after the demo calls (status 1 if any failed)."""
    from tollguard import config, datadir
    from tollguard.bench import sippctl

    data_dir = Path(tempfile.mkdtemp(prefix="tollguard-demo-"))
    try:
        admin_user = datadir.default_admin_user()
        settings, admin_password = datadir.init_data_dir(
            data_dir,
            bind="127.0.0.1",
            sip_port=sip_port,
            web_port=web_port,
            admin_user=admin_user,
        )
        # The demo caller is SIPp, which answers only the first challenge and only MD5.
        settings = replace(
            settings, sip=replace(settings.sip, digest_algorithms=("MD5", "SHA-256"))
        )
        settings.settings_path.write_text(config.dump(settings))
        from tollguard.web import provisioning  # Django is set up by init_data_dir

        cheap_port, backup_port = sippctl.free_udp_ports(2)
        plan = demo_plan(cheap_port, backup_port)
        plan_path = data_dir / "demo-plan.yaml"
        plan_path.write_text(yaml.safe_dump(plan.document, sort_keys=False))
        report = provisioning.load_plan_file(plan_path, realm=settings.sip.realm)
        print(f"Demo data directory: {data_dir} (deleted on exit)")
        print(report.summary())
        if web:
            print(
                f"Admin: https://{settings.web.listen_host}:{settings.web.listen_port}/"
                f"{settings.web.admin_path}  user {admin_user!r}, password {admin_password}"
            )
        print(f"SIP account: {plan.username} / {plan.password} (realm {settings.sip.realm!r})")
        with ExitStack() as stack:
            switch, udp_port = stack.enter_context(_switch(data_dir, web=web))
            if shutil.which("sipp"):
                completed = _play_calls(
                    stack,
                    data_dir=data_dir,
                    sip_port=udp_port,
                    cheap_port=cheap_port,
                    backup_port=backup_port,
                    plan=plan,
                )
                written = _print_cdrs()
                if once:
                    return 0 if completed == written == DEMO_CALLS else 1
            else:
                print(
                    "SIPp is not installed (Debian: apt-get install sip-tester): the demo "
                    "carriers and caller are skipped. Point a SIP client at "
                    f"127.0.0.1:{udp_port} with the account above."
                )
                if once:
                    return 1
            print("The switch keeps serving; Ctrl-C stops it.", flush=True)
            with suppress(KeyboardInterrupt):
                switch.wait()
        return 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _play_calls(
    stack: ExitStack,
    *,
    data_dir: Path,
    sip_port: int,
    cheap_port: int,
    backup_port: int,
    plan: DemoPlan,
) -> int:
    from tollguard.bench import sippctl

    work = data_dir / "sipp"
    stack.enter_context(
        sippctl.Sipp(
            "uas_reject",
            workdir=work,
            local_port=cheap_port,
            keys={"status": sippctl.status_line(503)},
            name="cheapcarrier",
        )
    )
    stack.enter_context(
        sippctl.Sipp(
            "uas_answer",
            workdir=work,
            local_port=backup_port,
            name="backupcarrier",
        )
    )
    for port in (cheap_port, backup_port):
        sippctl.wait_until_listening(port)
    caller_port = sippctl.free_udp_ports(1)[0]
    print(
        f"Placing {DEMO_CALLS} calls to {DEMO_NUMBER} as {plan.username}: the cheapest "
        "carrier answers 503, the switch fails over to the next one ...",
        flush=True,
    )
    caller = sippctl.Sipp(
        "uac_auth",
        workdir=work,
        local_port=caller_port,
        remote=("127.0.0.1", sip_port),
        service=DEMO_NUMBER,
        auth=(plan.username, plan.password),
        calls=DEMO_CALLS,
        rate=5,
        pause_ms=2000,
        name="customer",
    )
    with caller:
        result = caller.wait(timeout_s=60)
    print(f"Customer side: {result.successful} calls completed, {result.failed} failed.")
    time.sleep(2)  # the switch writes CDRs in batches, at most one flush interval later
    return result.successful
