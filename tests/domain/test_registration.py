"""The registration rules (RFC 3261 §10.3), without I/O."""

from __future__ import annotations

from typing import Literal

import pytest

from tollguard.domain.registration import (
    Binding,
    ContactRequest,
    Register,
    Registered,
    RegisterLimits,
    RegisterRefused,
    update,
)

LIMITS = RegisterLimits(
    min_expires_s=60, max_expires_s=3600, default_expires_s=1800, max_contacts=3
)
NOW = 10_000.0
OUT_OF_ORDER = "Server Internal Error - CSeq out of order"
MALFORMED = "Bad Request - malformed Expires"


def _register(
    *contacts: ContactRequest,
    expires: int | None = None,
    star: bool = False,
    call_id: str = "c1",
    cseq: int = 2,
    connection: int = 0,
) -> Register:
    asked: tuple[ContactRequest, ...] | Literal["*"] = "*" if star else contacts
    return Register(1, asked, expires, call_id, cseq, ("203.0.113.5", 40000), "udp", connection)


def _binding(
    uri: str, left: float, *, call_id: str = "c1", cseq: int = 1, instance: str = ""
) -> Binding:
    return Binding(1, uri, NOW + left, call_id, cseq, ("203.0.113.5", 40000), "udp", 0, instance)


def _ok(outcome: Registered | RegisterRefused) -> Registered:
    assert isinstance(outcome, Registered), outcome
    return outcome


def _left(outcome: Registered) -> dict[str, int]:
    return {b.contact: b.expires_in(NOW) for b in outcome.bindings}


@pytest.mark.parametrize(
    ("contact", "header", "left"),
    [
        (ContactRequest("sip:a@h"), None, 1800),
        (ContactRequest("sip:a@h"), 600, 600),
        (ContactRequest("sip:a@h", 900), 600, 900),
        (ContactRequest("sip:a@h"), 99_999, 3600),
        (ContactRequest("sip:a@h"), 60, 60),
    ],
    ids=["default", "header", "parameter-wins", "cut-to-max", "exactly-min"],
)
def test_expiry_of_a_new_binding(contact: ContactRequest, header: int | None, left: int) -> None:
    outcome = _ok(update((), _register(contact, expires=header), LIMITS, NOW))
    assert _left(outcome) == {"sip:a@h": left}
    assert outcome.bindings[0].source == ("203.0.113.5", 40000)


@pytest.mark.parametrize(
    ("register", "status", "reason"),
    [
        (_register(ContactRequest("sip:a@h"), expires=59), 423, "Interval Too Brief"),
        (_register(ContactRequest("sip:a@h", 1)), 423, "Interval Too Brief"),
        (_register(star=True, expires=60), 400, "Bad Request - '*' needs Expires: 0"),
        (_register(star=True), 400, "Bad Request - '*' needs Expires: 0"),
        (_register(ContactRequest("sip:a@h"), cseq=1), 500, OUT_OF_ORDER),
        (_register(star=True, expires=0, cseq=1), 500, OUT_OF_ORDER),
        (
            _register(*(ContactRequest(f"sip:{n}@h") for n in "abcd")),
            403,
            "Forbidden - too many contacts in one request",
        ),
        (_register(ContactRequest("sip:a@h"), expires=2**32), 400, MALFORMED),
    ],
    ids=[
        "brief-header",
        "brief-param",
        "star-nonzero",
        "star-none",
        "stale-cseq",
        "stale-star",
        "too-many",
        "huge-expires",
    ],
)
def test_refusals(register: Register, status: int, reason: str) -> None:
    current = (_binding("sip:a@h", 100),)
    outcome = update(current, register, LIMITS, NOW)
    assert isinstance(outcome, RegisterRefused)
    assert (outcome.status, outcome.reason) == (status, reason)
    assert outcome.min_expires == (60 if status == 423 else None)


def test_refresh_remove_one_query_and_remove_all() -> None:
    a, b = _binding("sip:a@h", 100), _binding("sip:b@h", 200)
    refreshed = _ok(update((a, b), _register(ContactRequest("sip:a@h"), expires=600), LIMITS, NOW))
    assert _left(refreshed) == {"sip:a@h": 600, "sip:b@h": 200}
    assert refreshed.removed == (a,)  # its old connection is let go, the new one held
    one_gone = _ok(
        update(refreshed.bindings, _register(ContactRequest("sip:b@h", 0), cseq=3), LIMITS, NOW)
    )
    assert _left(one_gone) == {"sip:a@h": 600}
    query = _ok(update(one_gone.bindings, _register(cseq=4), LIMITS, NOW))
    assert (_left(query), query.changed) == ({"sip:a@h": 600}, False)
    everything = _ok(update(query.bindings, _register(star=True, expires=0, cseq=5), LIMITS, NOW))
    assert everything.bindings == ()
    assert [b.contact for b in everything.removed] == ["sip:a@h"]


def test_a_new_call_id_may_use_any_cseq() -> None:
    current = (_binding("sip:a@h", 100, call_id="old", cseq=50),)
    outcome = _ok(
        update(current, _register(ContactRequest("sip:a@h"), call_id="new", cseq=1), LIMITS, NOW)
    )
    assert [b.call_id for b in outcome.bindings] == ["new"]


def test_an_instance_replaces_its_binding_from_a_new_address() -> None:
    """RFC 5626: the phone behind a NAT that changed its port is the same phone."""
    old = _binding("sip:a@192.168.1.2:5060", 100, instance="<urn:uuid:1>")
    moved = ContactRequest("sip:a@192.168.1.2:5999", None, "<urn:uuid:1>")
    outcome = _ok(update((old,), _register(moved), LIMITS, NOW))
    assert [b.contact for b in outcome.bindings] == ["sip:a@192.168.1.2:5999"]
    assert outcome.removed == (old,)


def test_past_the_contact_limit_the_soonest_to_expire_give_way() -> None:
    current = tuple(
        _binding(f"sip:{n}@h", left) for n, left in (("x", 300), ("y", 100), ("z", 200))
    )
    outcome = _ok(update(current, _register(ContactRequest("sip:new@h")), LIMITS, NOW))
    assert sorted(_left(outcome)) == ["sip:new@h", "sip:x@h", "sip:z@h"]
    assert [b.contact for b in outcome.removed] == ["sip:y@h"]


def test_expired_bindings_leave_with_the_next_change() -> None:
    expired = _binding("sip:old@h", -1)
    outcome = _ok(update((expired,), _register(), LIMITS, NOW))
    assert (outcome.bindings, outcome.removed) == ((), (expired,))
