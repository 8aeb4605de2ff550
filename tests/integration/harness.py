"""Plan, gateways and helpers for the SIPp tests through a real ``tollguard serve``.

The shared fixture ``switch`` (``conftest.py``) runs one switch: a fresh data directory
(``tollguard init``), this plan loaded with ``tollguard load``, its gateways SIPp UAS
processes on ports chosen at run time, then ``tollguard serve --no-web``.

Routes: the called number picks the providers through their cost cards.

======  ===============================================  ================================
prefix  providers, in least-cost order                   gateway behaviour
======  ===============================================  ================================
4410    alpha                                            answers
4420    reject503, beta                                  503; answers
4430    busy, gamma                                      486 (no failover); answers
4440    silent, delta                                    never answers (setup timeout)
4450    ringer                                           rings until CANCEL
4460    hanger                                           answers, hangs up after 1 s
4470    dollar (cost card in USD), epsilon (EUR)         answers; answers
======  ===============================================  ================================

Customers: ``trunk`` is recognised by its source address (SIPp bound to 127.0.0.3),
``retail`` by digest (account ``alice``, MD5 allowed; ``desk1`` is a phone that
registers); both sell in EUR. ``yankee`` sells in USD (its sell card covers 44 too) and
calls from 127.0.0.4: the switch routes it only over ``dollar``, and the EUR customers
never over ``dollar``, cheapest as it is.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tollguard.bench.calls import TollguardServer
from tollguard.bench.sippctl import (
    LOOPBACK,
    Sipp,
    SippResult,
    free_udp_ports,
    status_line,
)

TRUNK_HOST = "127.0.0.3"  # the ACL customer's address
USD_HOST = "127.0.0.4"  # the address of the customer selling in USD
STRANGER_HOST = "127.0.0.2"  # in no ACL
ALICE = ("alice", "correct-horse-battery")
PHONE = ("desk1", "staple-battery-horse")  # registers (test_sipp_register.py)
REGISTER_MIN_EXPIRES_S = 1
SETUP_TIMEOUT_S = 1.0
SESSION_MIN_SE_S = 2
HANGUP_AFTER_MS = 1000

SELL_PER_MINUTE = Decimal("0.6000")  # 0.01 a second: amounts are exact
SELL_CONNECT_FEE = Decimal("0.0100")


@dataclass(frozen=True)
class Provider:
    """A provider of the test plan: its one gateway is a SIPp UAS running ``scenario``."""

    scenario: str
    prefix: str  # the route its cost card covers
    cost_per_minute: Decimal
    keys: Mapping[str, str] = field(default_factory=dict)
    pause_ms: int = 0
    currency: str = "EUR"  # of its cost card


PROVIDERS: dict[str, Provider] = {
    "alpha": Provider("uas_answer", "4410", Decimal("0.3000")),
    "reject503": Provider("uas_reject", "4420", Decimal("0.1200"), {"status": status_line(503)}),
    "beta": Provider("uas_answer", "4420", Decimal("0.2400")),
    "busy": Provider("uas_reject", "4430", Decimal("0.1200"), {"status": status_line(486)}),
    "gamma": Provider("uas_answer", "4430", Decimal("0.2400")),
    "silent": Provider("uas_silent", "4440", Decimal("0.1200")),
    "delta": Provider("uas_answer", "4440", Decimal("0.2400")),
    "ringer": Provider("uas_ring_cancel", "4450", Decimal("0.3000")),
    "hanger": Provider("uas_hangup", "4460", Decimal("0.3000"), pause_ms=HANGUP_AFTER_MS),
    "dollar": Provider("uas_answer", "4470", Decimal("0.0600"), currency="USD"),
    "epsilon": Provider("uas_answer", "4470", Decimal("0.2400")),
}


def number(prefix: str) -> str:
    """A called number for a route, dialled with the international prefix."""
    return f"00{prefix}{'0' * (12 - len(prefix))}1"


def rate(prefix: str, price: Decimal, *, connect_fee: Decimal = Decimal(0)) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "destination": f"Route {prefix}",
        "price_per_minute": str(price),
        "connect_fee": str(connect_fee),
        "initial_increment": 1,
        "next_increment": 1,
    }


def build_plan(gateway_ports: Mapping[str, int]) -> dict[str, Any]:
    cards = [
        {
            "name": "retail-sell",
            "kind": "sell",
            "currency": "EUR",
            "rates": [rate("44", SELL_PER_MINUTE, connect_fee=SELL_CONNECT_FEE)],
        },
        {
            "name": "retail-usd",
            "kind": "sell",
            "currency": "USD",
            "rates": [rate("44", SELL_PER_MINUTE, connect_fee=SELL_CONNECT_FEE)],
        },
    ]
    providers = []
    for priority, (name, provider) in enumerate(PROVIDERS.items(), start=1):
        prefix, cost = provider.prefix, provider.cost_per_minute
        cards.append(
            {
                "name": f"{name}-cost",
                "kind": "cost",
                "currency": provider.currency,
                "rates": [rate(prefix, cost)],
            }
        )
        providers.append(
            {
                "name": name,
                "cost_card": f"{name}-cost",
                "priority": priority,
                "gateways": [
                    {
                        "name": f"{name}-gw",
                        "host": LOOPBACK,
                        "port": gateway_ports[name],
                        "transport": "udp",
                    }
                ],
            }
        )
    numbering = {"country_code": "44"}
    return {
        "rate_cards": cards,
        "providers": providers,
        "customers": [
            {
                "name": "trunk",
                "sell_card": "retail-sell",
                "credit": {"mode": "postpaid", "credit_limit": "1000000"},
                "strategy": "lcr",
                "numbering": numbering,
                "acl": [{"network": f"{TRUNK_HOST}/32"}],
            },
            {
                "name": "retail",
                "sell_card": "retail-sell",
                "credit": {"mode": "postpaid", "credit_limit": "1000000"},
                "strategy": "lcr",
                "numbering": numbering,
                "accounts": [
                    {"username": ALICE[0], "password": ALICE[1], "allow_md5": True},
                    {"username": PHONE[0], "password": PHONE[1], "allow_md5": True},
                ],
            },
            {
                "name": "yankee",
                "sell_card": "retail-usd",
                # Its limit is in dollars, the currency of its sell card.
                "credit": {"mode": "postpaid", "credit_limit": "1000000"},
                "strategy": "lcr",
                "numbering": numbering,
                "acl": [{"network": f"{USD_HOST}/32"}],
            },
        ],
    }


@dataclass
class Switch:
    """The running switch, its gateways, and helpers to place calls and read CDRs."""

    server: TollguardServer
    workdir: Path
    gateways: dict[str, Sipp]
    provider_ids: dict[str, int] = field(default_factory=dict)
    gateway_ids: dict[str, int] = field(default_factory=dict)
    customer_ids: dict[str, int] = field(default_factory=dict)
    _runs: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def port(self) -> int:
        return self.server.sip_port

    def call(
        self,
        scenario: str,
        called: str,
        *,
        host: str = TRUNK_HOST,
        calls: int = 1,
        rate: float = 10,
        limit: int | None = None,
        pause_ms: int = 0,
        keys: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout_s: float = 30,
    ) -> tuple[str, SippResult]:
        """Run a SIPp caller to the end; return its Call-ID tag and what it did."""
        run = next(self._runs)
        tag = f"it{run}x{time.monotonic_ns() % 1_000_000}"
        (port,) = free_udp_ports(1, host=host)
        sipp = Sipp(
            scenario,
            workdir=self.workdir,
            name=f"caller-{run:02d}-{scenario}",
            local_host=host,
            local_port=port,
            remote=(LOOPBACK, self.port),
            service=called,
            keys=keys,
            auth=auth,
            calls=calls,
            rate=rate,
            limit=limit,
            pause_ms=pause_ms,
            recv_timeout_ms=10_000,
            # Call-IDs "<n>-<tag>@<ip>" let a test pick out its own CDRs.
            call_id=f"%u-{tag}@%s",
        )
        with sipp:
            return tag, sipp.wait(timeout_s)

    def cdrs(self, tag: str, count: int, timeout_s: float = 20) -> list[dict[str, Any]]:
        """The CDRs of the calls tagged ``tag``, once ``count`` of them are written."""
        if count == 0:
            # Nothing to wait for: give the writer one flush interval or more to be sure.
            time.sleep(min(timeout_s, 1.5))
        deadline = time.monotonic() + timeout_s
        mine: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            mine = self.tagged_cdrs(tag)
            if len(mine) >= count:
                # Let a late duplicate show up before the test counts them.
                time.sleep(0.3)
                return self.tagged_cdrs(tag)
            time.sleep(0.1)
        return mine

    def tagged_cdrs(self, tag: str) -> list[dict[str, Any]]:
        """The CDRs of the calls tagged ``tag`` written so far."""
        return [c for c in export_cdrs(self.server) if f"-{tag}@" in str(c.get("call_id", ""))]


# --- the data directory's database, read and written through the product's own code -----

# Runs inside ``tollguard manage shell``: each line on stdin is a JSON request
# ``{"code": ...}``; the code runs in a fresh namespace with its stdout captured, and
# one line ``<MARK>{"ok": ..., "out": ..., "error": ...}`` answers it.
_SHELL_MARK = "tollguard-test-shell:"
_SHELL_LOOP = f"""
import contextlib, io, json, sys, traceback
_answer = sys.stdout
for _line in sys.stdin:
    _out, _error = io.StringIO(), None
    try:
        with contextlib.redirect_stdout(_out):
            exec(json.loads(_line)["code"], {{"__name__": "__test_shell__"}})
    except BaseException:
        _error = traceback.format_exc()
    _answer.write({_SHELL_MARK!r} + json.dumps(
        {{"ok": _error is None, "out": _out.getvalue(), "error": _error}}) + "\\n")
    _answer.flush()
