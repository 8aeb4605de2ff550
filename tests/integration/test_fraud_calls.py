"""The fraud engine through a real ``tollguard serve``: SIPp calls, CDRs as the record.

The plan (provisioned with ``tollguard load``, the ``fraud`` mappings of
docs/provisioning.md) has one provider answering every call and four customers, each
with one rule to prove:

=========  ==========================  ===============================================
customer   caller                      fraud policy
=========  ==========================  ===============================================
prem       digest account ``pat``      the default destination list; velocity on the
                                       account: 5 distinct numbers an hour suspend it
capped     IP list 127.0.0.5           ``spend_per_day: "0.20"``; every call costs 0.05
channels   IP list 127.0.0.6           ``max_concurrent: 3``
paced      IP list 127.0.0.7           ``calls_per_second: 1``, ``cps_burst: 3``
=========  ==========================  ===============================================

Every call of a known customer has a CDR, refused ones too, with the SIP code, the
Q.850 cause and the rule in ``detail``: that is what the tests read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from tollguard.bench.sippctl import LOOPBACK

from .harness import Switch, export_cdrs, manage_shell, rate
from .switches import card, own_switch, provider

pytestmark = pytest.mark.integration

PAT = ("pat", "Plum-Tree-Violet-42")
CAPPED_HOST, CHANNELS_HOST, PACED_HOST = "127.0.0.5", "127.0.0.6", "127.0.0.7"
VELOCITY_DESTINATIONS = 5
SPEND_CAP = Decimal("0.20")
CALL_PRICE = Decimal("0.0500")  # connect fee 0.04 + 1 s at 0.60 a minute
MAX_CONCURRENT = 3
CPS, CPS_BURST = 1, 3

# Premium-rate numbers (libphonenumber: PREMIUM_RATE), dialled internationally.
GERMAN_PREMIUM = "00499001234567"  # abroad for a UK customer: the default list denies it
UK_PREMIUM = [f"0044909879000{n}" for n in range(1, 9)]  # at home: allowed by default
UK_FIXED = "00442079460000"


def fraud_plan(ports: Mapping[str, int]) -> dict[str, Any]:
    uk = {"country_code": "44"}
    postpaid = {"mode": "postpaid", "credit_limit": "1000000"}

    def acl_customer(name: str, host: str, limits: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name, "sell_card": "sell", "credit": postpaid, "numbering": uk,
            "acl": [{"network": f"{host}/32"}], "fraud": {"limits": limits},
        }  # fmt: skip

    return {
        "rate_cards": [
            card(
                "sell",
                "sell",
                [
                    rate("44", Decimal("0.6000"), connect_fee=Decimal("0.0400")),
                    rate("49", Decimal("0.6000"), connect_fee=Decimal("0.0400")),
                ],
            ),
            card("cost", "cost", [rate("44", Decimal("0.3000")), rate("49", Decimal("0.3000"))]),
        ],
        "providers": [provider("alpha", ports["alpha"], "cost")],
        "customers": [
            {
                "name": "prem",
                "sell_card": "sell",
                "credit": postpaid,
                "numbering": uk,
                "accounts": [
                    {
                        "username": PAT[0],
                        "password": PAT[1],
                        "allow_md5": True,
                        "fraud": {
                            "velocity": {
                                "destinations_min": VELOCITY_DESTINATIONS,
                                "action": "suspend_account",
                                "suspend_s": 0,
                            }
                        },
                    }
                ],
            },
            acl_customer("capped", CAPPED_HOST, {"spend_per_day": str(SPEND_CAP)}),
            acl_customer("channels", CHANNELS_HOST, {"max_concurrent": MAX_CONCURRENT}),
            acl_customer("paced", PACED_HOST, {"calls_per_second": CPS, "cps_burst": CPS_BURST}),
        ],
    }


@pytest.fixture(scope="module")
def fraud_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Switch]:
    root = tmp_path_factory.mktemp("fraud-calls")
    with own_switch(root, {"alpha": "uas_answer"}, fraud_plan) as switch:
        yield switch


def cdrs_by_tag(switch: Switch, tags: list[str], timeout_s: float = 20) -> list[dict[str, Any]]:
    """The one CDR of each call tagged in ``tags``, in that order (one export for all)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[str, list[dict[str, Any]]] = {tag: [] for tag in tags}
        for cdr in export_cdrs(switch.server):
            tag = str(cdr.get("call_id", "")).partition("-")[2].partition("@")[0]
            if tag in found:
                found[tag].append(cdr)
        if all(found.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert all(len(mine) == 1 for mine in found.values()), found
    return [found[tag][0] for tag in tags]


def pat_calls(switch: Switch, numbers: list[str]) -> list[dict[str, Any]]:
    """One call of ``pat`` to each number in turn; their CDRs. SIPp's caller fails a
    call unless it is answered, and what it heard is what the CDR says."""
    runs = [
        switch.call(
            "uac_auth", called, host=LOOPBACK, auth=PAT, keys={"caller": PAT[0]}, timeout_s=20
        )
        for called in numbers
    ]
    cdrs = cdrs_by_tag(switch, [tag for tag, _ in runs])
    for (_, result), cdr in zip(runs, cdrs, strict=True):
        assert result.stats is not None and result.stats.created == 1, result.errors
        assert (cdr["sip_code"] == 200) == result.ok, (cdr, result.errors)
    return cdrs


def suspensions(switch: Switch) -> list[str]:
    code = (
        "import json\n"
        "from tollguard.web.fraud.models import Suspension\n"
        "print(json.dumps([s.subject for s in Suspension.objects.all()]))\n"
    )
    subjects: list[str] = manage_shell(switch.server, code)
    return subjects


def test_premium_burst_is_blocked_and_the_account_suspended(fraud_switch: Switch) -> None:
    switch = fraud_switch
    # Premium abroad: the shipped default list refuses it before any gateway is tried.
    cdr, *cdrs, ordinary = pat_calls(switch, [GERMAN_PREMIUM, *UK_PREMIUM, UK_FIXED])
    assert (cdr["sip_code"], cdr["q850_cause"], cdr["attempts"]) == (403, 21, []), cdr
    assert "fraud destination-denied" in cdr["detail"], cdr

    # Premium at home is allowed, but a burst of new numbers trips the account's
    # velocity rule at the 5th: that call and every later one are refused.
    codes = [c["sip_code"] for c in cdrs]
    first_refused = VELOCITY_DESTINATIONS - 1
    assert codes == [200] * first_refused + [403] * (len(UK_PREMIUM) - first_refused), cdrs
    assert "fraud velocity-destinations" in cdrs[first_refused]["detail"], cdrs
    for refused in cdrs[first_refused + 1 :]:
        assert "fraud suspended" in refused["detail"], refused
        assert refused["attempts"] == [], refused

    # Suspended: even an ordinary number is refused, the same 403 as for every rule.
    cdr = ordinary
    assert (cdr["sip_code"], cdr["q850_cause"]) == (403, 21), cdr
    assert "fraud suspended" in cdr["detail"], cdr
    # ...until an operator releases it: the suspension is in the store (admin, API).
    subject = f"account:{cdr['account_id']}"
    deadline = time.monotonic() + 15
    while subject not in suspensions(switch) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subject in suspensions(switch)


def test_daily_spend_cap_stops_calls_at_the_cap(fraud_switch: Switch) -> None:
    switch = fraud_switch
    tags = []
    for _ in range(8):
        tag, result = switch.call("uac_basic", UK_FIXED, host=CAPPED_HOST)
        tags.append(tag)
        if not result.ok:
            break
    tag, _ = switch.call("uac_basic", UK_FIXED, host=CAPPED_HOST)
    *cdrs, again = cdrs_by_tag(switch, [*tags, tag])
    answered = [Decimal(str(c["sell_amount"])) for c in cdrs if c["sip_code"] == 200]
    # Each call admitted while the day's spend was below the cap; the first refused
    # once it reached it.
    assert all(price == CALL_PRICE for price in answered), cdrs
    assert len(answered) == SPEND_CAP / CALL_PRICE, cdrs
    refused = cdrs[-1]
    assert (refused["sip_code"], refused["q850_cause"]) == (403, 21), refused
    assert "fraud spend-per-day" in refused["detail"], refused
    # And it stays refused.
    assert again["sip_code"] == 403, again


def test_concurrent_call_limit_admits_exactly_n(fraud_switch: Switch) -> None:
    switch = fraud_switch
    calls = 2 * MAX_CONCURRENT
    # All at once, each held 3 s: they would all overlap.
    tag, result = switch.call(
        "uac_basic", UK_FIXED, host=CHANNELS_HOST, calls=calls, rate=100, limit=calls,
        pause_ms=3000,
    )  # fmt: skip
    assert result.stats is not None and result.stats.created == calls, result.errors
    assert result.successful == MAX_CONCURRENT, result.errors
    cdrs = switch.cdrs(tag, calls)
    codes = sorted(c["sip_code"] for c in cdrs)
    assert codes == [200] * MAX_CONCURRENT + [503] * MAX_CONCURRENT, cdrs
    for cdr in cdrs:
        if cdr["sip_code"] == 503:
            # What a trunk at its limit expects: try elsewhere (Q.850 34, no circuit).
            assert cdr["q850_cause"] == 34, cdr
            assert "fraud concurrent-calls" in cdr["detail"], cdr
    # The channels come back when the calls end.
    tag, result = switch.call(
        "uac_basic", UK_FIXED, host=CHANNELS_HOST, calls=MAX_CONCURRENT, rate=100,
        limit=MAX_CONCURRENT, pause_ms=500,
    )  # fmt: skip
    assert result.ok, result.errors


def test_calls_per_second_limit_holds_exactly(fraud_switch: Switch) -> None:
    switch = fraud_switch
    # 12 calls within a few milliseconds: the bucket holds 3 and refills one a second,
    # so exactly the burst goes through.
    calls = 4 * CPS_BURST
    tag, result = switch.call(
        "uac_basic", UK_FIXED, host=PACED_HOST, calls=calls, rate=1000, limit=calls
    )
    assert result.stats is not None and result.stats.created == calls, result.errors
    cdrs = switch.cdrs(tag, calls)
    codes = sorted(c["sip_code"] for c in cdrs)
    assert codes == [200] * CPS_BURST + [503] * (calls - CPS_BURST), cdrs
    assert all("fraud calls-per-second" in c["detail"] for c in cdrs if c["sip_code"] == 503), cdrs
