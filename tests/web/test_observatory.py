"""Mozilla's HTTP Observatory scanner grades the served app A+.

The scanner (npm ``@mdn/mdn-http-observatory``, installed by ``scripts/test`` with
``npm ci``) runs locally against the app served as ``tollguard serve`` serves it. It
scans one URL per run and expects a 2xx/3xx/401/403 answer, so it scans each entry
point: the customer portal, the admin's login page at its random path, and the decoy
at ``/admin/``. Its package wrapper points Node at a CA bundle that is downloaded at
install time; the test runs the scanner's own entry point instead and trusts only the
data directory's self-signed certificate (``NODE_EXTRA_CA_CERTS``), under the name
``localhost`` that the certificate carries, so the certificate checks pass as they
would for a real one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser.served import ServedApp, serve

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCANNER = ROOT / "node_modules" / "@mdn" / "mdn-http-observatory" / "src" / "scan.js"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with serve(tmp_path_factory.mktemp("observatory") / "data") as app:
        yield app


def observatory(app: ServedApp, path: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not SCANNER.exists():
        pytest.fail("the HTTP Observatory is not installed: run scripts/test (npm ci)")
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=str(app.cert_path))
    done = subprocess.run(
        [node, str(SCANNER), f"localhost:{app.port}{path}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    "entry",
    ["portal", "admin", "decoy"],
    ids=["portal-login", "admin-login", "honeypot"],
)
def test_observatory_grades_every_entry_point_a_plus(served: ServedApp, entry: str) -> None:
    path = {
        "portal": "/portal/login/",
        "admin": f"/{served.admin_path}login/",
        "decoy": "/admin/login/",
    }[entry]
    result = observatory(served, path)
    assert "error" not in result, result
    failing = {
        name: (test["result"], test.get("scoreModifier"))
        for name, test in result["tests"].items()
        if not test["pass"] or test.get("scoreModifier", 0) < 0
    }
    summary = f"grade {result['scan']['grade']}, score {result['scan']['score']}, failing {failing}"
    print(f"HTTP Observatory {path}: {summary}")
    assert result["scan"]["grade"] == "A+", summary
    assert failing == {}, summary
    # Each extra-credit header counts: a regression in one shows up here first.
    assert result["tests"]["content-security-policy"]["result"] == (
        "csp-implemented-with-no-unsafe-default-src-none"
    )
    assert result["tests"]["cookies"]["pass"]
    assert result["tests"]["strict-transport-security"]["pass"]