"""


class DjangoShell:
    """One ``tollguard manage shell`` on a data directory, kept running between reads.

    Starting Django costs a second or more; a test that polls the database would pay it
    on every read. This process pays it once: :meth:`run` sends it code, which runs in a
    fresh namespace (as ``manage shell -c`` would) and sees every commit the switch has
    made (SQLite in WAL mode, autocommit: no read holds an old snapshot).
    """

    def __init__(self, server: TollguardServer) -> None:
        self.data_dir = server.data_dir
        self.log_path = server.data_dir.parent / f"{server.data_dir.name}-shell.log"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*server.command, "--data-dir", str(server.data_dir), "manage", "shell",
                 "-c", _SHELL_LOOP],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def running(self) -> bool:
        return self._process.poll() is None

    def run(self, code: str, timeout_s: float = 60) -> str:
        """Everything ``code`` printed; an AssertionError with the traceback if it raised."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"code": code}) + "\n")
            self._process.stdin.flush()
        except OSError as exc:
            raise AssertionError(f"the shell on {self.data_dir} is gone: {self.log()}") from exc
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                self.close()
                raise AssertionError(f"no answer in {timeout_s} s: {self.log()}") from None
            if line is None:
                raise AssertionError(f"the shell on {self.data_dir} exited: {self.log()}")
            if line.startswith(_SHELL_MARK):
                break
        answer = json.loads(line[len(_SHELL_MARK) :])
        assert answer["ok"], answer["error"][-3000:]
        out: str = answer["out"]
        return out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        # The reader sees the end of the pipe once the process is gone.
        self._reader.join(10)
        if self._process.stdout is not None:
            self._process.stdout.close()


