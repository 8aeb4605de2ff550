"""End to end on a real data directory: bootstrap, migrations, WAL, threads.

Runs in a child process, because this test process already set Django up with the
in-memory test settings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plan.yaml"

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from datetime import UTC, datetime
    from pathlib import Path
    from tollguard import config
    from tollguard.web import bootstrap

    data_dir = Path(sys.argv[1])
    bootstrap.setup(config.load(data_dir), module="tollguard.web.settings.prod")
    bootstrap.migrate()
    password = bootstrap.create_admin("admin")

    from django.db import connection
    from tollguard.domain.cdr import Cdr, HangupSide
    from tollguard.web.adapters import DbCdrSink, DbPlanSource
    from tollguard.web.provisioning import load_plan_file

    report = load_plan_file(sys.argv[2], realm="tollguard")
    source = DbPlanSource()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cdr = Cdr("c@h", now, now, None, 0, 0, None, None, "192.0.2.1", 5060, "a", "b", "",
              "", 487, "Request Terminated", 16, HangupSide.CALLER)
    results = {}

    def in_thread():
        # The switch calls the adapters from worker threads, each with its connection.
        DbCdrSink().write_batch([cdr] * 10)
        results["thread_version"] = source.current_version()
        results["thread_customers"] = len(source.load().customers)

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
    from tollguard.web.cdr.models import Cdr as CdrRow
    print(json.dumps({
        "password_length": len(password),
        "version": report.config_version,
        "journal": journal,
        "cdrs": CdrRow.objects.count(),
        **results,
    }))
    """
)


def test_bootstrap_migrate_load_and_threads(tmp_path: Path) -> None:
    (tmp_path / "secrets.toml").write_text(f'django_secret_key = "{"x" * 50}"\n')
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts == {
        "password_length": 24,
        "version": 1,
        "journal": "wal",
        "cdrs": 10,
        "thread_version": 1,
        "thread_customers": 1,
    }
    assert (tmp_path / "tollguard.sqlite3").exists()
