"""Inbound calls and extensions end to end: SIPp phones register with a real
``tollguard serve`` and are called from a provider's gateway address and by extension.

This module runs a switch of its own (its plan has DIDs, and a switch with DIDs takes
every call from a provider gateway's address as inbound). The provider ``carrier-in``
has one gateway at 127.0.0.4: SIPp callers bound there are the provider calling in. Its
inbound card charges 0.01 a second; DID ``UDP_DID`` costs its owner 0.60 a minute.
The DIDs, the inbound card and the extensions are created through the ORM (the DID
provisioning surfaces are not part of this module).

A phone is one SIPp process (``uac_register_wait``) that registers with digest,
refreshes, and answers the calls that reach it with ``uas_answer`` (``-oocsf``: calls
arrive with Call-IDs of their own).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tollguard.bench.sipp import scenario_path
from tollguard.bench.sippctl import LOOPBACK, Sipp, free_udp_ports, status_line

from .harness import PHONE, Provider, Switch, call_charges, manage_shell
from .switches import own_switch

pytestmark = pytest.mark.integration

PROVIDER_HOST = "127.0.0.4"  # carrier-in's gateway: calls from here are inbound
STRANGER_HOST = "127.0.0.9"  # nobody's
ALICE_HOST = "127.0.0.5"
CAROL_HOST = "127.0.0.6"
ALICE = ("alice", "correct-horse-battery")
DESK2 = ("desk2", "battery-horse-staple")
CAROL = ("carol", "horse-staple-battery")
UDP_DID = "442071000001"  # desk1, 0.60 a minute
TCP_DID = "442071000002"  # desk2 (registers over TCP)
TRUNK_DID = "442071000003"  # the trunk: trunk-down (503), then trunk-up
UNKNOWN = "442071000009"
DID_PRICE = Decimal("0.60")
INBOUND_PER_SECOND = Decimal("0.01")


def _rate(prefix: str, per_minute: str) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "destination": f"Route {prefix}",
        "price_per_minute": per_minute,
        "initial_increment": 1,
        "next_increment": 1,
    }


def did_plan(gateways: dict[str, int]) -> dict[str, Any]:
    del gateways  # the trunk's addresses go into its DID, below
    credit = {"mode": "postpaid", "credit_limit": "1000"}
    numbering = {"country_code": "44"}
    return {
        "rate_cards": [
            {"name": "pbx-sell", "kind": "sell", "currency": "EUR", "rates": [_rate("44", "1")]},
            {"name": "in-cost", "kind": "cost", "currency": "EUR", "rates": [_rate("44", "0.6")]},
        ],
        "providers": [
            {
                "name": "carrier-in",
                "cost_card": "in-cost",
                "gateways": [
                    {"name": "in-gw", "host": PROVIDER_HOST, "port": 5099, "transport": "udp"}
                ],
            }
        ],
        "customers": [
            {
                "name": "pbx",
                "sell_card": "pbx-sell",
                "credit": credit,
                "numbering": numbering,
                "accounts": [
                    {"username": u, "password": p, "allow_md5": True}
                    for u, p in (PHONE, DESK2, ALICE)
                ],
            },
            {
                "name": "other",
                "sell_card": "pbx-sell",
                "credit": credit,
                "numbering": numbering,
                "accounts": [{"username": CAROL[0], "password": CAROL[1], "allow_md5": True}],
            },
        ],
    }


def _provision_dids(switch: Switch) -> None:
    """The inbound card, the extensions and the DIDs, then wait for the switch to load them."""
    down, up = switch.gateways["trunk-down"].local_port, switch.gateways["trunk-up"].local_port
    code = (
        "import json\n"
        "from decimal import Decimal\n"
        "from tollguard.web.carriers.models import Provider\n"
        "from tollguard.web.core.selectors import config_version\n"
        "from tollguard.web.customers.models import Account, Customer, Did\n"
        "from tollguard.web.rating.models import RateCard\n"
        "p = Provider.objects.get(name='carrier-in')\n"
        "p.inbound_card = RateCard.objects.get(name='in-cost')\n"
        "p.save()\n"
        f"for user, ext in (('{PHONE[0]}', '201'), ('desk2', '202'), ('alice', '203'),"
        " ('carol', '301')):\n"
        "    Account.objects.filter(username=user).update(extension=ext)\n"
        "pbx = Customer.objects.get(name='pbx')\n"
        f"Did.objects.create(customer=pbx, first='{UDP_DID}', target='account',"
        f" account=Account.objects.get(username='{PHONE[0]}'),"
        f" price_per_minute=Decimal('{DID_PRICE}'))\n"
        f"Did.objects.create(customer=pbx, first='{TCP_DID}', target='account',"
        " account=Account.objects.get(username='desk2'))\n"
        f"Did.objects.create(customer=pbx, first='{TRUNK_DID}', target='trunk',"
        f" trunk_host='{LOOPBACK}', trunk_port={down}, failover_host='{LOOPBACK}',"
        f" failover_port={up})\n"
        "print(json.dumps(config_version()))\n"
    )
    version = manage_shell(switch.server, code)
    loaded = f"routing plan version {version} loaded"
    deadline = time.monotonic() + 30
    while loaded not in switch.server.log():
        assert time.monotonic() < deadline, switch.server.log()[-3000:]
        time.sleep(0.2)


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switch]:
    root = tmp_path_factory.mktemp("sipp-dids")
    gateways = {
        "trunk-down": Provider("uas_reject", "", Decimal(0), {"status": status_line(503)}),
        "trunk-up": Provider("uas_answer", "", Decimal(0)),
    }
    settings = {
        "sip": {
            "gateway_setup_timeout_s": 10.0,
            # SIPp's phones run the calls they get as out-of-call scenarios, where an
            # OPTIONS would be unexpected: no NAT pings.
            "register_nat_ping_s": 0,
        }
    }
    with own_switch(root, gateways, did_plan, settings, tcp=True) as running:
        _provision_dids(running)
        yield running


class _Phone:
    """A SIPp phone registered as ``user`` for ``stay_ms``, answering its calls."""

    def __init__(
        self, switch: Switch, user: tuple[str, str], *, tcp: bool = False, stay_ms: int = 120_000
    ) -> None:
        (port,) = free_udp_ports(1)
        self.port = port
        extra = ["-oocsf", str(scenario_path("uas_answer"))]
        if tcp:
            extra += ["-t", "t1"]
        self.sipp = Sipp(
            "uac_register_wait",
            workdir=switch.workdir,
            name=f"phone-{user[0]}-{port}",
            local_port=port,
            remote=(LOOPBACK, switch.port),
            service=user[0],
            auth=user,
            keys={"expires": "600"},
            calls=1,
            pause_ms=stay_ms,
            extra_args=extra,
        )
        self.switch = switch
        self.user = user[0]

    def __enter__(self) -> _Phone:
        self.sipp.start()
        # Registered and refreshed: two bindings logged for this contact.
        line = f"registered {self.user} at sip:{self.user}@{LOOPBACK}:{self.port}"
        deadline = time.monotonic() + 30
        while self.switch.server.log().count(line) < 2:
            assert time.monotonic() < deadline, self.switch.server.log()[-3000:]
            assert self.sipp.running, self.sipp.result()
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sipp.kill()


def _one(switch: Switch, tag: str) -> dict[str, Any]:
    (cdr,) = switch.cdrs(tag, 1)
    return cdr


def test_a_registered_phone_is_called_on_its_did_and_charged(switch: Switch) -> None:
    with _Phone(switch, PHONE):
        tag, result = switch.call("uac_basic", f"+{UDP_DID}", host=PROVIDER_HOST, pause_ms=2000)
        assert result.ok, result.errors
        assert result.successful == 1
        # An extension call to the same phone: no provider, no money.
        etag, eresult = switch.call("uac_auth", "201", host=ALICE_HOST, auth=ALICE)
        assert eresult.ok, eresult.errors
    cdr, ext = _one(switch, tag), _one(switch, etag)
    assert cdr["direction"] == "inbound"
    assert cdr["did"] == UDP_DID
    assert cdr["sip_code"] == 200
    assert cdr["customer"] == "pbx"
    assert cdr["account"] == PHONE[0]
    assert cdr["provider"] == "carrier-in"
    assert cdr["source_ip"] == PROVIDER_HOST
    seconds = math.ceil(cdr["duration_ms"] / 1000)
    assert seconds >= 2
    assert Decimal(cdr["cost_amount"]) == INBOUND_PER_SECOND * seconds
    # The DID's price per started minute, posted to the owner's ledger.
    minutes = math.ceil(seconds / 60)
    assert Decimal(cdr["sell_amount"]) == DID_PRICE * minutes
    assert cdr["billed_s"] == 60 * minutes
    charges = call_charges(switch.server, tag)
    assert [Decimal(c["amount"]) for c in charges] == [-DID_PRICE * minutes]
    assert ext["direction"] == "internal"
    assert ext["sip_code"] == 200
    assert (ext["customer"], ext["account"], ext["provider"]) == ("pbx", "alice", None)
    assert Decimal(ext["sell_amount"]) == Decimal(ext["cost_amount"]) == 0
    assert call_charges(switch.server, etag) == []


def test_a_phone_registered_over_tcp_is_called_over_its_connection(switch: Switch) -> None:
    with _Phone(switch, DESK2, tcp=True):
        assert f"registered desk2 at sip:desk2@{LOOPBACK}:" in switch.server.log()
        tag, result = switch.call("uac_basic", TCP_DID, host=PROVIDER_HOST, pause_ms=500)
        assert result.ok, result.errors
        cdr = _one(switch, tag)
        assert cdr["sip_code"] == 200
        assert cdr["account"] == "desk2"
        (attempt,) = cdr["attempts"]
        assert attempt["target"].lower().endswith(";transport=tcp")
    # The phone is gone, and its connection with it: the binding has not expired, but
    # the switch never opens a new connection towards a phone: 480, at once.
    tag, result = switch.call(
        "uac_expect_code", TCP_DID, host=PROVIDER_HOST, keys={"expected": "480"}
    )
    assert result.ok, result.errors
    assert _one(switch, tag)["detail"] == "inbound: not registered"


def test_unknown_did_gets_404_and_a_cdr(switch: Switch) -> None:
    tag, result = switch.call(
        "uac_expect_code", UNKNOWN, host=PROVIDER_HOST, keys={"expected": "404"}
    )
    assert result.ok, result.errors
    cdr = _one(switch, tag)
    assert (cdr["direction"], cdr["sip_code"], cdr["provider"]) == ("inbound", 404, "carrier-in")
    assert cdr["customer"] is None


def test_a_trunk_did_fails_over_to_its_second_address(switch: Switch) -> None:
    tag, result = switch.call("uac_basic", TRUNK_DID, host=PROVIDER_HOST, pause_ms=200)
    assert result.ok, result.errors
    cdr = _one(switch, tag)
    assert [a["sip_code"] for a in cdr["attempts"]] == [503, 200]
    assert cdr["attempts"][1]["target"] == (
        f"sip:{TRUNK_DID}@{LOOPBACK}:{switch.gateways['trunk-up'].local_port}"
    )


def test_strangers_and_other_customers_reach_no_phone(switch: Switch) -> None:
    with _Phone(switch, PHONE):
        # Not a gateway's address: a customer's call, challenged; never a DID's phone.
        tag, result = switch.call(
            "uac_expect_code", UDP_DID, host=STRANGER_HOST, keys={"expected": "407"}
        )
        assert result.ok, result.errors
        # Carol, of another customer, dials pbx's extension 201: a number like any
        # other (no route), never desk1's phone.
        tag, result = switch.call(
            "uac_auth_expect_code", "201", host=CAROL_HOST, auth=CAROL, keys={"expected": "404"}
        )
        assert result.ok, result.errors
        assert _one(switch, tag)["direction"] == "outbound"
        # Her own extension is not registered: 480.
        tag, result = switch.call(
            "uac_auth_expect_code", "301", host=CAROL_HOST, auth=CAROL, keys={"expected": "480"}
        )
        assert result.ok, result.errors
        assert _one(switch, tag)["direction"] == "internal"
