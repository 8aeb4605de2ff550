"""The ledger on a real PostgreSQL: its triggers, and writers racing for one balance.

A throw-away PostgreSQL server (the machine's binaries) listens on a Unix socket only,
in a temporary directory; a child process sets Tollguard up on it (this test process
already runs Django on SQLite), migrates, and then has top-ups and CDR batches posted
for one customer from several threads at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
_SOCKET_PORT = 54_329  # names the socket file only: the server opens no TCP port


def _binary(name: str) -> str | None:
    for directory in _BINARIES:
        if (directory / name).is_file():
            return str(directory / name)
    return shutil.which(name)


@pytest.fixture(scope="module")
def postgresql() -> Iterator[Path]:
    initdb, server = _binary("initdb"), _binary("postgres")
    if initdb is None or server is None:
        pytest.skip("PostgreSQL is not installed")
    base = Path(tempfile.mkdtemp(prefix="tollguard-pg-"))
    os.chmod(base, 0o755)
    # PostgreSQL refuses to run as root: the server runs as the postgres user.
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data = base / "data"
    subprocess.run(
        [*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "tollguard", "--no-sync"],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [
            *run_as,
            server,
            "-D",
            str(data),
            "-k",
            str(base),
            "-p",
            str(_SOCKET_PORT),
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        socket = base / f".s.PGSQL.{_SOCKET_PORT}"
        for _ in range(300):
            if socket.exists():
                break
            if process.poll() is not None:
                pytest.fail("PostgreSQL did not start")
            time.sleep(0.1)
        else:
            pytest.fail("PostgreSQL did not open its socket")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from datetime import UTC, datetime
    from decimal import Decimal
    from pathlib import Path
    from tollguard import config
    from tollguard.web import bootstrap

    bootstrap.setup(config.load(Path(sys.argv[1])), module="tollguard.web.settings.prod")
    bootstrap.migrate()

    from django.db import DatabaseError, connection, transaction
    from django.db.models import F, Sum
    from tollguard.domain.cdr import Cdr, HangupSide
    from tollguard.web.adapters import DbBalanceSource, DbCdrSink
    from tollguard.web.billing import services
    from tollguard.web.billing.models import Balance, EntryKind, LedgerEntry
    from tollguard.web.customers.models import Customer
    from tollguard.web.rating.models import RateCard

    customer = Customer.objects.create(
        name="acme", sell_card=RateCard.objects.create(name="retail")
    )
    now = datetime(2026, 3, 1, tzinfo=UTC)

    def cdr(n):
        return Cdr(f"call-{n}", now, now, now, 1000, 60, customer.pk, None, "192.0.2.1",
                   5060, "a", "b", "b", "", 200, "OK", 16, HangupSide.CALLER,
                   sell_amount=Decimal("0.5"))

    errors = []

    def top_ups(worker):
        try:
            for n in range(20):
                services.post_entry(customer, EntryKind.TOP_UP, Decimal(1),
                                    reference=f"w{worker}-{n}")
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    def charges(worker):
        try:
            for n in range(10):
                DbCdrSink().write_batch([cdr(f"{worker}-{n}-{k}") for k in range(2)])
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=top_ups, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=charges, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    entries = list(LedgerEntry.objects.filter(customer=customer).order_by("id"))
    running, chain = Decimal(0), True
    for entry in entries:
        running += entry.amount
        chain = chain and entry.balance_after == running
    versions = sorted(e.funds_version for e in entries if e.funds_version is not None)

    refused = {}
    for name, sql in (
        ("update", "UPDATE billing_ledgerentry SET amount = 1000"),
        ("delete", "DELETE FROM billing_ledgerentry"),
        ("truncate", "TRUNCATE billing_ledgerentry CASCADE"),
    ):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
            refused[name] = ""
        except DatabaseError as exc:
            refused[name] = str(exc).splitlines()[0]

    source = DbBalanceSource()
    snapshot = source.snapshot()
    changes = len(source.changes(0, 1000))
    balance = str(Balance.objects.get(pk=customer.pk).amount)
    total = str(LedgerEntry.objects.aggregate(s=Sum("amount"))["s"])

    services.post_entry(customer, EntryKind.TOP_UP, Decimal("0.905"), reference="small")
    for n in range(90):
        services.post_entry(customer, EntryKind.ADJUSTMENT, Decimal("-0.01"), reason=f"{n}")
    from tollguard.web.billing.selectors import balance_mismatches
    mismatches = [[name, str(a), str(b)] for name, a, b in balance_mismatches()]
    Balance.objects.filter(pk=customer.pk).update(amount=F("amount") + Decimal("0.000001"))
    found = [[name, str(a), str(b)] for name, a, b in balance_mismatches()]

    print(json.dumps({
        "errors": errors,
        "entries": len(entries),
        "balance": balance,
        "sum": total,
        "chain": chain,
        "versions": versions,
        "refused": refused,
        "snapshot": [snapshot.version, [[c, str(b)] for c, b in snapshot.balances]],
        "changes": changes,
        "mismatches": mismatches,
        "found": found,
    }))
    """
)


def test_the_ledger_holds_on_postgresql(postgresql: Path, tmp_path: Path) -> None:
    (tmp_path / "tollguard.toml").write_text(
        "[database]\n"
        'engine = "postgresql"\n'
        'name = "postgres"\n'
        f'host = "{postgresql}"\n'
        f"port = {_SOCKET_PORT}\n"
        'user = "tollguard"\n'
    )
    (tmp_path / "secrets.toml").write_text(
        f'django_secret_key = "{"x" * 50}"\ndatabase_password = "unused-trust-auth"\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["errors"] == []
    # 80 top-ups of 1 and 80 charges of 0.5, from eight threads at once.
    assert facts["entries"] == 160
    assert facts["balance"] == facts["sum"] == "40.000000"
    assert facts["chain"] is True  # every balance_after follows the one before
    assert facts["versions"] == list(range(1, 81))
    for statement, message in facts["refused"].items():
        assert "append-only" in message, statement
    # Then a top-up of 0.905 and 90 adjustments of -0.01: the check sums exactly.
    assert facts["mismatches"] == []
    assert facts["found"] == [["acme", "40.005001", "40.005000"]]
    assert facts["snapshot"][0] == 80
    assert facts["changes"] == 80
