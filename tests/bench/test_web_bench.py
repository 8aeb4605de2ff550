"""``tollguard bench web`` runs end to end on a small table and reports its JSON shape.

The benchmark sets Django up for its own data directory, so it runs in a child process:
this test process may already hold the test settings of ``tests/web``.
"""

from __future__ import annotations

import json
import subprocess
import sys

CDRS = 2_000
REQUESTS = 5

_RUN = (
    "import json; from tollguard.bench import web;"
    f" print(json.dumps(web.run(cdrs={CDRS}, requests={REQUESTS})))"
)


def test_web_bench_reports_latencies_for_a_small_table() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", _RUN],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["name"] == "web"
    assert result["cdrs"] == CDRS
    assert result["requests"] == REQUESTS
    for key in ("cdr_page_p50_ms", "cdr_page_p95_ms", "cdr_api_p50_ms", "cdr_api_p95_ms"):
        assert isinstance(result[key], float)
        assert 0 < result[key] < 10_000, key
    assert result["cdr_page_p50_ms"] <= result["cdr_page_p95_ms"]
    assert result["cdr_api_p50_ms"] <= result["cdr_api_p95_ms"]
    assert result["load_s"] >= 0
    # The loader drops the indexes while it fills the table: they must be back.
    assert {"cdr_started_at", "cdr_customer_started", "cdr_callee"} <= set(result["cdr_indexes"])
    # Seven in Meta.indexes, the Call-ID, and the account and gateway foreign keys.
    assert len(result["cdr_indexes"]) == 10
