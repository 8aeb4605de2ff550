"""``tollguard bans list|add|remove|import|export``, run as a user runs it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.test_cli import tollguard
from tollguard.cli import parse_duration

pytestmark = pytest.mark.integration

APIBAN = '{"ipaddress": ["203.0.113.9", "198.51.100.0/24", "2001:db8::7"], "ID": "1701"}'


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-bans") / "data"
    tollguard("init", "--bind", "127.0.0.1", "--sip-port", "0", data_dir=path)
    return path


def listed(data_dir: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(
        tollguard("bans", "list", "--json", data_dir=data_dir).stdout
    )
    return rows


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("90", 90),
        ("90s", 90),
        ("never", None),
        ("0", None),
    ],
)
def test_parse_duration(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1y", "-5m", "1.5h", "0d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_duration(text)


def test_add_list_remove(data_dir: Path) -> None:
    added = tollguard(
        "bans", "add", "203.0.113.50", "--duration", "1h", "--note", "guessing", data_dir=data_dir
    )
    assert added.stdout.startswith("203.0.113.50 banned until 20")
    tollguard("bans", "add", "192.0.2.0/28", "--mode", "refuse", data_dir=data_dir)
    rows = {row["network"]: row for row in listed(data_dir)}
    assert rows["203.0.113.50"]["note"] == "guessing"
    assert rows["203.0.113.50"]["reason"] == "operator"
    assert rows["192.0.2.0/28"]["mode"] == "refuse"
    assert rows["192.0.2.0/28"]["expires_at"] is None
    text = tollguard("bans", "list", data_dir=data_dir).stdout
    assert "192.0.2.0/28" in text and "until never" in text
    tollguard("bans", "remove", "203.0.113.50", data_dir=data_dir)
    tollguard("bans", "remove", "192.0.2.0/28", data_dir=data_dir)
    assert listed(data_dir) == []
    missing = tollguard("bans", "remove", "203.0.113.50", data_dir=data_dir, check=False)
    assert missing.returncode == 1
    assert "not on the ban list" in missing.stderr


def test_add_refuses_a_name(data_dir: Path) -> None:
    result = tollguard("bans", "add", "sip.example.com", data_dir=data_dir, check=False)
    assert result.returncode == 1
    assert "'sip.example.com' is not an IP address or CIDR network" in result.stderr


def test_apiban_import_then_export_round_trip(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "apiban.json"
    source.write_text(APIBAN)
    result = tollguard("bans", "import", str(source), data_dir=data_dir)
    assert result.stdout.strip() == "3 bans added, 0 replaced"
    rows = listed(data_dir)
    assert sorted(row["network"] for row in rows) == [
        "198.51.100.0/24",
        "2001:db8::7",
        "203.0.113.9",
    ]
    assert {row["reason"] for row in rows} == {"import"}
    assert {row["note"] for row in rows} == {"imported from apiban.json"}
    exported = tmp_path / "export.txt"
    tollguard("bans", "export", "-o", str(exported), data_dir=data_dir)
    assert exported.read_text() == "198.51.100.0/24\n2001:db8::7\n203.0.113.9\n"
    as_json = tollguard("bans", "export", "--format", "json", data_dir=data_dir).stdout
    assert json.loads(as_json)["ipaddress"] == ["198.51.100.0/24", "2001:db8::7", "203.0.113.9"]
    for network in ("198.51.100.0/24", "2001:db8::7", "203.0.113.9"):
        tollguard("bans", "remove", network, data_dir=data_dir)
    # The plain export imports back.
    again = tollguard("bans", "import", str(exported), "--duration", "never", data_dir=data_dir)
    assert again.stdout.strip() == "3 bans added, 0 replaced"
    assert {row["expires_at"] for row in listed(data_dir)} == {None}
    for network in ("198.51.100.0/24", "2001:db8::7", "203.0.113.9"):
        tollguard("bans", "remove", network, data_dir=data_dir)


def test_bad_import_names_the_lines_and_changes_nothing(data_dir: Path, tmp_path: Path) -> None:
    tollguard("bans", "add", "192.0.2.77", data_dir=data_dir)
    bad = tmp_path / "bad.txt"
    bad.write_text("# from the honeypot\n203.0.113.1\nexample.com\n\n203.0.113.0/40\n")
    result = tollguard("bans", "import", str(bad), data_dir=data_dir, check=False)
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
    assert "line 3: 'example.com' is not an IP address or CIDR network" in result.stderr
    assert "line 5: '203.0.113.0/40' is not an IP address or CIDR network" in result.stderr
    assert [row["network"] for row in listed(data_dir)] == ["192.0.2.77"]
    missing = tollguard(
        "bans", "import", str(tmp_path / "none.txt"), data_dir=data_dir, check=False
    )
    assert missing.returncode == 1 and "none.txt" in missing.stderr
    tollguard("bans", "remove", "192.0.2.77", data_dir=data_dir)
