"""The import-linter contracts in pyproject.toml stay complete as modules are added.

``lint-imports`` checks the code against the contracts; these tests check the contracts
themselves, since a list of forbidden modules that misses a new top-level module would
let imports of it through without a word.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import tollguard

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS: dict[str, dict[str, Any]] = {
    contract["name"]: contract
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}
TOP_LEVEL = {f"tollguard.{module.name}" for module in pkgutil.iter_modules(tollguard.__path__)}
LEAVES = {"tollguard.config", "tollguard.certs"}
# Contracts that may be broken through an intermediate module, each with where the reason
# is written. None is needed today.
INDIRECT_ALLOWED: dict[str, str] = {}


def test_web_may_import_only_domain_and_config() -> None:
    contract = CONTRACTS["web imports only domain and config"]
    assert contract["source_modules"] == ["tollguard.web"]
    expected = TOP_LEVEL - {"tollguard.web", "tollguard.domain", "tollguard.config"}
    assert set(contract["forbidden_modules"]) == expected


def test_config_and_certs_import_nothing_of_the_project() -> None:
    contract = CONTRACTS["config and certs are leaves"]
    assert set(contract["source_modules"]) == LEAVES
    project = {name for name in contract["forbidden_modules"] if name.startswith("tollguard.")}
    assert project == TOP_LEVEL - LEAVES


def test_every_other_module_has_a_layer() -> None:
    contract = CONTRACTS["the package's layers"]
    assert contract["containers"] == ["tollguard"]
    assert contract["exhaustive"] is True
    assert {f"tollguard.{name}" for name in contract["exhaustive_ignores"]} == LEAVES
    assert contract["layers"][0] == "cli"


def test_nothing_may_import_the_command() -> None:
    contract = CONTRACTS["nothing imports the command"]
    assert contract["type"] == "protected"
    assert contract["protected_modules"] == ["tollguard.cli"]
    assert contract["allowed_importers"] == []


def test_cycles_are_checked_across_the_whole_package() -> None:
    contract = CONTRACTS["no import cycles"]
    assert contract["type"] == "acyclic_siblings"
    assert contract["ancestors"] == ["tollguard"]
    # Each exception is explained beside it in pyproject.toml and in docs/architecture.md.
    assert contract["ignore_imports"] == ["tollguard.sip.errors -> tollguard.sip.headers"]


def test_indirect_imports_are_allowed_only_with_a_written_reason() -> None:
    allowed = {name for name, c in CONTRACTS.items() if c.get("allow_indirect_imports")}
    assert allowed == set(INDIRECT_ALLOWED)