_shells: dict[Path, DjangoShell] = {}


def django_shell(server: TollguardServer) -> DjangoShell:
    """The running shell on ``server``'s data directory, started on first use."""
    shell = _shells.get(server.data_dir)
    if shell is None or not shell.running():
        shell = _shells[server.data_dir] = DjangoShell(server)
    return shell


def close_shell(server: TollguardServer) -> None:
    """Stop the shell on ``server``'s data directory, if one runs."""
    shell = _shells.pop(server.data_dir, None)
    if shell is not None:
        shell.close()


def close_shells() -> None:
    """Stop every shell (when the integration tests are done)."""
    while _shells:
        _shells.popitem()[1].close()


def manage_shell(server: TollguardServer, code: str) -> Any:
    """Run ``code`` in ``tollguard manage shell`` on the switch's data directory; the
    JSON its last line prints. The shell is started once and kept (:class:`DjangoShell`)."""
    out = django_shell(server).run(code)
    lines = out.strip().splitlines()
    assert lines, f"the code printed nothing: {code}"
    return json.loads(lines[-1])


def export_cdrs(server: TollguardServer) -> list[dict[str, Any]]:
    """Every CDR as ``tollguard cdr export --format json`` prints it (the same function
    writes them), read through the running shell."""
    code = (
        "import io\n"
        "from tollguard.web import adapters\n"
        "out = io.StringIO()\n"
        "adapters.export_cdrs('json', None, None, out)\n"
        "print(out.getvalue())\n"
    )
    exported = json.loads(django_shell(server).run(code) or "[]")
    assert isinstance(exported, list), exported
    return exported


def list_bans(server: TollguardServer) -> list[dict[str, Any]]:
    """The active bans with the fields ``tollguard bans list --json`` prints, read
    through the running shell."""
    code = (
        "import json\n"
        "from django.utils import timezone\n"
        "from tollguard.web.fraud.models import SipBan\n"
        "rows = SipBan.objects.order_by('network').exclude(expires_at__lte=timezone.now())\n"
        "print(json.dumps([{'network': r.network, 'reason': r.reason, 'mode': r.mode,"
        " 'offences': r.offences, 'note': r.note} for r in rows]))\n"
    )
    listed: list[dict[str, Any]] = manage_shell(server, code)
    return listed


def security_events(server: TollguardServer, event: str) -> list[dict[str, str]]:
    """The stored security events named ``event`` (the switch writes them off its loop)."""
    code = (
        "import json\n"
        "from tollguard.web.security.models import SecurityEvent\n"
        f"rows = SecurityEvent.objects.filter(event={event!r}).order_by('at')\n"
        "print(json.dumps(list(rows.values('address', 'user', 'detail'))))\n"
    )
    rows: list[dict[str, str]] = manage_shell(server, code)
    return rows


def provisioned_ids(server: TollguardServer) -> dict[str, dict[str, int]]:
    code = (
        "import json\n"
        "from tollguard.web.carriers.models import Gateway, Provider\n"
        "from tollguard.web.customers.models import Customer\n"
        "print(json.dumps({"
        "'providers': {p.name: p.pk for p in Provider.objects.all()},"
        "'gateways': {g.name: g.pk for g in Gateway.objects.all()},"
        "'customers': {c.name: c.pk for c in Customer.objects.all()}}))\n"
    )
    ids: dict[str, dict[str, int]] = manage_shell(server, code)
    return ids


def call_charges(server: TollguardServer, tag: str) -> list[dict[str, str]]:
    """The ledger's call charges of the calls tagged ``tag``, each with the currency its
    customer pays in."""
    code = (
        "import json\n"
        "from tollguard.web.billing.models import LedgerEntry\n"
        f"rows = LedgerEntry.objects.filter(kind='call', call_id__contains='-{tag}@')\n"
        "print(json.dumps([{'call_id': e.call_id, 'amount': str(e.amount),"
        " 'currency': e.customer.currency} for e in rows.select_related('customer')]))\n"
    )
    rows: list[dict[str, str]] = manage_shell(server, code)
    return rows
