"""docs/security.md: every ASVS row has a proof that exists, or a reason.

The requirement list (``docs/asvs-5.0-l2.txt``, every Level 1 and Level 2 id of ASVS
5.0.0 from the OWASP CSV) must be covered exactly: an id without a row fails, and so
does a row whose id is not in the list (a typo, or a Level 3 requirement).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "security.md"
REQUIREMENTS = ROOT / "docs" / "asvs-5.0-l2.txt"
# test: a test proves it; doc: a section fulfils it; design: it applies and holds by
# construction (the reason says how); n/a: the feature it is about does not exist;
# open: not done yet (the reason says what is missing).
STATUSES = {"test", "doc", "design", "n/a", "open"}
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


def requirement_ids(text: str) -> dict[str, str]:
    """The ids of the requirement list, each with its chapter (``"V6 Authentication"``)."""
    ids: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            requirement, level, chapter = line.split(maxsplit=2)
            assert level in {"L1", "L2"}, line
            ids[requirement] = chapter
    return ids


def headings(text: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)}


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def section_exists(proof: str, text: str, root: Path) -> bool:
    """``proof`` is a heading of ``text``, or ``docs/other.md#Heading`` of another page."""
    page, hash_sign, title = proof.partition("#")
    if not hash_sign:
        return proof in headings(text)
    path = root / page
    return page.startswith("docs/") and path.is_file() and title in headings(path.read_text())


def problems(text: str, root: Path, required: dict[str, str] | None = None) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    for row in asvs_rows(text):
        where = f"ASVS {row.requirement}"
        if row.requirement in seen:
            found.append(f"{where}: listed twice")
        seen.add(row.requirement)
        if required is not None and row.requirement not in required:
            found.append(f"{where}: not an ASVS 5.0 Level 1 or 2 requirement")
        if row.status not in STATUSES:
            found.append(f"{where}: status {row.status!r} is not one of {sorted(STATUSES)}")
        elif row.status == "test":
            for reference in (r.strip() for r in row.proof.split(",")):
                file, _, name = reference.partition("::")
                path = root / file
                if not name or not path.is_file() or name not in defined_tests(path):
                    found.append(f"{where}: no test {reference!r}")
        elif row.status == "doc":
            if not section_exists(row.proof, text, root):
                found.append(f"{where}: no section {row.proof!r}")
        elif len(row.proof) < MIN_REASON:
            found.append(f"{where}: {row.status} without a reason")
    for requirement, chapter in (required or {}).items():
        if requirement not in seen:
            found.append(f"ASVS {requirement}: no row ({chapter})")
    return found


def test_the_requirement_list_covers_every_chapter() -> None:
    required = requirement_ids(REQUIREMENTS.read_text())
    chapters = {chapter.split()[0] for chapter in required.values()}
    assert chapters == {f"V{n}" for n in range(1, 18)}
    # ASVS 5.0.0 has 70 Level 1 and 183 Level 2 requirements.
    assert len(required) == 253
    assert all(r.split(".")[0] == c.split()[0][1:] for r, c in required.items())


def test_every_requirement_has_a_proof_or_a_reason() -> None:
    text = DOC.read_text()
    assert problems(text, ROOT, requirement_ids(REQUIREMENTS.read_text())) == []


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
| 1.1.9 | j | doc | docs/security.md#OWASP ASVS 5.0, Level 2 |
| 1.1.10 | k | doc | docs/security.md#No such heading |
| 1.1.11 | l | design | |
| 1.1.12 | m | n/a | a requirement of Level 3 only |
"""
REQUIRED = {
    **{f"1.1.{n}": "V1 Encoding and Sanitization" for n in range(1, 12)},
    "2.1.1": "V2 Validation and Business Logic",
}


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
        ("1.1.10", "no section"),
        ("1.1.11", "without a reason"),
        ("1.1.12", "not an ASVS 5.0 Level 1 or 2 requirement"),
        ("2.1.1", "no row (V2 Validation and Business Logic)"),
    ],
    ids=[
        "missing-test",
        "missing-file",
        "missing-section",
        "empty-reason",
        "short-reason",
        "bad-status",
        "duplicate",
        "missing-section-of-another-page",
        "design-without-reason",
        "not-in-the-list",
        "required-without-row",
    ],
)
def test_the_checker_catches(requirement: str, message: str) -> None:
    found = problems(BROKEN, ROOT, REQUIRED)
    assert any(p.startswith(f"ASVS {requirement}:") and message in p for p in found), found
    assert not any(p.startswith(("ASVS 1.1.7:", "ASVS 1.1.8:", "ASVS 1.1.9:")) for p in found)
