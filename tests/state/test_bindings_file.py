"""The bindings file: what is kept, what is read back, what is refused."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

from tollguard.domain.registration import Binding
from tollguard.state import bindings_file

UDP = Binding(
    account_id=7,
    contact="sip:desk@192.168.1.20:5062",
    expires_at=2000.5,
    call_id="reg-1@phone",
    cseq=4,
    source=("198.51.100.7", 40000),
    transport="udp",
    connection=0,
    instance="<urn:uuid:00000000-0000-0000-0000-000000000001>",
    user_agent="desk phone",
    reg_id=1,
    q=500,
)


def test_udp_bindings_are_kept_whole_and_stream_ones_are_not() -> None:
    tcp = replace(UDP, contact="sip:desk@192.168.1.20;transport=tcp", transport="tcp", connection=3)
    text = bindings_file.dump([tcp, UDP])
    assert bindings_file.parse(text, 1000.0) == ([UDP], [])


def test_the_order_is_stable() -> None:
    other = replace(UDP, account_id=3)
    assert bindings_file.dump([UDP, other]) == bindings_file.dump([other, UDP])


def test_expired_bindings_are_not_read_back() -> None:
    assert bindings_file.parse(bindings_file.dump([UDP]), 2000.5) == ([], [])


def test_a_file_of_another_kind_gives_nothing_and_says_why() -> None:
    empty = "not JSON: Expecting value: line 1 column 1 (char 0)"
    assert bindings_file.parse("", 0) == ([], [empty])
    assert bindings_file.parse("[]", 0) == ([], ["not a bindings file of format 1"])
    assert bindings_file.parse('{"format": 2, "bindings": []}', 0)[1] == [
        "not a bindings file of format 1"
    ]
    assert bindings_file.parse('{"format": 1}', 0) == ([], ["no list of bindings"])


def test_a_wrong_record_is_skipped_and_named() -> None:
    good = json.loads(bindings_file.dump([UDP]))["bindings"][0]
    records = [
        good,
        "text",
        {**good, "q": 1001},
        {**good, "source": ["198.51.100.7", 0]},
        {**good, "source": "198.51.100.7:5060"},
        {**good, "cseq": True},
        {**good, "contact": ""},
        {key: value for key, value in good.items() if key != "call_id"},
        {**good, "expires_at": "soon"},
    ]
    found, problems = bindings_file.parse(json.dumps({"format": 1, "bindings": records}), 0)
    assert found == [UDP]
    assert problems == [
        "binding 2: not an object",
        "binding 3: q, reg_id or account_id out of range",
        "binding 4: source is not [host, port]",
        "binding 5: source is not [host, port]",
        "binding 6: cseq is not an integer",
        "binding 7: empty contact",
        "binding 8: call_id is missing",
        "binding 9: expires_at is not a number",
    ]


def test_written_whole_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bindings.json"
    assert bindings_file.read(path) is None
    bindings_file.write(path, "one")
    bindings_file.write(path, "two")
    assert bindings_file.read(path) == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [item.name for item in path.parent.iterdir()] == ["bindings.json"]
