"""The registration rules (RFC 3261 §10.3), without I/O."""

from __future__ import annotations

from typing import Literal

import pytest

from tollguard.domain.registration import (
    Binding,
    ContactRequest,
    NatPings,
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


def test_a_binding_keeps_its_q_and_a_refresh_changes_it() -> None:
    """RFC 3261 §10.2.1.2: q is part of the binding (1.0 when the Contact gives none)."""
    first = _ok(
        update(
            (), _register(ContactRequest("sip:a@h", q=500), ContactRequest("sip:b@h")), LIMITS, NOW
        )
    )
    assert {b.contact: b.q for b in first.bindings} == {"sip:a@h": 500, "sip:b@h": 1000}
    refreshed = _ok(
        update(first.bindings, _register(ContactRequest("sip:b@h", q=0), cseq=3), LIMITS, NOW)
    )
    assert {b.contact: b.q for b in refreshed.bindings} == {"sip:a@h": 500, "sip:b@h": 0}


@pytest.mark.parametrize("q", [-1, 1001])
def test_a_q_out_of_range_is_no_contact(q: int) -> None:
    with pytest.raises(ValueError, match="q out of range"):
        ContactRequest("sip:a@h", q=q)


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


# -- RFC 5626 flows ------------------------------------------------------------------------

PHONE = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"


def _flow(reg_id: int, connection: int, left: float = 100, instance: str = PHONE) -> Binding:
    return Binding(
        1, f"sip:a@10.0.0.1:{5060 + reg_id};transport=tcp", NOW + left, "c1", 1,
        ("203.0.113.5", 40000 + connection), "tcp", connection, instance, reg_id=reg_id,
    )  # fmt: skip


def _register_flow(*contacts: ContactRequest, connection: int, call_id: str = "c2") -> Register:
    return Register(
        1, contacts, None, call_id, 1, ("203.0.113.5", 40000 + connection), "tcp", connection
    )


def test_two_flows_of_one_phone_are_two_bindings() -> None:
    first = _flow(1, connection=7)
    second = ContactRequest("sip:a@10.0.0.1:5062;transport=tcp", 600, PHONE, reg_id=2)
    outcome = _ok(update((first,), _register_flow(second, connection=8), LIMITS, NOW))
    assert [(b.reg_id, b.connection) for b in outcome.bindings] == [(1, 7), (2, 8)]
    assert outcome.removed == ()


def test_a_flow_registered_again_replaces_the_old_one_and_its_connection() -> None:
    old = _flow(1, connection=7)
    other = _flow(2, connection=8)
    again = ContactRequest("sip:a@10.0.0.1:5061;transport=tcp", 600, PHONE, reg_id=1)
    outcome = _ok(update((old, other), _register_flow(again, connection=9), LIMITS, NOW))
    assert sorted((b.reg_id, b.connection) for b in outcome.bindings) == [(1, 9), (2, 8)]
    assert outcome.removed == (old,)  # the pin of connection 7 is let go


def test_a_flow_removed_alone_leaves_the_other() -> None:
    flows = (_flow(1, connection=7), _flow(2, connection=8))
    gone = ContactRequest("sip:a@10.0.0.1:5061;transport=tcp", 0, PHONE, reg_id=1)
    outcome = _ok(update(flows, _register_flow(gone, connection=7), LIMITS, NOW))
    assert [b.reg_id for b in outcome.bindings] == [2]


def test_an_instance_without_reg_id_stands_for_all_its_flows() -> None:
    flows = (_flow(1, connection=7), _flow(2, connection=8))
    plain = ContactRequest("sip:a@10.0.0.1:5070", 600, PHONE)
    outcome = _ok(update(flows, _register_flow(plain, connection=0), LIMITS, NOW))
    assert [(b.reg_id, b.contact) for b in outcome.bindings] == [(0, "sip:a@10.0.0.1:5070")]
    assert set(outcome.removed) == set(flows)


def test_another_instance_with_the_same_reg_id_is_another_phone() -> None:
    mine = _flow(1, connection=7)
    theirs = ContactRequest("sip:a@10.0.0.2:5061", 600, "<urn:uuid:other>", reg_id=1)
    outcome = _ok(update((mine,), _register_flow(theirs, connection=8), LIMITS, NOW))
    assert len(outcome.bindings) == 2


def test_a_flow_must_be_bound_alone() -> None:
    """RFC 5626 §6: one flow per REGISTER; removing others alongside is allowed."""
    flow = ContactRequest("sip:a@10.0.0.1:5061", 600, PHONE, reg_id=1)
    refused = update((), _register_flow(flow, ContactRequest("sip:b@h", 600), connection=7),
                     LIMITS, NOW)  # fmt: skip
    assert refused == RegisterRefused(400, "Bad Request - a flow (reg-id) must be bound alone")
    removing = ContactRequest("sip:b@h", 0)
    assert _ok(update((), _register_flow(flow, removing, connection=7), LIMITS, NOW)).added


# -- NAT pings -----------------------------------------------------------------------------


def _udp(uri: str, host: str = "203.0.113.5") -> Binding:
    return Binding(1, uri, NOW + 600, "c1", 1, (host, 40000), "udp", 0)


class _Tokens:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"ping{self.n}"


def test_a_binding_that_answers_no_ping_is_given_up_after_the_last_allowed() -> None:
    pings, tokens = NatPings(failures=3), _Tokens()
    phone = _udp("sip:a@h")
    for missed in range(3):
        sent, silent = pings.round((phone,), tokens)
        assert ([b for b, _ in sent], silent) == ([phone], [])
        assert pings.missed(phone) == missed
    # The third ping went unanswered too: given up, and not pinged again.
    assert pings.round((phone,), tokens) == ([], [phone])
    assert pings.missed(phone) == 0


def test_any_answer_from_the_pinged_host_starts_the_count_again() -> None:
    pings, tokens = NatPings(failures=2), _Tokens()
    phone = _udp("sip:a@h")
    pings.round((phone,), tokens)
    (_, token), *_ = pings.round((phone,), tokens)[0]
    assert pings.missed(phone) == 1
    assert not pings.answered(token, "198.51.100.9")  # a stranger's answer counts for nothing
    assert not pings.answered("guessed", "203.0.113.5")
    assert pings.answered(token, "203.0.113.5")
    assert not pings.answered(token, "203.0.113.5")  # once
    assert pings.missed(phone) == 0
    assert pings.round((phone,), tokens)[1] == []
    assert pings.round((phone,), tokens)[1] == []  # one miss since the answer: not yet
    assert pings.round((phone,), tokens)[1] == [phone]


def test_a_register_counts_as_an_answer() -> None:
    pings, tokens = NatPings(failures=2), _Tokens()
    phone = _udp("sip:a@h")
    pings.round((phone,), tokens)
    pings.round((phone,), tokens)
    pings.heard_from(phone)
    assert pings.missed(phone) == 0
    assert pings.round((phone,), tokens)[1] == []


def test_no_failure_limit_never_gives_up_and_gone_bindings_are_forgotten() -> None:
    pings, tokens = NatPings(failures=0), _Tokens()
    a, b = _udp("sip:a@h"), _udp("sip:b@h")
    for _ in range(10):
        assert pings.round((a, b), tokens)[1] == []
    assert pings.missed(a) == 9
    pings.round((a,), tokens)  # b is no longer bound
    assert pings.missed(b) == 0
    pings.round((), tokens)
    assert pings.missed(a) == 0
