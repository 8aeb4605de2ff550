"""Bindings across a restart of the switch: UDP phones stay reachable, nothing else stays.

Two switches run one after the other on the same data directory, as a restart does; the
phone's socket stays open in between, as a phone behind its NAT does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import pytest

from tollguard.sip.message import make_response
from tollguard.state import bindings_file

from .conftest import running_switch
from .test_inbound import BOB_CONTACT, BOB_DID, PROVIDER_HOST, _invite, _peer, did_plan
from .test_registrar import Phone


def test_a_udp_phone_is_called_after_a_restart_without_registering_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tollguard.switch.server")

    async def main() -> None:
        phone = await _peer()
        async with running_switch(tmp_path, {}, {}) as h:
            registered = await Phone(h, phone, "bob").register((f"<{BOB_CONTACT}>",), "600")
            assert registered.status == 200
        path = tmp_path / "bindings.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        (kept,) = json.loads(path.read_text())["bindings"]
        assert (kept["account_id"], kept["contact"]) == (2, BOB_CONTACT)
        assert kept["source"] == ["127.0.0.1", phone.port]

        async with running_switch(tmp_path, {}, {}) as h:
            await h.source.swap(did_plan(h))
            provider = await _peer(PROVIDER_HOST)
            _invite(h, provider, f"+{BOB_DID}")
            # To where the REGISTER came from before the restart, for the contact it bound.
            invite, addr = await phone.request("INVITE")
            assert str(invite.uri) == BOB_CONTACT
            phone.send(make_response(invite, 486, to_tag="busy"), addr)
            await provider.response(486)
            phone.transport.close()  # type: ignore[union-attr]
            provider.transport.close()  # type: ignore[union-attr]

    asyncio.run(main())
    assert "registrar: 1 bindings taken back" in caplog.text


def test_bindings_of_accounts_gone_or_disabled_or_expired_are_not_taken_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tollguard.switch.server")
    record = {
        "account_id": 2,
        "contact": BOB_CONTACT,
        "expires_at": 4102444800.0,  # 2100
        "call_id": "c",
        "cseq": 1,
        "source": ["127.0.0.1", 5062],
        "instance": "",
        "user_agent": "",
        "reg_id": 0,
        "q": 1000,
    }
    records = [
        record,
        {**record, "account_id": 99},  # no such account
        {**record, "account_id": 1, "expires_at": 1.0},  # expired long ago
        {**record, "account_id": "1"},  # damaged
    ]
    (tmp_path / "bindings.json").write_text(json.dumps({"format": 1, "bindings": records}))

    async def main() -> None:
        async with running_switch(tmp_path, {}, {}):
            pass

    asyncio.run(main())
    assert "binding 4: account_id is not an integer" in caplog.text
    assert "registrar: 1 bindings taken back" in caplog.text
    assert "(1 more were expired, or of accounts gone or disabled)" in caplog.text
    # Saved again at the stop: the one binding taken back.
    found, problems = bindings_file.parse((tmp_path / "bindings.json").read_text(), 0)
    assert problems == []
    assert [(b.account_id, b.contact) for b in found] == [(2, BOB_CONTACT)]


def test_a_damaged_file_is_reported_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "bindings.json").write_text("{not json")

    async def main() -> None:
        async with running_switch(tmp_path, {}, {}):
            pass

    asyncio.run(main())
    assert "bindings.json: not JSON" in caplog.text
    assert bindings_file.parse((tmp_path / "bindings.json").read_text(), 0) == ([], [])
