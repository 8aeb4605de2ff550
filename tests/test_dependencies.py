"""The dependency inventory: locks, SBOM and audit (docs/dependencies.md).

Every dependency declared in ``pyproject.toml`` (extras included) and in
``requirements/*.in`` is pinned, with hashes, in the locks; the deployment lock holds
the versions the tests ran with; this environment was installed from the lock; the
committed SBOM is what ``scripts/sbom`` makes of the locks today. ``scripts/audit`` is
run on saved reports, never on the network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
DEV_LOCK = REQUIREMENTS / "dev.txt"
RUNTIME_LOCK = REQUIREMENTS / "runtime.txt"
BOOTSTRAP_LOCK = REQUIREMENTS / "bootstrap.txt"
SBOM = ROOT / "sbom" / "tollguard.cdx.json"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# The scripts find the virtualenv through TOLLGUARD_VENV: the one running the tests.
SCRIPT_ENV = {**os.environ, "TOLLGUARD_VENV": sys.prefix}


@dataclass(frozen=True, slots=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]


def read_lock(path: Path) -> dict[str, Pin]:
    """``name -> Pin`` from a lock: ``name==version ; marker \\`` then ``--hash`` lines."""
    text = path.read_text().replace("\\\n", " ")
    pins: dict[str, Pin] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, options = line.partition(" --hash=")
        requirement = Requirement(spec.strip())
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {spec.strip()} is not pinned"
        name = canonicalize_name(requirement.name)
        hashes = tuple(re.findall(r"sha256:([0-9a-f]{64})", options))
        pins[name] = Pin(name, Version(specifier.version), requirement.marker, hashes)
    return pins


def declared(*extras: str, inputs: tuple[str, ...] = ()) -> list[Requirement]:
    specs = list(PROJECT["dependencies"])
    for extra in extras:
        specs += PROJECT["optional-dependencies"][extra]
    for name in inputs:
        for line in (REQUIREMENTS / name).read_text().splitlines():
            if line.split("#", 1)[0].strip():
                specs.append(line.split("#", 1)[0].strip())
    return [Requirement(spec) for spec in specs]


ALL_EXTRAS = tuple(PROJECT["optional-dependencies"])
LOCKS = {
    "dev": (DEV_LOCK, declared(*ALL_EXTRAS, inputs=("build.in", "tools.in", "bootstrap.in"))),
    "runtime": (RUNTIME_LOCK, declared("postgresql", inputs=("build.in",))),
}


def unpinned(requirements: list[Requirement], pins: dict[str, Pin]) -> list[str]:
    """What of ``requirements`` the lock does not pin, or pins outside its range."""
    problems = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{name} is not pinned")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{name}=={pin.version} is outside {requirement.specifier}")
        else:
            # An extra ("psycopg[binary]") brings packages of its own: they are pinned too.
            problems += [
                f"{name}[{extra}] is not complete"
                for extra in requirement.extras
                if extra == "binary" and canonicalize_name(f"{name}-binary") not in pins
            ]
    return problems


@pytest.mark.parametrize("lock", list(LOCKS), ids=list(LOCKS))
def test_every_declared_dependency_is_pinned_within_its_bounds(lock: str) -> None:
    path, requirements = LOCKS[lock]
    problems = unpinned(requirements, read_lock(path))
    assert problems == [], f"{path.name} is stale, run requirements/update: {problems}"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("no-such-package>=1", "no-such-package is not pinned"),
        ("Django>=99", "django==6.1.3 is outside >=99"),
        ("psycopg[binary]>=3.1", ""),
    ],
    ids=["new-dependency", "raised-bound", "extra-pinned"],
)
def test_drift_is_reported(spec: str, problem: str) -> None:
    pins = {
        "django": Pin("django", Version("6.1.3"), None, ("0" * 64,)),
        "psycopg": Pin("psycopg", Version("3.3.9"), None, ("1" * 64,)),
        "psycopg-binary": Pin("psycopg-binary", Version("3.3.9"), None, ("2" * 64,)),
    }
    assert unpinned([Requirement(spec)], pins) == ([problem] if problem else [])
    if spec.startswith("psycopg"):
        del pins["psycopg-binary"]
        assert unpinned([Requirement(spec)], pins) == ["psycopg[binary] is not complete"]


@pytest.mark.parametrize("lock", list(LOCKS), ids=list(LOCKS))
def test_every_pin_carries_hashes(lock: str) -> None:
    pins = read_lock(LOCKS[lock][0])
    assert len(pins) > 20
    assert [name for name, pin in pins.items() if not pin.hashes] == []


def test_the_bootstrap_lock_pins_the_tested_pip() -> None:
    # scripts/_env.sh puts this pip into every new venv before installing a lock.
    bootstrap, dev = read_lock(BOOTSTRAP_LOCK), read_lock(DEV_LOCK)
    assert set(bootstrap) == {"pip"}
    assert bootstrap["pip"].version == dev["pip"].version
    assert set(bootstrap["pip"].hashes) == set(dev["pip"].hashes)


def test_deployments_get_the_versions_that_were_tested() -> None:
    dev, runtime = read_lock(DEV_LOCK), read_lock(RUNTIME_LOCK)
    assert set(runtime) <= set(dev)
    assert {n: p.version for n, p in runtime.items()} == {n: dev[n].version for n in runtime}
    # No test or maintenance tool ships.
    assert not {"pytest", "mypy", "ruff", "pip-audit", "uv", "playwright"} & set(runtime)


def test_this_environment_was_installed_from_the_lock() -> None:
    wrong = {}
    for name, pin in read_lock(DEV_LOCK).items():
        if pin.marker is not None and not pin.marker.evaluate():
            continue
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = "missing"
            continue
        if installed != pin.version:
            wrong[name] = f"{installed} installed, {pin.version} locked"
    assert wrong == {}, "install with scripts/test (pip install --require-hashes -r ...)"


def test_the_lock_parser_refuses_a_range(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("django>=6.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(AssertionError, match="not pinned"):
        read_lock(lock)


# --- SBOM -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_sbom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sbom") / "tollguard.cdx.json"
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "sbom"), str(out)],
        check=True,
        env=SCRIPT_ENV,
        capture_output=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_the_committed_sbom_is_up_to_date(fresh_sbom: dict[str, Any]) -> None:
    committed = json.loads(SBOM.read_text())
    assert committed == fresh_sbom, "the SBOM is stale: run scripts/sbom and commit it"


def test_the_sbom_lists_every_locked_package() -> None:
    sbom = json.loads(SBOM.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    purls = {c["purl"] for c in sbom["components"]}
    python = {f"pkg:pypi/{n}@{p.version}" for n, p in read_lock(RUNTIME_LOCK).items()}
    assert python <= purls
    npm = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    assert {f"pkg:npm/chart.js@{npm['node_modules/chart.js']['version']}"} <= purls
    assert len([p for p in purls if p.startswith("pkg:npm/")]) == len(
        {(k.rsplit("node_modules/", 1)[1], v["version"]) for k, v in npm.items() if k}
    )
    # Only what ships is required; the scanner used by the tests is listed as excluded.
    scopes = {c["name"]: c["scope"] for c in sbom["components"]}
    assert scopes["chart.js"] == "required"
    assert scopes["@mdn/mdn-http-observatory"] == "excluded"
    assert sbom["metadata"]["component"]["name"] == "tollguard"


# --- audit ------------------------------------------------------------------------------

PIP_CLEAN = {"dependencies": [{"name": "django", "version": "6.1.3", "vulns": []}], "fixes": []}
PIP_VULNERABLE = {
    "dependencies": [
        {
            "name": "Django",
            "version": "6.1.3",
            "vulns": [
                {
                    "id": "PYSEC-2026-1",
                    "fix_versions": ["6.1.4"],
                    "aliases": ["GHSA-aaaa-bbbb-cccc", "CVE-2026-0001"],
                    "description": "SQL injection in an example",
                }
            ],
        }
    ],
    "fixes": [],
}
PIP_UNREACHABLE = {
    "dependencies": [
        {"name": "django", "skip_reason": "Dependency not found on PyPI and could not be audited"}
    ],
    "fixes": [],
}
NPM_CLEAN = {"auditReportVersion": 2, "vulnerabilities": {}, "metadata": {}}
NPM_VULNERABLE = {
    "auditReportVersion": 2,
    "vulnerabilities": {
        "chart.js": {
            "name": "chart.js",
            "severity": "high",
            "via": [
                {
                    "source": 1,
                    "name": "chart.js",
                    "title": "Prototype pollution",
                    "url": "https://github.com/advisories/GHSA-xxxx-yyyy-zzzz",
                    "severity": "high",
                    "range": "<4.7.0",
                }
            ],
            "fixAvailable": True,
        },
        "parent": {"name": "parent", "severity": "high", "via": ["chart.js"]},
    },
}
NPM_UNREACHABLE = {"message": "405 Method Not Allowed", "statusCode": 405}

ACCEPT_DJANGO = """
[[accept]]
id = "GHSA-aaaa-bbbb-cccc"
package = "django"
accepted = 2026-11-01
expires = 2026-12-01
approved_by = "a reviewer"
reason = "the vulnerable function is never called"
"""


def audit(
    tmp_path: Path, pip: object, npm: object, allowlist: str, today: str = "2026-11-20"
) -> subprocess.CompletedProcess[str]:
    files = {"pip.json": json.dumps(pip), "npm.json": json.dumps(npm), "allow.toml": allowlist}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "audit"),
            *("--pip-audit-json", str(tmp_path / "pip.json")),
            *("--npm-audit-json", str(tmp_path / "npm.json")),
            *("--allowlist", str(tmp_path / "allow.toml")),
            *("--today", today),
        ],
        env=SCRIPT_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("pip", "npm", "allowlist", "today", "status", "says"),
    [
        (PIP_CLEAN, NPM_CLEAN, "", "2026-11-20", 0, "0 findings"),
        (PIP_VULNERABLE, NPM_CLEAN, "", "2026-11-20", 1, "ACT      python django"),
        (PIP_VULNERABLE, NPM_CLEAN, ACCEPT_DJANGO, "2026-11-20", 0, "ACCEPTED python django"),
        (PIP_VULNERABLE, NPM_CLEAN, ACCEPT_DJANGO, "2026-12-02", 1, "EXPIRED  python django"),
        (PIP_CLEAN, NPM_VULNERABLE, "", "2026-11-20", 1, "GHSA-xxxx-yyyy-zzzz] severity high"),
        (PIP_CLEAN, NPM_CLEAN, ACCEPT_DJANGO, "2026-11-20", 0, "matches no finding"),
        (PIP_UNREACHABLE, NPM_CLEAN, "", "2026-11-20", 2, "could not audit 1 of 1"),
        (PIP_CLEAN, NPM_UNREACHABLE, "", "2026-11-20", 2, "405 Method Not Allowed"),
        (None, NPM_CLEAN, "", "2026-11-20", 2, "pip-audit produced no report"),
        (
            PIP_VULNERABLE,
            NPM_CLEAN,
            ACCEPT_DJANGO.replace("2026-12-01", "2027-03-01"),
            "2026-11-20",
            1,
            "accepted for more than 90 days",
        ),
        (
            PIP_CLEAN,
            NPM_CLEAN,
            ACCEPT_DJANGO.replace('approved_by = "a reviewer"\n', ""),
            "2026-11-20",
            2,
            "missing approved_by",
        ),
        (PIP_CLEAN, NPM_CLEAN, "[[accept]\n", "2026-11-20", 2, "cannot read the allow-list"),
    ],
    ids=[
        "clean",
        "new-finding",
        "accepted-by-alias",
        "acceptance-expired",
        "npm-finding",
        "stale-acceptance-noted",
        "feed-unreachable-is-not-clean",
        "npm-feed-unreachable",
        "no-report",
        "acceptance-too-long",
        "acceptance-without-approver",
        "malformed-allowlist",
    ],
)
def test_audit_decides(
    tmp_path: Path, pip: object, npm: object, allowlist: str, today: str, status: int, says: str
) -> None:
    done = audit(tmp_path, pip, npm, allowlist, today)
    assert done.returncode == status, done.stdout + done.stderr
    assert says in done.stdout + done.stderr


def test_the_committed_allowlist_is_valid(tmp_path: Path) -> None:
    allowlist = (REQUIREMENTS / "audit-allowlist.toml").read_text()
    done = audit(tmp_path, PIP_CLEAN, NPM_CLEAN, allowlist)
    assert "INCOMPLETE" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout
