"""Inbound calls and extensions end to end: SIPp phones register with a real
``tollguard serve`` and are called from a provider's gateway address and by extension.

This module runs a switch of its own (its plan has DIDs, and a switch with DIDs takes
every call from a provider gateway's address as inbound). The provider ``carrier-in``
has one gateway at 127.0.0.4: SIPp callers bound there are the provider calling in. Its
inbound card charges 0.01 a second; DID ``UDP_DID`` costs its owner 0.60 a minute.
The DIDs, the inbound card and the extensions are created through the ORM (the DID
provisioning surfaces are not part of this module).

A phone is one SIPp process (``uac_register_wait``, or ``uac_register_q`` to register
with a q value) that registers with digest, refreshes, and answers the calls that reach
it with an out-of-call scenario (``-oocsf``: calls arrive with Call-IDs of their own):
``uas_answer``, or this directory's phones that ring and are cancelled, ring and
refuse, or ring and answer.

The account ``ring`` has two phones of one q (they ring together), ``hunt`` one of q 1
and one of q 0.5 (rung in that order), and ``own`` is called by its own customer on its
DID: on-net. The provider ``carrier-out`` (a SIPp gateway, the cheapest for 44) takes
the calls that are routed out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tollguard.bench.sipp import scenario_path
from tollguard.bench.sippctl import LOOPBACK, Sipp, SippStats, free_udp_ports, status_line

from .harness import PHONE, Provider, Switch, call_charges, manage_shell
from .switches import SCENARIOS, own_switch

pytestmark = pytest.mark.integration

PROVIDER_HOST = "127.0.0.4"  # carrier-in's gateway: calls from here are inbound
STRANGER_HOST = "127.0.0.9"  # nobody's
ALICE_HOST = "127.0.0.5"
CAROL_HOST = "127.0.0.6"
ALICE = ("alice", "correct-horse-battery")
DESK2 = ("desk2", "battery-horse-staple")
CAROL = ("carol", "horse-staple-battery")
RING = ("ring", "horse-battery-correct")
HUNT = ("hunt", "battery-correct-horse")
OWN = ("own", "correct-staple-horse")
UDP_DID = "442071000001"  # desk1, 0.60 a minute
TCP_DID = "442071000002"  # desk2 (registers over TCP)
TRUNK_DID = "442071000003"  # the trunk: trunk-down (503), then trunk-up
FORK_DID = "442071000004"  # ring: two phones of one q
HUNT_DID = "442071000005"  # hunt: the q=1 phone, then the q=0.5 one
OWN_DID = "442071000006"  # own: called by its own customer
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
    # The trunk's addresses go into its DID (_provision_dids); carrier-out's is a gateway.
    credit = {"mode": "postpaid", "credit_limit": "1000"}
    numbering = {"country_code": "44"}
    out_gw = {"name": "out-gw", "host": LOOPBACK, "port": gateways["carrier-out"]}
    return {
        "rate_cards": [
            {"name": "pbx-sell", "kind": "sell", "currency": "EUR", "rates": [_rate("44", "1")]},
            {"name": "in-cost", "kind": "cost", "currency": "EUR", "rates": [_rate("44", "0.6")]},
            {"name": "out-cost", "kind": "cost", "currency": "EUR", "rates": [_rate("44", "0.3")]},
        ],
        "providers": [
            {
                "name": "carrier-in",
                "cost_card": "in-cost",
                "gateways": [
                    {"name": "in-gw", "host": PROVIDER_HOST, "port": 5099, "transport": "udp"}
                ],
            },
            {
                "name": "carrier-out",
                "cost_card": "out-cost",
                "gateways": [{**out_gw, "transport": "udp"}],
            },
        ],
        "customers": [
            {
                "name": "pbx",
                "sell_card": "pbx-sell",
                "credit": credit,
                "numbering": numbering,
                "accounts": [
                    {"username": u, "password": p, "allow_md5": True}
                    for u, p in (PHONE, DESK2, ALICE, RING, HUNT, OWN)
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
        f"for number, user in (('{FORK_DID}', 'ring'), ('{HUNT_DID}', 'hunt'),"
        f" ('{OWN_DID}', 'own')):\n"
        "    Did.objects.create(customer=pbx, first=number, target='account',"
        " account=Account.objects.get(username=user))\n"
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
        "carrier-out": Provider("uas_answer", "", Decimal(0)),
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
    """A SIPp phone registered as ``user`` for ``stay_ms`` (with q value ``q``, when
    given), answering its calls with ``answers`` (a shipped scenario's name, or a path)."""

    def __init__(
        self,
        switch: Switch,
        user: tuple[str, str],
        *,
        tcp: bool = False,
        stay_ms: int = 120_000,
        q: str | None = None,
        answers: str | Path = "uas_answer",
        keys: dict[str, str] | None = None,
    ) -> None:
        (port,) = free_udp_ports(1)
        self.port = port
        ooc = answers if isinstance(answers, Path) else scenario_path(answers)
        extra = ["-oocsf", str(ooc)]
        if tcp:
            extra += ["-t", "t1"]
        scenario: str | Path = "uac_register_wait"
        phone_keys = {"expires": "600", **(keys or {})}
        if q is not None:
            scenario = SCENARIOS / "uac_register_q.xml"
            phone_keys["q"] = q
        self.sipp = Sipp(
            scenario,
            workdir=switch.workdir,
            name=f"phone-{user[0]}-{port}",
            local_port=port,
            remote=(LOOPBACK, switch.port),
            service=user[0],
            auth=user,
            keys=phone_keys,
            calls=1,
            pause_ms=stay_ms,
            extra_args=extra,
        )
        self.switch = switch
        self.user = user[0]
        self.contact = f"sip:{self.user}@{LOOPBACK}:{port}"

    def log(self) -> str:
        """The lines its scenarios logged so far."""
        path = self.sipp.log_path
        return path.read_text(errors="replace") if path.exists() else ""

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


def _until(what: str, check: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not seen within {timeout_s} s: {what}"
        time.sleep(0.1)


def _lines(cdr: dict[str, Any]) -> list[tuple[str, int, str]]:
    """Each attempt's contact (without its parameters), final answer and reason."""
    return [(a["target"].split(";")[0], a["sip_code"], a["reason"]) for a in cdr["attempts"]]


def test_two_phones_of_one_q_ring_together_and_the_first_to_answer_wins(switch: Switch) -> None:
    """Both phones get the INVITE; the one picked up after half a second of ringing
    takes the call, the other (ringing, never picked up) gets the CANCEL, which its
    scenario waits for, with "Call completed elsewhere"."""
    idle = _Phone(switch, RING, q="0.8", answers=SCENARIOS / "uas_ring_elsewhere.xml")
    answering = _Phone(switch, RING, q="0.8", answers=SCENARIOS / "uas_ring_answer.xml")
    with idle, answering:
        tag, result = switch.call("uac_basic", FORK_DID, host=PROVIDER_HOST, pause_ms=500)
        assert result.ok, result.errors
        assert result.successful == 1
        _until("the idle phone's CANCEL", lambda: "cancel reason" in idle.log())
        assert 'SIP;cause=200;text="Call completed elsewhere"' in idle.log()
        assert "answered" in answering.log()
        assert "answered" not in idle.log()
    cdr = _one(switch, tag)
    assert (cdr["direction"], cdr["sip_code"], cdr["did"]) == ("inbound", 200, FORK_DID)
    assert (cdr["customer"], cdr["account"], cdr["provider"]) == ("pbx", "ring", "carrier-in")
    assert sorted(_lines(cdr)) == sorted(
        [(idle.contact, 487, "call completed elsewhere"), (answering.contact, 200, "OK")]
    )


def test_a_lower_q_phone_rings_only_after_the_higher_one_refused(switch: Switch) -> None:
    """The q=1 phone rings for a second, then refuses (486); only then does the q=0.5
    phone ring, and it answers half a second later. Had both rung together, the second
    would have answered while the first still rang, and the first been cancelled."""
    first = _Phone(
        switch, HUNT, q="1", answers=SCENARIOS / "uas_ring_refuse.xml",
        keys={"status": status_line(486)},
    )  # fmt: skip
    second = _Phone(switch, HUNT, q="0.5", answers=SCENARIOS / "uas_ring_answer.xml")
    with first, second:
        tag, result = switch.call("uac_basic", HUNT_DID, host=PROVIDER_HOST, pause_ms=200)
        assert result.ok, result.errors
        _until("the q=0.5 phone answered", lambda: "answered" in second.log())
        assert "refused" in first.log()
    cdr = _one(switch, tag)
    assert (cdr["sip_code"], cdr["account"]) == (200, "hunt")
    assert _lines(cdr) == [(first.contact, 486, "Busy Here"), (second.contact, 200, "OK")]


def _created(gateway: Sipp) -> int:
    stats: SippStats | None = gateway.result().stats
    return stats.created if stats is not None else 0


def test_a_customer_calling_its_own_did_reaches_its_phone_on_net(switch: Switch) -> None:
    """alice (of pbx) dials pbx's DID: the phone rings with no provider involved, the
    CDR is internal and costs nothing. carol (of another customer) dials the same
    number: routed out to carrier-out, whose SIPp therefore takes one call in all."""
    provider = switch.gateways["carrier-out"]
    assert _created(provider) == 0
    with _Phone(switch, OWN) as phone:
        tag, result = switch.call("uac_auth", OWN_DID, host=ALICE_HOST, auth=ALICE)
        assert result.ok, result.errors
        otag, oresult = switch.call("uac_auth", OWN_DID, host=CAROL_HOST, auth=CAROL)
        assert oresult.ok, oresult.errors
    cdr, other = _one(switch, tag), _one(switch, otag)
    assert (cdr["direction"], cdr["did"], cdr["sip_code"]) == ("internal", OWN_DID, 200)
    assert (cdr["customer"], cdr["account"], cdr["provider"]) == ("pbx", "alice", None)
    assert Decimal(cdr["sell_amount"]) == Decimal(cdr["cost_amount"]) == 0
    assert [(target, code) for target, code, _ in _lines(cdr)] == [(phone.contact, 200)]
    assert call_charges(switch.server, tag) == []
    assert (other["direction"], other["did"], other["provider"]) == ("outbound", "", "carrier-out")
    # carol's call reached the provider's SIPp; alice's never did.
    _until("carol's call counted", lambda: _created(provider) >= 1)
    time.sleep(1.5)  # SIPp writes its statistics every second
    assert _created(provider) == 1
