"""docs/security.md: every ASVS row has a proof that exists, or a reason."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "security.md"
STATUSES = {"test", "doc", "n/a", "open"}
MIN_REASON = 15


@dataclass(frozen=True, slots=True)
class Row:
    requirement: str
    status: str
    proof: str


def asvs_rows(text: str) -> list[Row]:
    section = text.split("## OWASP ASVS 5.0, Level 2", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not re.fullmatch(r"\d+\.\d+\.\d+", cells[0]):
            continue
        rows.append(Row(cells[0], cells[2], cells[3]))
    return rows


def headings(text: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)}


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def problems(text: str, root: Path) -> list[str]:
    found: list[str] = []
    titles = headings(text)
    seen: set[str] = set()
    for row in asvs_rows(text):
        where = f"ASVS {row.requirement}"
        if row.requirement in seen:
            found.append(f"{where}: listed twice")
        seen.add(row.requirement)
        if row.status not in STATUSES:
            found.append(f"{where}: status {row.status!r} is not one of {sorted(STATUSES)}")
        elif row.status == "test":
            for reference in (r.strip() for r in row.proof.split(",")):
                file, _, name = reference.partition("::")
                path = root / file
                if not name or not path.is_file() or name not in defined_tests(path):
                    found.append(f"{where}: no test {reference!r}")
        elif row.status == "doc":
            if row.proof not in titles:
                found.append(f"{where}: no section {row.proof!r}")
        elif len(row.proof) < MIN_REASON:
            found.append(f"{where}: {row.status} without a reason")
    return found


def test_every_requirement_has_a_proof_or_a_reason() -> None:
    text = DOC.read_text()
    rows = asvs_rows(text)
    assert len(rows) >= 60
    chapters = {row.requirement.split(".")[0] for row in rows}
    assert {"3", "6", "7", "8"} <= chapters
    assert problems(text, ROOT) == []


BROKEN = """
# Doc
## OWASP ASVS 5.0, Level 2
| id | requirement | status | proof or reason |
|---|---|---|---|
| 1.1.1 | a | test | tests/web/security/test_docs.py::test_that_does_not_exist |
| 1.1.2 | b | test | tests/web/security/missing.py::test_x |
| 1.1.3 | c | doc | No such section |
| 1.1.4 | d | n/a | |
| 1.1.5 | e | open | later |
| 1.1.6 | f | maybe | it depends on things |
| 1.1.6 | g | n/a | listed a second time on purpose |
| 1.1.7 | h | test | tests/web/security/test_docs.py::test_the_checker_catches |
| 1.1.8 | i | doc | Doc |
"""


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        ("1.1.1", "no test"),
        ("1.1.2", "no test"),
        ("1.1.3", "no section"),
        ("1.1.4", "without a reason"),
        ("1.1.5", "without a reason"),
        ("1.1.6", "is not one of"),
        ("1.1.6", "listed twice"),
    ],
    ids=[
        "missing-test",
        "missing-file",
        "missing-section",
        "empty-reason",
        "short-reason",
        "bad-status",
        "duplicate",
    ],
)
def test_the_checker_catches(requirement: str, message: str) -> None:
    found = problems(BROKEN, ROOT)
    assert any(p.startswith(f"ASVS {requirement}:") and message in p for p in found), found
    assert not any(p.startswith(("ASVS 1.1.7:", "ASVS 1.1.8:")) for p in found)
